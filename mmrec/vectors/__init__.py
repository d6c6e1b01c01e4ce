"""The currency every stage passes on: item and user vectors.

- :mod:`~mmrec.vectors.item_vectors` — ``ItemVectors`` (per-modality float32 matrices, presence
  masks, the fused vector, the encode report; saved as ``.npy`` files or read from Parquet shards)
- :mod:`~mmrec.vectors.user_vectors` — ``UserVectors`` (one unit vector per user, ``has_signal``)
- :mod:`~mmrec.vectors.shards` — the Parquet-shard layout (the one writer of its manifest)
- :mod:`~mmrec.vectors.fixed_fusion` — the untrained fusion: z-score, L2, weight, concatenate
"""

from mmrec.vectors.item_vectors import EncodeReport, ItemIssue, ItemVectors
from mmrec.vectors.user_vectors import UserVectors

__all__ = ["ItemVectors", "EncodeReport", "ItemIssue", "UserVectors"]
