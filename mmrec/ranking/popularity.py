"""What a user with no usable history gets: popular items, per segment, diversified.

:class:`PopularityFallback` keeps, per index label, how many distinct users touched the item —
overall and within every value of each user attribute (``locale``, ``age_band`` …) — and updates
the counts one event at a time, so a recommender that observes feedback never recounts the log.

- **segment**: a new user's known attributes (``{"locale": "de"}``) rank items by their share of
  that segment's users instead of all users; with several attributes the shares are summed.
- **diversity**: ``diversify_by="category"`` (an index attribute) interleaves the categories —
  the most popular item of each category first, in popularity order, then the second of each —
  so a newcomer sees the breadth of the catalog, not ten items of its biggest category.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.data.matrix import distinct_user_counts
from mmrec.data.segments import summed_shares
from mmrec.errors import ConfigError, SchemaError
from mmrec.index import ItemIndex
from mmrec.index.protocol import ServingIndex

__all__ = ["PopularityFallback", "SparseCounts", "popularity", "distinct_pairs", "descending",
           "popular_order", "fallback_order"]


def distinct_pairs(index: ServingIndex, events: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (user, item) pairs of ``events`` on items in the index: user ids and labels."""
    frame = events.restrict_to_items(index.item_ids).frame.drop_duplicates(["user", "item"])
    labels = index.positions(frame["item"].tolist()) if len(frame) else np.empty(0, np.int64)
    return frame["user"].to_numpy(dtype=object), labels


def popularity(index: ServingIndex, events: Interactions) -> np.ndarray:
    """Number of distinct users per item (float64, aligned with the index labels ``index.ids``)."""
    users, labels = distinct_pairs(index, events)
    return distinct_user_counts(pd.factorize(users)[0], labels, index.n_labels)


def descending(scores: np.ndarray, live: np.ndarray) -> np.ndarray:
    """The ``live`` labels from the highest score to the lowest, ties by label."""
    order = np.lexsort((np.arange(len(scores)), -scores))
    return order[live[order]]


def popular_order(index: ServingIndex, events: Interactions,
                  allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`popularity` per label, and the live (and ``allowed``) labels from most to least
    popular, ties by label: the fallback ranking for users without a usable history."""
    pop = popularity(index, events)
    return pop, fallback_order(index, pop, allowed)


def fallback_order(index: ServingIndex, pop: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """The live (and ``allowed``) labels from most to least popular, ties by label."""
    return descending(pop, index.alive if allowed is None else allowed & index.alive)


class SparseCounts:
    """Counts over index labels held sparsely — the labels counted at the start (sorted, with
    their counts) and a dict of the changes since, folded in when it grows — so a segment whose
    users touched a sliver of a million-item catalog costs that sliver, not the catalog."""

    def __init__(self, labels: np.ndarray | None = None) -> None:
        self.labels, counts = np.unique(np.asarray([] if labels is None else labels, dtype=np.int64),
                                        return_counts=True)
        self.counts = counts.astype(np.float64)
        self.changes: dict[int, float] = {}

    def add(self, label: int, amount: float) -> None:
        self.changes[label] = self.changes.get(label, 0.0) + amount
        if len(self.changes) > max(1024, len(self.labels) // 4):
            self._fold()

    def _fold(self) -> None:
        labels = np.concatenate([self.labels, np.fromiter(self.changes, np.int64, len(self.changes))])
        amounts = np.concatenate([self.counts, np.fromiter(self.changes.values(), np.float64,
                                                           len(self.changes))])
        self.labels, where = np.unique(labels, return_inverse=True)
        self.counts = np.bincount(where, weights=amounts, minlength=len(self.labels))
        self.changes = {}

    def dense(self, n_labels: int) -> np.ndarray:
        """The counts as a float64 vector over ``n_labels`` labels."""
        out = np.zeros(n_labels, dtype=np.float64)
        out[self.labels] = self.counts
        for label, amount in self.changes.items():
            out[label] += amount
        return out

    @property
    def nbytes(self) -> int:
        return self.labels.nbytes + self.counts.nbytes + 100 * len(self.changes)


class PopularityFallback:
    """Incremental popularity over an index's labels (see the module doc).

    Parameters
    ----------
    index : ItemIndex
        Ranks its live labels; ``diversify_by`` must be one of its attributes.
    history : Interactions
        The events counted at the start.
    user_attributes : DataFrame, optional
        Indexed by user id; each column is an attribute segments can be asked for.
    diversify_by : str, optional
        Item attribute whose values are interleaved in the ranking.
    """

    def __init__(self, index: ItemIndex, history: Interactions, *,
                 user_attributes: pd.DataFrame | None = None, diversify_by: str | None = None) -> None:
        if diversify_by is not None and (index.attributes is None
                                         or diversify_by not in index.attributes.columns):
            raise ConfigError(f"diversify_by={diversify_by!r} is not an attribute of the index; build "
                              "it with attributes=catalog.")
        self.index, self.diversify_by = index, diversify_by
        self.user_attributes = (user_attributes.copy() if user_attributes is not None
                                else pd.DataFrame(index=pd.Index([], dtype=object)))
        self.user_attributes.index = self.user_attributes.index.astype(str)
        self.segments: dict[tuple[str, Any], SparseCounts] = {}
        self.segment_users: dict[tuple[str, Any], int] = {}
        users, labels = distinct_pairs(index, history)
        self.counts = distinct_user_counts(pd.factorize(users)[0], labels, index.n_labels)
        for column in self.user_attributes.columns:
            values = self.user_attributes[column].reindex(users).to_numpy(dtype=object)
            for value in pd.unique(values[pd.notna(values)]):
                key = (column, value)
                self.segments[key] = SparseCounts(labels[values == value])
                self.segment_users[key] = int((self.user_attributes[column] == value).sum())

    def _grow(self) -> None:
        missing = self.index.n_labels - len(self.counts)
        if missing > 0:  # items added to the index since
            self.counts = np.pad(self.counts, (0, missing))

    def _keys(self, user: str) -> list[tuple[str, Any]]:
        if user not in self.user_attributes.index:
            return []
        row = self.user_attributes.loc[user]
        return [(str(column), value) for column, value in row.items() if pd.notna(value)]

    def add(self, user: str, label: int, sign: float = 1.0) -> None:
        """Count (``sign=-1``: uncount) one new distinct (user, item) pair."""
        self._grow()
        self.counts[label] += sign
        for key in self._keys(user):
            self.segments.setdefault(key, SparseCounts()).add(label, sign)

    def forget(self, user: str, labels: np.ndarray) -> None:
        """Uncount a user's items and drop their attributes."""
        for label in labels:
            self.add(user, int(label), -1.0)
        self.user_attributes = self.user_attributes.drop(index=user, errors="ignore")

    def scores(self, segment: Mapping[str, Any] | None = None) -> np.ndarray:
        """Per label: distinct users overall, or the summed share of each segment's users."""
        self._grow()
        if not segment:
            return self.counts
        for column in segment:
            if column not in self.user_attributes.columns:
                raise SchemaError(f"segment attribute {column!r} is unknown; user attributes: "
                                  f"{list(self.user_attributes.columns)}.")
        keys = [key for key in segment.items() if key in self.segments]
        counts = (np.stack([self.segments[key].dense(len(self.counts)) for key in keys]) if keys
                  else np.zeros((0, len(self.counts))))
        # an empty segment falls back to everyone
        return summed_shares(self.counts, counts, [self.segment_users.get(key, 1) for key in keys])

    def rank(self, k: int, *, seen: set[int] = frozenset(), allowed: np.ndarray | None = None,
             user: str | None = None, segment: Mapping[str, Any] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """The top ``k`` live, ``allowed``, unseen labels and their scores: by the ``segment``
        (or the known attributes of ``user``), ties by label, interleaved by ``diversify_by``."""
        if segment is None and user is not None:
            segment = dict(self._keys(user))
        score = self.scores(segment)
        order = fallback_order(self.index, score, allowed)
        if seen:
            order = order[~np.isin(order, np.fromiter(seen, dtype=np.int64))]
        if self.diversify_by is not None:
            values = self.index.attributes[self.diversify_by].to_numpy(dtype=object)[order]
            turn = pd.Series(values).fillna("").groupby(pd.Series(values).fillna("")).cumcount()
            order = order[np.lexsort((np.arange(len(order)), turn.to_numpy()))]
        picks = order[:k]
        return picks, score[picks]
