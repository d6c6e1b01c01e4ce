"""Recall-targeted tuning: the cheapest nprobe / efSearch (and PQ re-ranking) reaching a recall."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

import mmrec.index.faiss_ops as faiss_ops
from mmrec.errors import ConfigError
from mmrec.index.item_index import ItemIndex

__all__ = ["exact_neighbours", "recall_at_k", "tune"]

logger = logging.getLogger(__name__)

EF_SEARCH_VALUES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
RERANK_VALUES = (1, 2, 4, 8, 16)
TRUTH_BLOCK_ROWS = 32_768


def exact_neighbours(index: ItemIndex, queries: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """Exact top-``k`` labels (alive items, each query's ``exclude`` label skipped), by blocks."""
    alive = np.flatnonzero(index.alive)
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_labels = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(alive), TRUTH_BLOCK_ROWS):
        block = alive[start : start + TRUTH_BLOCK_ROWS]
        sims = queries @ np.asarray(index.vectors[block], dtype=np.float32).T
        sims[block[None, :] == exclude[:, None]] = -np.inf
        scores = np.concatenate([best_scores, sims], axis=1)
        labels = np.concatenate([best_labels, np.broadcast_to(block, sims.shape)], axis=1)
        order = np.lexsort((labels, -scores), axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, order, 1)
        best_labels = np.take_along_axis(labels, order, 1)
    return best_labels


def ann_neighbours(index: ItemIndex, queries: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """The index's own top-``k`` (one FAISS call, re-ranked when the index re-ranks; each query's
    ``exclude`` label dropped), without ItemIndex.search's safety nets (which would flatter the
    parameters being tuned)."""
    rerank = int(index.params.get("rerank", 1))
    selector = None if index.alive.all() else faiss_ops.bitmap_selector(index.alive)
    scores, labels = faiss_ops.search(index.faiss_index, queries, (k + 1) * rerank,
                                      selector=selector, params=index.params)
    if rerank > 1:
        scores = index.exact_scores(queries, labels)
    scores = np.where(labels == exclude[:, None], -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(labels, order, 1)
    return np.where(np.isfinite(np.take_along_axis(scores, order, 1)), top, -1)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true neighbours that were found (``-1`` entries ignored)."""
    hits = [len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) / max(1, int((t >= 0).sum()))
            for f, t in zip(found, truth, strict=True)]
    return float(np.mean(hits))


def _candidates(index: ItemIndex) -> list[tuple[str, list[Any]]]:
    """(parameter, values from cheapest to dearest) to sweep for this index type."""
    ivf = faiss_ops.ivf_of(index.faiss_index)
    sweeps = []
    if ivf is not None:
        nprobes = sorted({min(ivf.nlist, 1 << p) for p in range(0, 17)})
        sweeps.append(("nprobe", nprobes))
    if faiss_ops.hnsw_of(index.faiss_index) is not None:
        sweeps.append(("efSearch", list(EF_SEARCH_VALUES)))
    return sweeps


def tune(index: ItemIndex, *, target_recall: float, k: int = 10, n_queries: int = 500,
         seed: int = 0) -> dict[str, Any]:
    """Set the cheapest search parameters reaching ``target_recall`` (recall@``k`` vs exact search
    on ``n_queries`` held-out item queries: each query item is excluded from its own neighbours).

    The result (parameters, achieved recall, the measured curve) is stored in
    ``index.params["tuning"]`` and returned. If no setting reaches the target, the best one is kept
    and a warning says by how much it falls short.
    """
    if not 0 < target_recall <= 1:
        raise ConfigError(f"target_recall must be in (0, 1], got {target_recall}.")
    alive = np.flatnonzero(index.alive)
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.choice(alive, size=min(n_queries, len(alive)), replace=False))
    queries = np.asarray(index.vectors[labels], dtype=np.float32)
    truth = exact_neighbours(index, queries, k, labels)

    def measure() -> float:
        faiss_ops.apply_params(index.faiss_index, index.params)
        return recall_at_k(ann_neighbours(index, queries, k, labels), truth)

    curve: list[dict[str, Any]] = []
    reranks = RERANK_VALUES if "PQ" in index.spec else (int(index.params.get("rerank", 1)),)
    settings = [{name: value, "rerank": rerank} for rerank in reranks
                for name, values in _candidates(index) for value in values]
    if not settings:  # exact index: nothing to tune
        achieved, chosen = measure(), {}
        curve.append({"recall": achieved})
    else:
        achieved, chosen = -1.0, {}
        for setting in settings:  # cheapest first: stop at the first that reaches the target
            index.params.update(setting)
            recall = measure()
            curve.append(setting | {"recall": recall})
            if recall > achieved:
                achieved, chosen = recall, setting
            if recall >= target_recall:
                achieved, chosen = recall, setting
                break
    index.params.update(chosen)
    faiss_ops.apply_params(index.faiss_index, index.params)
    result = {"target_recall": target_recall, "k": k, "queries": len(labels),
              "achieved_recall": achieved, "params": chosen, "curve": curve}
    index.params["tuning"] = result
    index.params[f"recall@{k}"] = achieved
    message = (f"tuned {index.spec}: recall@{k} {achieved:.3f} (target {target_recall}) "
               f"with {chosen or 'exact search'}")
    if achieved < target_recall:
        logger.warning("%s: the target is not reached; the best setting is kept", message)
    else:
        logger.info(message)
    return result
