"""A popularity prior that fades as a user's events arrive.

With a handful of events a user's interest vector is a guess; what most users go on to touch is
popular. :class:`PopularityPrior` adds ``weight(n) · log_popularity(item)`` to the cosine score of a
user with ``n`` events: ``weight`` is fitted per history length on users held out of training
(:func:`fit_prior_weights`: their first ``n`` events given, every later event a target, the weight
on a grid that maximises Recall@``k``), capped by what the model's own validation users need
(trained users whose history length is near ``n``, their next event the target: the warm
regime, where a prior fitted on "every later event" would pull every ranking toward popular
items), then made non-increasing in ``n`` from the first event on — the prior fades as the
history grows (``n = 0``, attributes alone, keeps its own weight).
Between fitted lengths the weight is interpolated in ``log(1 + n)``; past the longest, the last
weight holds.

With user attributes the prior is **segment-aware** (:class:`SegmentPrior`): a user's
log-popularity is that of the items among the training users who share their segments
(``gender=F``, ``age=25``, ``occupation=writer``: the mean share of each segment's users who
touched the item, on the scale of counts), the rule of demographic popularity
(:class:`mmrec.baselines.SegmentPopularity`); a user with no known segment gets the overall one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmrec.data.interactions import Interactions
from mmrec.data.segments import SegmentRule, count_segments, segment_positions

__all__ = ["PopularityPrior", "SegmentPrior", "fit_prior_weights", "log_popularity", "step_buckets",
           "neutral_unknown", "PRIOR_STEPS", "PRIOR_GRID", "MIN_WARM_USERS"]

PRIOR_STEPS = (0, 1, 2, 3, 5, 10, 20, 50)  # history lengths the weights are fitted at
# weights tried, in cosine units per unit of log-popularity (the last: popularity decides)
PRIOR_GRID = (0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)
MIN_WARM_USERS = 30  # validation users near a step needed before their fit caps the step's weight
MIN_SEGMENT_USERS = 10  # training users a segment needs to count (one zip code is noise)
RECALL_BLOCK_CELLS = 1 << 22  # users × items ranked at a time when the weights are fitted
SKYLINE_MIN_ITEMS = 2_000  # above it, the weight grid ranks each user's skyline (:func:`_skyline`)
SKYLINE_NEAR_BLOCKS = 64  # blocks of the most popular items whose k-th best scores bound the rest

# scores (users, items), given rows, targets, and optionally each user's log-popularity (users, items)
Fold = tuple[Any, ...]


def log_popularity(counts: np.ndarray) -> np.ndarray:
    """``log((count + 1) / (max + 1))`` per item: 0 for the most popular, negative below."""
    counts = np.asarray(counts, dtype=np.float64)
    return (np.log1p(counts) - np.log1p(counts.max(initial=0.0))).astype(np.float32)


def neutral_unknown(log_pop: np.ndarray, unknown: np.ndarray | None) -> np.ndarray:
    """``log_pop`` (one row per user, or one row) with the ``unknown`` items (no training event:
    their popularity is unknown, not zero) at the median of the others in their row."""
    if unknown is None or not unknown.any() or unknown.all():
        return log_pop
    out = log_pop.copy()
    known = out[..., ~unknown]
    out[..., unknown] = np.median(known, axis=-1, keepdims=True)
    return out


@dataclass(frozen=True)
class SegmentPrior:
    """Per kept user segment: its training users (``members``) and the distinct ones per model item
    (``counts``, ``(segments, items)``); ``rule`` cuts numeric attributes as at fit; ``n_users``
    training users in all (the scale a segment's share is put back on)."""

    rule: SegmentRule
    keys: pd.Index
    counts: sp.csr_matrix
    members: np.ndarray
    n_users: int

    @classmethod
    def fit(cls, table: pd.DataFrame | None, events: Interactions, item_ids: pd.Index, *,
            min_users: int = MIN_SEGMENT_USERS) -> SegmentPrior | None:
        """Segments of ``table``'s attributes counted over ``events`` (items as rows of ``item_ids``);
        ``None`` without a table or when no segment has ``min_users`` training users."""
        if table is None:
            return None
        codes, users = events.codes("user")
        rule = SegmentRule.fit(table)
        counted = count_segments(rule.keys(table), codes, pd.Index(users).astype(str),
                                 events.positions("item", item_ids), len(item_ids), min_users=min_users)
        if not len(counted.keys):
            return None
        return cls(rule, counted.keys, counted.counts, counted.members, len(users))

    def rows(self, table: pd.DataFrame | None, users: Sequence[Any]) -> list[np.ndarray]:
        """Each user's segment rows (empty without an attribute row or a kept segment)."""
        none = np.empty(0, dtype=np.int64)
        if table is None:
            return [none] * len(users)
        names = [str(u) for u in users]
        present = table.reindex(pd.Index([u for u in dict.fromkeys(names) if u in table.index], dtype=object))
        positions = segment_positions(self.rule.keys(present), self.keys)
        return [positions.get(u, none) for u in names]

    def log_popularity(self, rows: np.ndarray) -> np.ndarray | None:
        """:func:`log_popularity` of the mean share of the segments' users per item, on the scale
        of counts (``None`` when the segments' users touched nothing)."""
        # a user's few segment rows made dense (the table stays sparse), float32 as saved
        shares = (self.counts[rows].toarray() / np.maximum(self.members[rows], 1.0)[:, None]).mean(axis=0)
        return log_popularity(shares * self.n_users) if shares.any() else None

    def to_dict(self) -> dict[str, Any]:
        return {"keys": [str(k) for k in self.keys], "edges": self.rule.edges, "n_users": self.n_users}


@dataclass(frozen=True)
class PopularityPrior:
    """``log_popularity`` per model item (rows of ``item_ids``) and the fitted fading ``weights``
    at history lengths ``steps``; ``valid`` holds the held-out recall per step with and without it.
    ``unknown_items`` marks the items without a training count (their log-popularity: the median's);
    ``segments`` (optional) makes it per user (:meth:`for_users`)."""

    item_ids: pd.Index
    log_popularity: np.ndarray
    steps: tuple[int, ...]
    weights: tuple[float, ...]
    valid: dict[str, list[float]] | None = None
    segments: SegmentPrior | None = None
    unknown_items: np.ndarray | None = None

    def weight(self, n_events: np.ndarray | Sequence[int]) -> np.ndarray:
        """The prior's weight for users with ``n_events`` events each."""
        n = np.log1p(np.asarray(n_events, dtype=np.float64))
        return np.interp(n, np.log1p(np.asarray(self.steps, dtype=np.float64)),
                         np.asarray(self.weights, dtype=np.float64))

    def for_ids(self, ids: Sequence[Any]) -> np.ndarray:
        """Log-popularity of arbitrary item ids; items the model has no count for (new ones) get
        :attr:`unknown`."""
        return self.at(self.rows_of(ids))

    def rows_of(self, ids: Sequence[Any]) -> np.ndarray:
        """Rows of ``item_ids`` for ``ids`` (-1: an item the model has no count for)."""
        return self.item_ids.get_indexer(pd.Index(np.asarray(ids, dtype=object)))

    def at(self, rows: np.ndarray, segment_rows: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Log-popularity at item ``rows`` (-1: the row's median): one row overall, or one per user
        of ``segment_rows`` (:meth:`SegmentPrior.rows`) when given."""
        if segment_rows is None:
            picked = self.log_popularity[np.maximum(rows, 0)]
            return np.where(rows >= 0, picked, self.unknown).astype(np.float32)
        table = self.for_users(segment_rows)
        picked = table[:, np.maximum(rows, 0)]
        return np.where(rows >= 0, picked, np.median(table, axis=1, keepdims=True)).astype(np.float32)

    def for_users(self, segment_rows: Sequence[np.ndarray]) -> np.ndarray:
        """``(users, items)`` log-popularity: each user's segments' (:class:`SegmentPrior`), the
        overall one for a user without a segment."""
        out = np.broadcast_to(self.log_popularity, (len(segment_rows), len(self.log_popularity))).copy()
        if self.segments is None:
            return out
        by_key: dict[tuple[int, ...], np.ndarray | None] = {}
        for row, segs in enumerate(segment_rows):
            if len(segs):
                key = tuple(int(s) for s in segs)
                if key not in by_key:
                    by_key[key] = self.segments.log_popularity(np.asarray(key, dtype=np.int64))
                if by_key[key] is not None:
                    out[row] = by_key[key]
        return neutral_unknown(out, self.unknown_items)

    def segment_rows(self, table: pd.DataFrame | None, users: Sequence[Any]) -> list[np.ndarray] | None:
        """Each user's segment rows from an attribute ``table``; ``None`` when the prior is not
        segment-aware or no table is given (everyone gets the overall log-popularity)."""
        if self.segments is None or table is None:
            return None
        return self.segments.rows(table, users)

    @property
    def unknown(self) -> float:
        """The log-popularity an item without a count gets: the median item's (a new item is
        neither buried by the prior nor pushed by it)."""
        return float(np.median(self.log_popularity)) if self.log_popularity.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "weights": list(self.weights), "valid": self.valid,
                "segments": self.segments.to_dict() if self.segments is not None else None}


def _rows_per_block(n_items: int) -> int:
    """Users ranked at a time over ``n_items`` (:data:`RECALL_BLOCK_CELLS` cells)."""
    return max(1, RECALL_BLOCK_CELLS // max(n_items, 1))


def _recall(scores: np.ndarray, targets: list[np.ndarray], k: int, log_pop: np.ndarray | None = None,
            weight: float = 0.0, columns: np.ndarray | None = None) -> float:
    """Mean Recall@k of ``scores + weight · log_pop`` (``log_pop`` per item, or per user and item),
    ranked a block of users at a time: the sum, its negation and the partition indices stay a
    block's size (at a million items, 100 users' whole matrices were ~2.4 GB of temporaries).
    ``columns`` (optional, same shape as ``scores``): the item row each column stands for
    (:func:`_skyline`'s compact candidates; -1 for padding)."""
    n_users, n_items = scores.shape
    block = _rows_per_block(n_items)
    kth = min(k, n_items - 1)
    hits: list[float] = []
    for start in range(0, n_users, block):
        part = scores[start : start + block]
        if log_pop is not None:
            part = part + weight * (log_pop if log_pop.ndim == 1 else log_pop[start : start + block])
        top = np.argpartition(-part, kth, axis=1)[:, :k]
        if columns is not None:
            top = np.take_along_axis(columns[start : start + block], top, axis=1)
        hits += [np.isin(t, row).sum() / min(len(t), k)
                 for row, t in zip(top, targets[start : start + block], strict=True) if len(t)]
    return float(np.mean(hits)) if hits else 0.0


def _skyline(scores: np.ndarray, log_pop: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per user, the items that can reach the top ``k`` of ``scores + w · log_pop`` for some
    weight ``w >= 0``: ``(columns, compact scores)``, each ``(users, m)``, padded with -1 / -inf.

    An item with ``k`` others at least as popular and strictly higher in score is beaten by them at
    every weight. The most popular items (:data:`SKYLINE_NEAR_BLOCKS` blocks of ~√items, by
    popularity) are cut into blocks: an item whose score is below the ``k``-th best of an earlier
    block is dropped, and any less popular item below the ``k``-th best of any block. Exact (a
    superset of every weight's top ``k``); at a million items it keeps a few thousand per user,
    so the weight grid ranks those instead of the whole catalog once per weight."""
    n_users, n_items = scores.shape
    order = np.argsort(-log_pop, kind="stable")
    width = min(n_items, max(4 * k, math.isqrt(n_items)))
    near = order[: SKYLINE_NEAR_BLOCKS * width]
    n_blocks = -(-len(near) // width)
    pad = n_blocks * width - len(near)
    lowest = np.finfo(scores.dtype).min  # a bound of at least this drops the -inf (seen) items
    rows_per_block = _rows_per_block(n_items)
    kept: list[np.ndarray] = []
    for start in range(0, n_users, rows_per_block):
        rows = scores[start : start + rows_per_block]
        blocks = np.pad(rows[:, near], ((0, 0), (0, pad)), constant_values=-np.inf)
        blocks = blocks.reshape(len(rows), n_blocks, width)
        bound = np.maximum.accumulate(np.partition(blocks, width - k, axis=2)[:, :, width - k], axis=1)
        earlier = np.concatenate([np.full((len(rows), 1), lowest, dtype=bound.dtype), bound[:, :-1]], axis=1)
        keep = rows >= np.maximum(bound[:, -1], lowest)[:, None]  # beaten by some block of the near ones
        near_keep = blocks >= np.maximum(earlier, lowest)[:, :, None]
        keep[:, near] = near_keep.reshape(len(rows), -1)[:, : len(near)]
        kept += [np.flatnonzero(row) for row in keep]
    width_out = max((len(c) for c in kept), default=0)
    columns = np.full((n_users, width_out), -1, dtype=np.int64)
    compact = np.full((n_users, width_out), -np.inf, dtype=scores.dtype)
    for row, cols in enumerate(kept):
        columns[row, : len(cols)] = cols
        compact[row, : len(cols)] = scores[row, cols]
    return columns, compact


def step_buckets(lengths: np.ndarray, steps: Sequence[int]) -> np.ndarray:
    """The step each history length is nearest to on a log scale (an index into ``steps``)."""
    points = np.log1p(np.asarray(steps, dtype=np.float64))
    edges = (points[1:] + points[:-1]) / 2
    return np.searchsorted(edges, np.log1p(np.asarray(lengths, dtype=np.float64)), side="right")


def _best_weight(fold: Fold, log_pop: np.ndarray, grid: Sequence[float],
                 k: int) -> tuple[float, float, float]:
    """(weight, recall with it, recall without any prior) on one fold; ties go to the smaller weight.
    A fold's fourth element, when there, is each user's own log-popularity (in place of ``log_pop``)."""
    scores, given, targets = fold[:3]
    if len(fold) > 3 and fold[3] is not None:
        log_pop = fold[3]
    for row, seen in enumerate(given):
        scores[row, seen] = -np.inf
    if log_pop.ndim == 1 and scores.shape[1] > max(SKYLINE_MIN_ITEMS, 4 * k) and min(grid, default=0.0) >= 0:
        columns, compact = _skyline(scores, log_pop, k)
        pop = np.where(columns >= 0, log_pop[np.maximum(columns, 0)], 0.0).astype(log_pop.dtype)
        recalls = [_recall(compact, targets, k, pop, w, columns) for w in grid]
    else:
        recalls = [_recall(scores, targets, k, log_pop, w) for w in grid]
    best = int(np.argmax(recalls))
    return float(grid[best]), recalls[best], recalls[0]


def fit_prior_weights(cosines: Callable[[int], Fold], log_pop: np.ndarray, *,
                      steps: Sequence[int] = PRIOR_STEPS, grid: Sequence[float] = PRIOR_GRID, k: int = 20,
                      warm: Callable[[int], Fold] | None = None
                      ) -> tuple[tuple[float, ...], dict[str, list[float]]]:
    """The weight per step that maximises Recall@``k`` on held-out users, capped by the warm
    users' weight, made non-increasing.

    ``cosines(n)`` returns, for the held-out users with more than ``n`` events, their cosine
    scores ``(users, items)`` after their first ``n`` events, those events' item rows (masked)
    and the later events' item rows (the targets). ``warm(n)`` (optional) returns the same for
    the trained users whose history length is nearest ``n`` (:func:`step_buckets`): their whole
    history given, their validation events the targets; with at least :data:`MIN_WARM_USERS` of
    them, the step's weight is at most the one that serves them best."""
    fitted, with_prior, without, warm_weights = [], [], [], []
    for n in steps:
        fold = cosines(n)
        if len(fold[0]):
            weight, recall, plain = _best_weight(fold, log_pop, grid, k)
        else:
            weight, recall, plain = (fitted[-1] if fitted else 0.0), float("nan"), float("nan")
        del fold  # (users × items): not held while the warm fold is made
        warm_fold = warm(n) if warm is not None else None
        if warm_fold is not None and len(warm_fold[0]) >= MIN_WARM_USERS:
            cap = _best_weight(warm_fold, log_pop, grid, k)[0]
            warm_weights.append(cap)
            weight = min(weight, cap)
        else:
            warm_weights.append(float("nan"))
        fitted.append(weight)
        with_prior.append(recall)
        without.append(plain)
    # fades as events arrive, never grows: from the first event on (a user with no event is ranked
    # by attributes alone, a regime of its own: capping every later weight by its weight would keep
    # the prior too weak exactly where one noisy event needs it most)
    weights = tuple(float(w) for w in (fitted[:1] + list(np.minimum.accumulate(fitted[1:]))))
    return weights, {"steps": list(steps), f"recall@{k}": with_prior, f"recall@{k} without prior": without,
                     "warm weight": warm_weights}
