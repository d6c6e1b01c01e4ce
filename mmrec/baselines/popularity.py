"""Most popular items first: the baseline every learned model must beat."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec.baselines.base import FittedItems, check_rows, user_rows
from mmrec.data.interactions import Interactions, as_interactions
from mmrec.data.matrix import distinct_user_counts
from mmrec.data.segments import SegmentRule, count_segments, segment_positions, summed_shares
from mmrec.errors import ConfigError
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
    """Demographic popularity: a user with attributes (``age``, ``gender``, ``occupation`` …) gets
    the items most popular among the training users who share them — per item, the summed share
    of each of their segments' users who touched it (:func:`mmrec.data.segments.summed_shares`,
    the rule of the serving fallback); users without attributes get overall popularity.

    Segments (:class:`mmrec.data.segments.SegmentRule`): every value of every column; a numeric
    column with more than ``max_values`` distinct values is cut into ``n_bins`` quantile bins of
    the fit table (edges saved). A segment's users are the *training* users in it; segments with
    fewer than ``min_users`` of them (one zip code) are dropped as noise.

    The attribute table given to :meth:`fit` (a ``user`` column or index) stays in memory only;
    after :meth:`load` give it again with :meth:`set_user_attributes`.
    """

    artifact_name = "segment_popularity"

    def __init__(self, n_bins: int = 5, max_values: int = 10, min_users: int = 10) -> None:
        if min_users < 1:
            raise ConfigError(f"SegmentPopularity: min_users must be >= 1, got {min_users}.")
        self.n_bins, self.max_values, self.min_users = n_bins, max_values, min_users
        self.counts_: np.ndarray | None = None
        self.segments_: pd.Index | None = None          # segment keys, "column=value"
        self.segment_counts_: np.ndarray | None = None  # (segments, items) distinct training users
        self.segment_users_: np.ndarray | None = None   # training users per segment
        self.bin_edges_: pd.Series | None = None        # quantile edges, indexed by column name
        self.user_segments: dict[str, np.ndarray] = {}  # user -> segment rows (not saved)

    def restore_state(self, state: dict, path: Path) -> None:
        super().restore_state(state, path)
        check_rows(path, "counts_", self.counts_, len(self._items()))
        check_rows(path, "segment_counts_", self.segment_counts_, len(self._items()), axis=1)
        check_rows(path, "segment_users_", self.segment_users_, self.segment_counts_.shape[0])

    def fit(self, items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
            valid: Interactions | None = None, users: pd.DataFrame | None = None) -> SegmentPopularity:
        events = as_interactions(events, caller="SegmentPopularity.fit")
        self.item_ids_ = self._universe(items, events)
        frame = events.frame
        labels = self.item_ids_.get_indexer(frame["item"].to_numpy(dtype=object))
        codes, trained = pd.factorize(frame["user"].to_numpy(dtype=object))
        self.counts_ = distinct_user_counts(codes, labels, len(self.item_ids_)).astype(np.float32)
        table = _attribute_table(users)
        rule = (SegmentRule.fit(table, n_bins=self.n_bins, max_values=self.max_values)
                if table is not None else SegmentRule({}))
        self.bin_edges_ = pd.Series([e for edges in rule.edges.values() for e in edges], dtype=np.float64,
                                    index=[c for c, edges in rule.edges.items() for _ in edges])
        keys = rule.keys(table) if table is not None else {}
        counted = count_segments(keys, codes, pd.Index(trained).astype(str), labels, len(self.item_ids_),
                                 min_users=self.min_users)
        self.segments_, self.segment_counts_, self.segment_users_ = (counted.keys, counted.counts,
                                                                     counted.members)
        self.user_segments = segment_positions(keys, self.segments_) if table is not None else {}
        return self

    def _rule(self) -> SegmentRule:
        edges = self.bin_edges_ if self.bin_edges_ is not None else pd.Series(dtype=np.float64)
        return SegmentRule({str(c): [float(e) for e in edges[edges.index == c]]
                            for c in pd.unique(edges.index.to_numpy(dtype=object))})

    def set_user_attributes(self, users: pd.DataFrame) -> None:
        """The attribute table of the users to score (after :meth:`load`); numbers are cut at the
        fitted quantile edges."""
        self._items()
        assert self.segments_ is not None
        table = _attribute_table(users)
        self.user_segments = (segment_positions(self._rule().keys(table), self.segments_) if table is not None
                              else {})

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        self._items()
        assert self.counts_ is not None and self.segment_counts_ is not None
        assert self.segment_users_ is not None
        ids = user_rows(events, users)
        scores = np.empty((len(ids), len(self.counts_)), dtype=np.float32)
        none = np.empty(0, dtype=np.int64)
        for row, user in enumerate(ids):
            rows = self.user_segments.get(str(user), none)
            scores[row] = summed_shares(self.counts_, self.segment_counts_[rows], self.segment_users_[rows])
        return scores


def _attribute_table(users: pd.DataFrame | None) -> pd.DataFrame | None:
    if users is None:
        return None
    from mmrec.models.user_features import as_attribute_table

    return as_attribute_table(users, where="SegmentPopularity (users=)")

