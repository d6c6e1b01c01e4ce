"""Re-ranking of a candidate list: maximal marginal relevance and a greedy DPP (variety inside a
list), and exposure (variety across the lists of many users).

Each takes, per user, the ``m`` candidates a model ranked (their scores, best first) and the
candidates' vectors, and picks ``k`` of them trading relevance for variety with one knob
``diversify`` = λ in [0, 1]: 0 keeps the model's order, 1 cares only about variety.

- ``"mmr"`` (Carbonell & Goldstein, 1998): each next item maximises
  ``(1 - λ) · relevance - λ · max cosine to the items already picked``;
- ``"dpp"`` (greedy MAP inference of a determinantal point process, Chen et al., 2018): the kernel
  ``L = diag(q) S diag(q)`` with ``S`` the cosine similarity (clipped at 0) and quality
  ``q = exp(θ · relevance)``, ``θ = (1 - λ) / λ``; each next item adds the most log-determinant.

- ``"exposure"``: each candidate's score is ``(1 - λ) · relevance - λ · exposure``, with exposure
  the number of lists already made (in the same call, or in the server's recent window) that
  showed the item, relative to the most shown item's on a log scale (:class:`ExposureLedger`),
  among 10 candidates a slot (5 for MMR/DPP); the lists are then
  recorded. Items every user is shown make room for the next-best ones, so exposure spreads over
  the catalog (coverage, Gini) rather than only inside each list. Users are served in call order:
  the first lists see no exposure yet.

Relevance is the model's score min-max scaled to [0, 1] within the user's candidates, so λ means
the same for any model's score scale.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from mmrec.errors import ConfigError
from mmrec.registry import Registry

__all__ = ["RERANKERS", "rerank_candidates", "mmr", "greedy_dpp", "by_exposure", "ExposureLedger",
           "check_diversify", "candidate_count"]

CANDIDATES_PER_SLOT = 5  # candidates fetched per recommended slot when diversifying (at least 50)
MIN_CANDIDATES = 50
# Exposure reads no vectors, so its pool is wider: the catalog it can spread over is the union of
# the users' pools (MovieLens-1M, EASE, top-20: 5 a slot caps coverage at 0.677, 10 at 0.76+).
EXPOSURE_CANDIDATES_PER_SLOT = 10

Reranker = Callable[..., np.ndarray]  # (scores, vectors, k, diversify, *, exposure) -> positions
RERANKERS: Registry[Reranker] = Registry("re-ranker")
NEEDS_VECTORS = {"mmr", "dpp"}  # re-rankers that compare the candidates' vectors
READS_EXPOSURE = {"exposure"}  # re-rankers that read (and record lists in) an ExposureLedger


class ExposureLedger:
    """How many of the lists made so far showed each item (keyed by the caller's item labels), over
    the whole call — or, with ``window``, over the newest ``window`` lists only (a server's recent
    traffic)."""

    def __init__(self, window: int | None = None) -> None:
        if window is not None and window < 1:
            raise ConfigError(f"ExposureLedger: window must be >= 1 list, got {window}.")
        self.window = window
        self.counts: dict[int, int] = {}
        self.lists: deque[np.ndarray] = deque()  # the window's lists, oldest first (none kept without one)
        self._most: int | None = 0  # the largest count; None: to recount (its item left the window)

    def shares(self, labels: np.ndarray) -> np.ndarray:
        """Per label, its exposure (0-1): ``log(1 + lists that showed it) / log(1 + the most shown
        item's)``. On a log scale an item shown in a tenth as many lists as the most shown one
        still reads ~0.7, so the mid-popular items every list repeats make room too, not only the
        few at the top (MovieLens-1M, EASE, λ = 0.3: coverage@20 +32.7 % vs +11.6 % with the
        linear share, at +0.7 % vs -1.6 % recall; docs/evaluation.md)."""
        if self._most is None:
            self._most = max(self.counts.values(), default=0)
        if not self._most:
            return np.zeros(len(labels), dtype=np.float64)
        counts = np.fromiter((self.counts.get(int(label), 0) for label in labels), np.float64, len(labels))
        return np.log1p(counts) / np.log1p(self._most)

    def record(self, labels: np.ndarray) -> None:
        """One more list, showing ``labels`` (``-1`` pads are ignored)."""
        shown = np.unique(labels[labels >= 0])
        for label in shown.tolist():
            self.counts[label] = count = self.counts.get(label, 0) + 1
            if self._most is not None:
                self._most = max(self._most, count)
        if self.window is None:
            return
        self.lists.append(shown)
        if len(self.lists) > self.window:
            for label in self.lists.popleft().tolist():
                if self.counts[label] == self._most:
                    self._most = None
                self.counts[label] -= 1
                if not self.counts[label]:
                    del self.counts[label]


def check_diversify(diversify: object, rerank: str) -> float:
    """``diversify`` as a float in [0, 1] (a :class:`ConfigError` otherwise) and ``rerank`` known."""
    if isinstance(diversify, bool) or not isinstance(diversify, int | float) or not 0 <= diversify <= 1:
        raise ConfigError(f"diversify must be a number in [0, 1] (0: the model's ranking), "
                          f"got {diversify!r}.")
    RERANKERS.get(rerank)  # an unknown name is an error with suggestions
    return float(diversify)


def candidate_count(k: int, n_items: int, method: str | None = None) -> int:
    """How many candidates to re-rank for ``k`` slots (``method``: the re-ranker; exposure's pool
    is wider)."""
    per_slot = EXPOSURE_CANDIDATES_PER_SLOT if method in READS_EXPOSURE else CANDIDATES_PER_SLOT
    return int(min(n_items, max(k * per_slot, MIN_CANDIDATES, k)))


def _relevance(scores: np.ndarray) -> np.ndarray:
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros_like(scores, dtype=np.float64)
    low, high = scores[finite].min(), scores[finite].max()
    scaled = (scores - low) / (high - low) if high > low else np.ones_like(scores, dtype=np.float64)
    return np.where(finite, scaled, -np.inf)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


@RERANKERS.register("mmr")
def mmr(scores: np.ndarray, vectors: np.ndarray, k: int, diversify: float, **_: object) -> np.ndarray:
    """Positions (into the candidates) of ``k`` picks by maximal marginal relevance."""
    relevance = _relevance(np.asarray(scores, dtype=np.float64))
    unit = _unit(vectors)
    available = np.isfinite(relevance)
    closest = np.full(len(relevance), 0.0)  # max similarity to the picked items so far
    picks: list[int] = []
    for _ in range(min(k, int(available.sum()))):
        gain = np.where(available, (1 - diversify) * relevance - diversify * closest, -np.inf)
        best = int(np.argmax(gain))  # ties: the earlier (better-ranked) candidate
        picks.append(best)
        available[best] = False
        closest = np.maximum(closest, unit @ unit[best])
    return np.asarray(picks, dtype=np.int64)


@RERANKERS.register("dpp")
def greedy_dpp(scores: np.ndarray, vectors: np.ndarray, k: int, diversify: float, **_: object) -> np.ndarray:
    """Positions of ``k`` picks by greedy MAP inference of a DPP (Chen et al., 2018, Algorithm 1):
    incremental Cholesky, O(m·k) work per pick."""
    relevance = _relevance(np.asarray(scores, dtype=np.float64))
    available = np.isfinite(relevance)
    n = int(available.sum())
    if diversify == 0 or n == 0:
        order = np.lexsort((np.arange(len(relevance)), -np.where(available, relevance, -np.inf)))
        return order[: min(k, n)].astype(np.int64)
    theta = min((1 - diversify) / diversify, 50.0)
    quality = np.exp(theta * (np.where(available, relevance, 0.0) - 1.0))  # in (0, 1]; scale-free
    unit = _unit(vectors)
    similarity = np.clip(unit @ unit.T, 0.0, None) + 1e-6 * np.eye(len(unit))  # PSD, no exact ties
    kernel = quality[:, None] * similarity * quality[None, :]
    gains = np.where(available, np.diag(kernel).copy(), -np.inf)  # d_i^2
    floor = 1e-10 * float(np.max(gains))  # below it an item adds nothing the kernel can tell apart
    cholesky = np.zeros((min(k, n), len(relevance)))
    picks: list[int] = []
    for step in range(min(k, n)):
        best = int(np.argmax(gains))
        if not np.isfinite(gains[best]) or gains[best] <= floor:
            rest = [i for i in np.lexsort((np.arange(len(relevance)), -relevance)) if available[i]]
            picks += rest[: min(k, n) - len(picks)]  # the kernel is spent: fill by relevance
            break
        picks.append(best)
        available[best] = False
        e = (kernel[best] - cholesky[:step].T @ cholesky[:step, best]) / np.sqrt(gains[best])
        cholesky[step] = e
        gains = np.where(available, gains - e**2, -np.inf)
    return np.asarray(picks, dtype=np.int64)


@RERANKERS.register("exposure")
def by_exposure(scores: np.ndarray, vectors: np.ndarray | None, k: int, diversify: float, *,
                exposure: np.ndarray | None = None) -> np.ndarray:
    """Positions of the ``k`` best candidates by ``(1 - λ) · relevance - λ · exposure`` (ties: the
    better-ranked candidate); ``exposure`` is each candidate's share of the lists made so far."""
    relevance = _relevance(np.asarray(scores, dtype=np.float64))
    shares = np.zeros(len(relevance)) if exposure is None else np.asarray(exposure, dtype=np.float64)
    gain = np.where(np.isfinite(relevance), (1 - diversify) * relevance - diversify * shares, -np.inf)
    order = np.lexsort((np.arange(len(gain)), -gain))
    return order[np.isfinite(gain[order])][:k].astype(np.int64)


def rerank_candidates(scores: np.ndarray, candidates: np.ndarray, vectors: np.ndarray | None, k: int, *,
                      diversify: float, method: str = "mmr", ledger: ExposureLedger | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank each row's candidates to ``k``.

    ``scores`` and ``candidates`` are ``(n, m)`` (best first; ``-1`` candidates are padding),
    ``vectors`` ``(n, m, d)`` (the candidates' vectors; not read by ``"exposure"``). With
    ``"exposure"`` the rows are lists made in order and recorded in ``ledger`` (default: a new
    one, so exposure counts within this call). Returns the picked candidates and their original
    scores, ``(n, k)``, padded with ``-1`` / ``-inf``.
    """
    pick = RERANKERS.get(method)
    if method not in READS_EXPOSURE:
        ledger = None
    elif ledger is None:
        ledger = ExposureLedger()
    out = np.full((len(candidates), k), -1, dtype=np.int64)
    kept = np.full((len(candidates), k), -np.inf, dtype=np.float64)
    for row in range(len(candidates)):
        valid = candidates[row] >= 0
        row_scores = np.where(valid, scores[row], -np.inf).astype(np.float64)
        if diversify > 0:
            exposure = ledger.shares(candidates[row]) if ledger is not None else None
            order = pick(row_scores, None if vectors is None else vectors[row], k, diversify,
                         exposure=exposure)
        else:
            order = np.flatnonzero(valid)[:k]
        out[row, : len(order)] = candidates[row, order]
        kept[row, : len(order)] = scores[row, order]
        if ledger is not None:
            ledger.record(out[row])
    return out, kept
