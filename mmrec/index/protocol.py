"""What serving (:func:`mmrec.recommend`, :func:`mmrec.recommend_batches`) needs of an index.

Both :class:`~mmrec.index.ItemIndex` and :class:`~mmrec.index.sharded.ShardedIndex` provide it; a
sharded index never holds all item vectors in one matrix, so user profiles are built through
:meth:`ServingIndex.weighted_sum` rather than ``weights @ index.vectors``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["ServingIndex"]


class ServingIndex(Protocol):
    """An item index recommendations can be served from (labels are rows ``0..n_labels-1``)."""

    ids: np.ndarray  # catalog id per label
    alive: np.ndarray  # bool per label: still in the index

    @property
    def dim(self) -> int: ...

    @property
    def n_labels(self) -> int: ...

    @property
    def item_ids(self) -> np.ndarray: ...

    def positions(self, item_ids: Sequence[str]) -> np.ndarray: ...

    def mask(self, where: Mapping[str, Any]) -> np.ndarray: ...

    def weighted_sum(self, weights: Any) -> np.ndarray: ...

    def search(self, queries: np.ndarray, k: int, *,
               exclude_idx: Sequence[Sequence[int] | np.ndarray] | None = None,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]: ...
