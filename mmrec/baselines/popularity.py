"""Most popular items first: the baseline every learned model must beat."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec.baselines.base import FittedItems, check_rows, user_rows
from mmrec.data.interactions import Interactions, as_interactions
from mmrec.data.matrix import distinct_user_counts
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["Popularity"]


class Popularity(FittedItems):
    """Scores every item by its number of distinct training users (the same list for everyone)."""

    artifact_name = "popularity"

    def restore_state(self, state: dict, path: Path) -> None:
        super().restore_state(state, path)
        check_rows(path, "counts_", self.counts_, len(self._items()))

    def __init__(self) -> None:
        self.counts_: np.ndarray | None = None

    def fit(self, items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
            valid: Interactions | None = None) -> Popularity:
        events = as_interactions(events, caller="Popularity.fit")
        self.item_ids_ = self._universe(items, events)
        frame = events.frame
        labels = self.item_ids_.get_indexer(frame["item"].to_numpy(dtype=object))
        users = pd.factorize(frame["user"].to_numpy(dtype=object))[0]
        known = labels >= 0
        counts = distinct_user_counts(users[known], labels[known], len(self.item_ids_))
        self.counts_ = counts.astype(np.float32)
        return self

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        self._items()
        assert self.counts_ is not None
        return np.broadcast_to(self.counts_, (len(user_rows(events, users)), len(self.counts_))).copy()
