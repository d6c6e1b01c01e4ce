"""Catalog → ItemVectors: ``encode_items`` on the local or the Ray engine, the content-hash cache, and
new items encoded like the catalog was.

- :mod:`~mmrec.encode.api` — ``encode_items`` and the engine table
- :mod:`~mmrec.encode.engines` — ``EncodeEngine`` (where and how items are encoded)
- :mod:`~mmrec.encode.batches` — the per-batch unit both engines call
- :mod:`~mmrec.encode.local` — this process, DataLoader workers, ``out`` streaming
- :mod:`~mmrec.encode.ray` — Ray Data actor pools per modality
- :mod:`~mmrec.encode.cache` — ``EncodeCache`` (SQLite, keyed by content and encoder fingerprint)
- :mod:`~mmrec.encode.new_items` — items added after training, encoded with the fitted encoders
"""

from mmrec.encode.api import encode_items
from mmrec.encode.engines import EncodeEngine
from mmrec.encoders.presets import DEFAULT_ENCODERS

__all__ = ["encode_items", "EncodeEngine", "DEFAULT_ENCODERS"]
