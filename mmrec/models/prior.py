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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PopularityPrior", "fit_prior_weights", "log_popularity", "step_buckets", "PRIOR_STEPS",
           "PRIOR_GRID", "MIN_WARM_USERS"]

PRIOR_STEPS = (0, 1, 2, 3, 5, 10, 20, 50)  # history lengths the weights are fitted at
# weights tried, in cosine units per unit of log-popularity (the last: popularity decides)
PRIOR_GRID = (0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 10.0)
MIN_WARM_USERS = 30  # validation users near a step needed before their fit caps the step's weight

Fold = tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]  # scores (users, items), given rows, targets


def log_popularity(counts: np.ndarray) -> np.ndarray:
    """``log((count + 1) / (max + 1))`` per item: 0 for the most popular, negative below."""
    counts = np.asarray(counts, dtype=np.float64)
    return (np.log1p(counts) - np.log1p(counts.max(initial=0.0))).astype(np.float32)


@dataclass(frozen=True)
class PopularityPrior:
    """``log_popularity`` per model item (rows of ``item_ids``) and the fitted fading ``weights``
    at history lengths ``steps``; ``valid`` holds the held-out recall per step with and without it."""

    item_ids: pd.Index
    log_popularity: np.ndarray
    steps: tuple[int, ...]
    weights: tuple[float, ...]
    valid: dict[str, list[float]] | None = None

    def weight(self, n_events: np.ndarray | Sequence[int]) -> np.ndarray:
        """The prior's weight for users with ``n_events`` events each."""
        n = np.log1p(np.asarray(n_events, dtype=np.float64))
        return np.interp(n, np.log1p(np.asarray(self.steps, dtype=np.float64)),
                         np.asarray(self.weights, dtype=np.float64))

    def for_ids(self, ids: Sequence[Any]) -> np.ndarray:
        """Log-popularity of arbitrary item ids; items the model has no count for (new ones) get
        :attr:`unknown`."""
        rows = self.item_ids.get_indexer(pd.Index(np.asarray(ids, dtype=object)))
        return np.where(rows >= 0, self.log_popularity[np.maximum(rows, 0)], self.unknown).astype(np.float32)

    @property
    def unknown(self) -> float:
        """The log-popularity an item without a count gets: the median item's (a new item is
        neither buried by the prior nor pushed by it)."""
        return float(np.median(self.log_popularity)) if self.log_popularity.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "weights": list(self.weights), "valid": self.valid}


def _recall(scores: np.ndarray, targets: list[np.ndarray], k: int) -> float:
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    hits = [np.isin(t, row).sum() / min(len(t), k) for row, t in zip(top, targets, strict=True) if len(t)]
    return float(np.mean(hits)) if hits else 0.0


def step_buckets(lengths: np.ndarray, steps: Sequence[int]) -> np.ndarray:
    """The step each history length is nearest to on a log scale (an index into ``steps``)."""
    points = np.log1p(np.asarray(steps, dtype=np.float64))
    edges = (points[1:] + points[:-1]) / 2
    return np.searchsorted(edges, np.log1p(np.asarray(lengths, dtype=np.float64)), side="right")


def _best_weight(fold: Fold, log_pop: np.ndarray, grid: Sequence[float],
                 k: int) -> tuple[float, float, float]:
    """(weight, recall with it, recall without any prior) on one fold; ties go to the smaller weight."""
    scores, given, targets = fold
    for row, seen in enumerate(given):
        scores[row, seen] = -np.inf
    recalls = [_recall(scores + w * log_pop, targets, k) for w in grid]
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
