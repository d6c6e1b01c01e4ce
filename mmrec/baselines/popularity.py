"""Most popular items first: the baseline every learned model must beat."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmrec.baselines.base import FittedItems, interaction_matrix, user_rows
from mmrec.data.interactions import Interactions
from mmrec.item_vectors import ItemVectors

__all__ = ["Popularity"]


class Popularity(FittedItems):
    """Scores every item by its number of distinct training users (the same list for everyone)."""

    def __init__(self) -> None:
        self.counts_: np.ndarray | None = None

    def fit(self, items: ItemVectors | None, events: Interactions, *,
            valid: Interactions | None = None) -> Popularity:
        self.item_ids_ = self._universe(items, events)
        matrix = interaction_matrix(events, events.users, self.item_ids_)
        self.counts_ = np.asarray(matrix.sum(axis=0), dtype=np.float32).ravel()
        return self

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        self._items()
        assert self.counts_ is not None
        return np.broadcast_to(self.counts_, (len(user_rows(events, users)), len(self.counts_))).copy()
