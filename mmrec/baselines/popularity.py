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

__all__ = ["Popularity", "SegmentPopularity"]


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


class SegmentPopularity(FittedItems):
    """Demographic popularity: a user with attributes (``age``, ``gender``, ``country`` …) gets the
    items most popular among users who share them — per item, the summed share of each of their
    segments' users who touched it (every attribute value, numbers included, is a segment);
    users without attributes get overall popularity.

    The attribute table given to :meth:`fit` (a ``user`` column or index) stays in memory only;
    after :meth:`load` give it again with :meth:`set_user_attributes`.
    """

    artifact_name = "segment_popularity"

    def __init__(self) -> None:
        self.counts_: np.ndarray | None = None
        self.segments_: pd.Index | None = None          # "column=value"
        self.segment_counts_: np.ndarray | None = None  # (segments, items) distinct users
        self.segment_users_: np.ndarray | None = None   # users per segment
        self.user_segments: dict[str, list[int]] = {}

    def restore_state(self, state: dict, path: Path) -> None:
        super().restore_state(state, path)
        check_rows(path, "counts_", self.counts_, len(self._items()))
        check_rows(path, "segment_counts_", self.segment_counts_, len(self._items()), axis=1)

    def fit(self, items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
            valid: Interactions | None = None, users: pd.DataFrame | None = None) -> SegmentPopularity:
        events = as_interactions(events, caller="SegmentPopularity.fit")
        self.item_ids_ = self._universe(items, events)
        frame = events.frame.drop_duplicates(["user", "item"])
        labels = self.item_ids_.get_indexer(frame["item"].to_numpy(dtype=object))
        user_codes = pd.factorize(frame["user"].to_numpy(dtype=object))[0]
        self.counts_ = distinct_user_counts(user_codes, labels, len(self.item_ids_)).astype(np.float32)
        keys = self._segment_keys(users)
        self.segments_ = pd.Index(sorted({key for row in keys.values() for key in row}), dtype=object)
        counts = np.zeros((len(self.segments_), len(self.item_ids_)), dtype=np.float32)
        members = np.zeros(len(self.segments_), dtype=np.float32)
        position = {key: i for i, key in enumerate(self.segments_)}
        for row in keys.values():
            for key in row:
                members[position[key]] += 1
        user_of = frame["user"].to_numpy(dtype=object)
        for user, label in zip(user_of, labels, strict=True):
            for key in keys.get(str(user), ()):
                counts[position[key], label] += 1
        self.segment_counts_, self.segment_users_ = counts, members
        self.user_segments = {user: [position[k] for k in row] for user, row in keys.items()}
        return self

    @staticmethod
    def _segment_keys(users: pd.DataFrame | None) -> dict[str, list[str]]:
        if users is None:
            return {}
        from mmrec.models.user_features import as_attribute_table

        table = as_attribute_table(users, where="SegmentPopularity (users=)")
        return {user: [f"{column}={value}" for column, value in row.items() if pd.notna(value)]
                for user, row in zip(table.index, table.to_dict("records"), strict=True)}

    def set_user_attributes(self, users: pd.DataFrame) -> None:
        """The attribute table of the users to score (after :meth:`load`)."""
        assert self.segments_ is not None
        position = {key: i for i, key in enumerate(self.segments_)}
        self.user_segments = {user: [position[k] for k in row if k in position]
                              for user, row in self._segment_keys(users).items()}

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        self._items()
        assert self.counts_ is not None and self.segment_counts_ is not None
        assert self.segment_users_ is not None
        ids = user_rows(events, users)
        shares = self.segment_counts_ / np.maximum(self.segment_users_, 1.0)[:, None]
        scores = np.empty((len(ids), len(self.counts_)), dtype=np.float32)
        for row, user in enumerate(ids):
            segments = self.user_segments.get(str(user))
            scores[row] = shares[segments].sum(axis=0) if segments else self.counts_
        return scores
