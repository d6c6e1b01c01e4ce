"""Ranking metrics as pure, vectorised functions of top-k lists and held-out targets.

``top`` is an ``(n, K)`` int64 matrix of ranked item positions per user (``-1`` pads), ``targets``
an ``(n, K)`` boolean matrix saying which of those are held-out items, and ``n_targets`` the number
of held-out items per user. Every metric returns the per-user values; average them yourself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["hits_matrix", "recall_at_k", "ndcg_at_k", "hit_rate_at_k", "mrr_at_k", "ranking_metrics"]


def hits_matrix(top: np.ndarray, targets: Sequence[np.ndarray]) -> np.ndarray:
    """``(n, K)`` bool: whether ``top[u, r]`` is one of user ``u``'s target positions."""
    hits = np.zeros(top.shape, dtype=bool)
    for row, wanted in enumerate(targets):
        if len(wanted):
            hits[row] = np.isin(top[row], wanted) & (top[row] >= 0)
    return hits


def recall_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """Share of each user's targets found in the top ``k``."""
    return hits[:, :k].sum(axis=1) / np.maximum(n_targets, 1)


def hit_rate_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """1 when any target is in the top ``k``."""
    return hits[:, :k].any(axis=1).astype(np.float64)


def ndcg_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """Binary-relevance NDCG: DCG of the hits over the DCG of an ideal ranking."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discounts[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal_len = np.minimum(n_targets, k).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_len]
    return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)


def mrr_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first target in the top ``k`` (0 when none)."""
    window = hits[:, :k]
    first = window.argmax(axis=1)
    return np.where(window.any(axis=1), 1.0 / (first + 1), 0.0)


def ranking_metrics(top: np.ndarray, targets: Sequence[np.ndarray],
                    ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """Mean Recall, NDCG, hit rate and MRR at each ``k`` over users with at least one target."""
    n_targets = np.asarray([len(t) for t in targets], dtype=np.int64)
    hits = hits_matrix(top, targets)
    rows = n_targets > 0
    results: dict[str, float] = {}
    for k in ks:
        results[f"recall@{k}"] = float(recall_at_k(hits, n_targets, k)[rows].mean()) if rows.any() else 0.0
        results[f"ndcg@{k}"] = float(ndcg_at_k(hits, n_targets, k)[rows].mean()) if rows.any() else 0.0
        results[f"hit@{k}"] = float(hit_rate_at_k(hits, k)[rows].mean()) if rows.any() else 0.0
        results[f"mrr@{k}"] = float(mrr_at_k(hits, k)[rows].mean()) if rows.any() else 0.0
    results["users"] = int(rows.sum())
    return results
