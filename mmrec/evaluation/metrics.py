"""Ranking and rating metrics as pure, vectorised functions of top-k lists and held-out targets.

``top`` is an ``(n, K)`` int64 matrix of ranked item positions per user (``-1`` pads), ``targets``
the held-out item positions of each user, ``hits`` the ``(n, K)`` boolean matrix saying which
ranked items are targets and ``n_targets`` the number of held-out items per user. Per-user metrics
return one value per user; :func:`ranking_metrics` averages them over users with a target.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mmrec.errors import ConfigError

__all__ = ["hits_matrix", "targets_per_user", "recall_at_k", "precision_at_k", "f1_at_k", "ndcg_at_k",
           "hit_rate_at_k", "mrr_at_k", "average_precision_at_k", "catalog_coverage", "novelty",
           "intra_list_diversity", "gini_index", "tail_share", "miscalibration",
           "ranking_metrics", "rating_metrics", "RANKING_METRICS"]


def hits_matrix(top: np.ndarray, targets: Sequence[np.ndarray]) -> np.ndarray:
    """``(n, K)`` bool: whether ``top[u, r]`` is one of user ``u``'s target positions."""
    hits = np.zeros(top.shape, dtype=bool)
    for row, wanted in enumerate(targets):
        if len(wanted):
            hits[row] = np.isin(top[row], wanted) & (top[row] >= 0)
    return hits


def targets_per_user(user_rows: np.ndarray, positions: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Each user's distinct target positions, from parallel arrays of held-out events (the user's
    row, the item's position). An item outside the ranked universe (position < 0) becomes ``-2``:
    never ranked, still counted as a target."""
    positions = np.where(np.asarray(positions) >= 0, positions, -2)
    order = np.argsort(user_rows, kind="stable")
    bounds = np.searchsorted(np.asarray(user_rows)[order], np.arange(n_users + 1))
    return [np.unique(positions[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def recall_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """Share of each user's targets found in the top ``k``."""
    return hits[:, :k].sum(axis=1) / np.maximum(n_targets, 1)


def precision_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """Share of the top ``k`` slots holding a target (a list shorter than ``k`` still divides by ``k``)."""
    return hits[:, :k].sum(axis=1) / k


def f1_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """Harmonic mean of precision and recall at ``k`` (0 when both are 0)."""
    precision, recall = precision_at_k(hits, n_targets, k), recall_at_k(hits, n_targets, k)
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)


def hit_rate_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """1 when any target is in the top ``k``."""
    return hits[:, :k].any(axis=1).astype(np.float64)


def ndcg_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """Binary-relevance NDCG: DCG of the hits over the DCG of an ideal ranking."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits[:, :k] * discounts[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal_len = np.minimum(n_targets, k).astype(np.int64)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_len]
    return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)


def mrr_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """Reciprocal rank of the first target in the top ``k`` (0 when none)."""
    window = hits[:, :k]
    first = window.argmax(axis=1)
    return np.where(window.any(axis=1), 1.0 / (first + 1), 0.0)


def average_precision_at_k(hits: np.ndarray, n_targets: np.ndarray, k: int) -> np.ndarray:
    """AP@k: mean of precision@rank over the ranks that hit, divided by ``min(n_targets, k)``."""
    window = hits[:, :k].astype(np.float64)
    precision_at_rank = np.cumsum(window, axis=1) / np.arange(1, window.shape[1] + 1)
    return (precision_at_rank * window).sum(axis=1) / np.maximum(np.minimum(n_targets, k), 1)


RANKING_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "f1": f1_at_k,
    "hit": hit_rate_at_k,
    "ndcg": ndcg_at_k,
    "mrr": mrr_at_k,
    "map": average_precision_at_k,
}


def catalog_coverage(top: np.ndarray, n_items: int, k: int) -> float:
    """Share of the ``n_items`` catalog that appears in at least one user's top ``k``."""
    shown = np.unique(top[:, :k])
    return float((shown >= 0).sum() / max(n_items, 1))


def novelty(top: np.ndarray, popularity: np.ndarray, n_users: int, k: int) -> float:
    """Mean self-information ``-log2(p(i))`` of recommended items, ``p(i)`` = share of training
    users who interacted with ``i`` (unseen items count as seen by one user, not infinitely novel)."""
    shown = top[:, :k]
    shown = shown[shown >= 0]
    if not shown.size:
        return 0.0
    share = np.maximum(popularity[shown], 1.0) / max(n_users, 1)
    return float(-np.log2(share).mean())


def _unit_rows(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


def intra_list_diversity(top: np.ndarray, features: np.ndarray, k: int, *, chunk: int = 1024) -> float:
    """Mean over lists (of at least two items) of the mean pairwise cosine distance ``1 - cos`` of
    their items' ``features`` rows: content vectors, or one-hot / multi-hot categories (then two
    items of one category are at 0, of disjoint categories at 1). Items without features (a zero
    row) are at distance 1 from everything."""
    unit = _unit_rows(features)
    means = []
    for start in range(0, len(top), chunk):
        shown = top[start : start + chunk, :k]
        valid = shown >= 0
        vectors = unit[np.maximum(shown, 0)] * valid[..., None]
        similarity = np.einsum("ukd,ujd->ukj", vectors, vectors)
        n = valid.sum(axis=1)
        pairs = n * (n - 1)
        same = similarity.sum(axis=(1, 2)) - np.einsum("ukk->u", similarity)
        keep = pairs > 0
        means.append(1.0 - same[keep] / pairs[keep])
    values = np.concatenate(means) if means else np.zeros(0)
    return float(values.mean()) if values.size else 0.0


def gini_index(top: np.ndarray, n_items: int, k: int) -> float:
    """Gini coefficient of how often each of the ``n_items`` is shown in the top ``k`` lists: 0 when
    every item is shown equally often, towards 1 when a few items take all the exposure."""
    shown = top[:, :k]
    counts = np.sort(np.bincount(shown[shown >= 0], minlength=n_items).astype(np.float64))
    total = counts.sum()
    if total == 0 or n_items < 2:
        return 0.0
    ranks = np.arange(1, n_items + 1)
    return float(((2 * ranks - n_items - 1) * counts).sum() / (n_items * total))


def tail_share(top: np.ndarray, popularity: np.ndarray, k: int, *, head: float = 0.2) -> float:
    """Share of the recommended slots that go to long-tail items: those outside the ``head``
    fraction of items with the most training users (ties broken by position)."""
    order = np.lexsort((np.arange(len(popularity)), -np.asarray(popularity, dtype=np.float64)))
    in_head = np.zeros(len(popularity), dtype=bool)
    in_head[order[: int(np.ceil(head * len(popularity)))]] = True
    shown = top[:, :k]
    shown = shown[shown >= 0]
    return float((~in_head[shown]).mean()) if shown.size else 0.0


def miscalibration(top: np.ndarray, history: Any, categories: np.ndarray, k: int, *,
                   alpha: float = 0.01) -> float:
    """Mean KL divergence (Steck, 2018) between the category mix of each user's history and of
    their top ``k``: ``KL(p || (1 - alpha) q + alpha p)``; 0 when the list mirrors the history.

    ``history`` is a ``(n_users, n_items)`` sparse or dense matrix of the users' history items (rows
    aligned with ``top``); ``categories`` an ``(n_items, n_categories)`` one-hot / multi-hot matrix
    (an item's categories share its weight equally). Users without a categorised history item or
    without a recommended item are left out.
    """
    categories = np.asarray(categories, dtype=np.float64)
    per_item = categories / np.maximum(categories.sum(axis=1, keepdims=True), 1.0)
    p = np.asarray(history @ per_item, dtype=np.float64)
    shown = top[:, :k]
    valid = (shown >= 0)[..., None]
    q = (per_item[np.maximum(shown, 0)] * valid).sum(axis=1)
    p_total, q_total = p.sum(axis=1, keepdims=True), q.sum(axis=1, keepdims=True)
    keep = (p_total[:, 0] > 0) & (q_total[:, 0] > 0)
    if not keep.any():
        return 0.0
    p, q = p[keep] / p_total[keep], q[keep] / q_total[keep]
    q = (1 - alpha) * q + alpha * p
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(q > 0, q, 1.0)), 0.0)
    return float(terms.sum(axis=1).mean())


def ranking_metrics(top: np.ndarray, targets: Sequence[np.ndarray], ks: Sequence[int] = (10, 20),
                    metrics: Sequence[str] = ("recall", "ndcg", "hit", "mrr")) -> dict[str, float]:
    """Mean of each metric at each ``k`` over users with at least one target (key ``metric@k``)."""
    unknown = sorted(set(metrics) - set(RANKING_METRICS))
    if unknown:
        raise ConfigError(f"unknown ranking metric(s) {unknown}; choose from {sorted(RANKING_METRICS)}.")
    n_targets = np.asarray([len(t) for t in targets], dtype=np.int64)
    hits = hits_matrix(top, targets)
    rows = n_targets > 0
    results: dict[str, float] = {}
    for k in ks:
        for name in metrics:
            values = RANKING_METRICS[name](hits[rows], n_targets[rows], k)
            results[f"{name}@{k}"] = float(values.mean()) if rows.any() else 0.0
    results["users"] = int(rows.sum())
    return results


def rating_metrics(predicted: np.ndarray, actual: np.ndarray, *,
                   scale: tuple[float, float] | None = None) -> dict[str, float]:
    """MSE, RMSE and MAE of rating predictions, and accuracy: the share whose prediction, rounded
    to the nearest whole rating (clipped to ``scale``, default the observed range), is exact."""
    predicted = np.asarray(predicted, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    if predicted.shape != actual.shape:
        raise ConfigError(f"rating_metrics: {predicted.shape} predictions for {actual.shape} ratings.")
    if not actual.size:
        return {"mse": float("nan"), "rmse": float("nan"), "mae": float("nan"),
                "accuracy": float("nan"), "ratings": 0}
    low, high = scale if scale is not None else (actual.min(), actual.max())
    error = predicted - actual
    mse = float(np.mean(error**2))
    rounded = np.clip(np.rint(predicted), low, high)
    return {"mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.mean(np.abs(error))),
            "accuracy": float(np.mean(rounded == actual)), "ratings": int(actual.size)}
