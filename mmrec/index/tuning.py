"""Recall-targeted tuning: the cheapest nprobe / efSearch (and re-scoring depth) reaching a recall."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import mmrec.index.faiss_ops as faiss_ops
from mmrec.errors import ConfigError
from mmrec.index.item_index import ItemIndex
from mmrec.index.scann_backend import ScannIndex

__all__ = ["TuningQueries", "tuning_queries", "probe_for", "exact_neighbours", "recall_at_k", "tune",
           "knob_values"]

logger = logging.getLogger(__name__)

EF_SEARCH_VALUES = (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024)
# Re-scoring depths: how many compressed-code candidates per result are scored exactly (our own
# re-ranking of PQ shortlists, ``rerank``; FAISS's refine stage, ``k_factor_rf``).
RERANK_VALUES = (1, 2, 4, 8, 16)
REFINE_VALUES = (2, 4, 8, 16)
TRUTH_BLOCK_ROWS = 65_536
DEFAULT_QUERIES = 1000
TIE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class TuningQueries:
    """Held-out item queries, their exact top-``k`` labels (each query's own item excluded) and
    their ``k``-th best exact score (a found item scoring as high is a true neighbour: duplicates
    and ties in the catalog do not count as misses)."""

    labels: np.ndarray
    queries: np.ndarray
    truth: np.ndarray
    k: int
    kth_score: np.ndarray | None = None

    def recall_per_query(self, index: ItemIndex, found: np.ndarray) -> np.ndarray:
        """Each query's share of ``k`` true neighbours among ``found`` (tie-aware)."""
        if self.kth_score is None:
            return recall_per_query(found, self.truth)
        scores = index.exact_scores(self.queries, found)
        hits = ((found >= 0) & (scores >= self.kth_score[:, None] - TIE_TOLERANCE)).sum(axis=1)
        wanted = np.maximum((self.truth >= 0).sum(axis=1), 1)
        return np.minimum(hits, wanted) / wanted


def exact_neighbours(index: ItemIndex, queries: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """Exact top-``k`` labels (alive items, each query's ``exclude`` label skipped), by blocks:
    FAISS's brute-force ``knn`` gives each block's top ``k + 1`` (one spare for the excluded label),
    then the blocks are merged. Ties at the ``k``-th place may fall either way; recall counts them
    by score (``TuningQueries.kth_score``)."""
    f = faiss_ops.faiss()
    alive = np.flatnonzero(index.alive)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_labels = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(alive), TRUTH_BLOCK_ROWS):
        block = alive[start : start + TRUTH_BLOCK_ROWS]
        rows = np.ascontiguousarray(index.vectors[block], dtype=np.float32)
        sims, top = f.knn(queries, rows, min(k + 1, len(block)), metric=f.METRIC_INNER_PRODUCT)
        labels = np.where(top >= 0, block[np.maximum(top, 0)], -1)
        sims = np.where((labels == exclude[:, None]) | (labels < 0), -np.inf, sims).astype(np.float32)
        scores = np.concatenate([best_scores, sims], axis=1)
        labels = np.concatenate([best_labels, labels], axis=1)
        order = np.lexsort((labels, -scores), axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, order, 1)
        best_labels = np.take_along_axis(labels, order, 1)
    return np.where(np.isfinite(best_scores), best_labels, -1)


def tuning_queries(index: ItemIndex, *, k: int, n_queries: int = DEFAULT_QUERIES,
                   seed: int = 0) -> TuningQueries:
    """A seeded sample of the index's alive items as queries, with their exact neighbours."""
    alive = np.flatnonzero(index.alive)
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.choice(alive, size=min(n_queries, len(alive)), replace=False))
    return probe_for(index, labels, k=k)


def probe_for(index: ItemIndex, labels: np.ndarray, *, k: int) -> TuningQueries:
    """The items at ``labels`` as queries against the index's other alive items."""
    queries = np.asarray(index.vectors[labels], dtype=np.float32)
    truth = exact_neighbours(index, queries, k, labels)
    kth = index.exact_scores(queries, truth[:, -1:])[:, 0]
    return TuningQueries(labels, queries, truth, k, kth)


def ann_neighbours(index: ItemIndex, queries: np.ndarray, k: int, exclude: np.ndarray) -> np.ndarray:
    """The index's own top-``k`` (one FAISS call, re-ranked when the index re-ranks; each query's
    ``exclude`` label dropped), without ItemIndex.search's safety nets (which would flatter the
    parameters being tuned)."""
    rerank = int(index.params.get("rerank", 1))
    # No selector when FAISS holds only alive rows (e.g. a candidate built without its held-out
    # queries, or one whose removals were physical): a selector slows every scan.
    only_alive = int(index.faiss_index.ntotal) == int(index.alive.sum())
    selector = None if only_alive else faiss_ops.bitmap_selector(index.alive)
    # One spare result for a query item that is in the index itself; the re-scored shortlist stays
    # as long as a k-search's (a longer one would flatter the depth being tuned).
    spare = int(bool(index.alive[exclude[exclude >= 0]].any()))
    overrides = None
    if faiss_ops.refine_of(index.faiss_index) is not None:
        depth = float(index.params.get("k_factor_rf", 1))
        overrides = {"k_factor_rf": depth * k / (k + spare) + 1e-6}
    scores, labels = faiss_ops.search(index.faiss_index, queries, k * rerank + spare,
                                      selector=selector, params=index.params, overrides=overrides)
    if rerank > 1:
        scores = index.exact_scores(queries, labels)
    scores = np.where(labels == exclude[:, None], -np.inf, scores)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(labels, order, 1)
    return np.where(np.isfinite(np.take_along_axis(scores, order, 1)), top, -1)


def recall_per_query(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each row's share of its true neighbours that were found (``-1`` entries ignored)."""
    return np.asarray([len(set(f[f >= 0].tolist()) & set(t[t >= 0].tolist())) / max(1, int((t >= 0).sum()))
                       for f, t in zip(found, truth, strict=True)], dtype=np.float64)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row's true neighbours that were found (``-1`` entries ignored)."""
    return float(np.mean(recall_per_query(found, truth)))


def knob_values(index: Any) -> tuple[str, list[int]] | None:
    """The search knob of this index type and its values, cheapest first: every nprobe (ScaNN:
    leaves_to_search) up to 16, then steps of about 12% (the cheapest setting is found by
    bisection, so a fine grid costs little); efSearch from 16 to 1,024. None for exact indices."""
    ivf = faiss_ops.ivf_of(index)
    if ivf is not None:
        return "nprobe", _probe_grid(int(ivf.nlist))
    if isinstance(index, ScannIndex):
        return "leaves_to_search", _probe_grid(index.spec.leaves)
    if faiss_ops.hnsw_of(index) is not None:
        return "efSearch", list(EF_SEARCH_VALUES)
    return None


def _probe_grid(lists: int) -> list[int]:
    """Every count of lists (leaves) to search up to 16, then steps of about 12 %."""
    values = set(range(1, 17))
    value = 16.0
    while value < lists:
        value *= 1.12
        values.add(int(round(value)))
    return sorted(v for v in values if v <= lists) or [lists]


def _depth_knob(index: ItemIndex) -> tuple[str, tuple[int, ...]]:
    """The re-scoring depth to sweep: FAISS refine (``k_factor_rf``), our PQ re-ranking
    (``rerank``), or none."""
    if faiss_ops.refine_of(index.faiss_index) is not None:
        return "k_factor_rf", REFINE_VALUES
    if "PQ" in index.spec:
        return "rerank", RERANK_VALUES
    return "rerank", (int(index.params.get("rerank", 1)),)


def _lowest_reaching(values: list[int], measure: Callable[[int], float], target: float,
                     start: int = 0) -> int | None:
    """The first value from position ``start`` on whose measured recall reaches ``target`` (recall
    grows with the knob): galloping from the cheap end (positions start, +1, +3, +7, ...; dear
    settings are slow to measure), then bisection; None if even the last value does not reach it."""
    low, step = start, 1
    while True:
        high = min(low + step - 1, len(values) - 1)
        if measure(values[high]) >= target:
            break
        if high == len(values) - 1:
            return None
        low, step = high + 1, step * 2
    while low < high:
        middle = (low + high) // 2
        if measure(values[middle]) >= target:
            high = middle
        else:
            low = middle + 1
    return values[low]


def _seconds_per_query(index: ItemIndex, probe: TuningQueries, setting: dict[str, int]) -> float:
    """Best of three timed searches of the probe queries with ``setting``."""
    index.params.update(setting)
    faiss_ops.apply_params(index.faiss_index, index.params)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        ann_neighbours(index, probe.queries, probe.k, probe.labels)
        best = min(best, time.perf_counter() - start)
    return best / max(1, len(probe.labels))


class _TooSlow(Exception):
    """A setting below the target already searches slower than the allowed time per query."""


def tune(index: ItemIndex, *, target_recall: float, k: int = 10, n_queries: int = DEFAULT_QUERIES,
         seed: int = 0, probe: TuningQueries | None = None,
         give_up_after: float | None = None, least: int | None = None) -> dict[str, Any]:
    """Set the cheapest search parameters reaching ``target_recall`` (recall@``k`` vs exact search
    on ``n_queries`` held-out item queries: each query item is excluded from its own neighbours).

    A setting counts as reaching the target when its recall minus one standard error (over the
    queries) does, so the claim holds on queries the tuning never saw. With a re-scoring depth
    (PQ codes), each depth gets its cheapest knob value, and the fastest of those pairs (timed on
    the probe queries) wins. The result (parameters, achieved recall, the measured curve) is stored
    in ``index.params["tuning"]`` and returned. If no setting reaches the target, the best one is
    kept and a warning says by how much it falls short. ``probe`` reuses queries (and their exact
    neighbours) across indices over the same vectors. ``give_up_after`` (seconds per query): a
    setting still short of the target that already searches slower ends the search (every dearer
    setting is slower still); the result then says ``"pruned": True``. ``least``: the lowest knob
    value worth trying (e.g. an index sharing another's coarse quantiser cannot reach the target with
    fewer probes than that one needed).
    """
    if not 0 < target_recall <= 1:
        raise ConfigError(f"target_recall must be in (0, 1], got {target_recall}.")
    if probe is None or probe.k != k:
        probe = tuning_queries(index, k=k, n_queries=n_queries, seed=seed)
    curve: list[dict[str, Any]] = []
    measured: dict[tuple[tuple[str, int], ...], float] = {}

    def recall_of(setting: dict[str, int]) -> float:
        key = tuple(sorted(setting.items()))
        if key not in measured:
            index.params.update(setting)
            faiss_ops.apply_params(index.faiss_index, index.params)
            started = time.perf_counter()
            found = ann_neighbours(index, probe.queries, k, probe.labels)
            seconds = (time.perf_counter() - started) / max(1, len(probe.labels))
            per_query = probe.recall_per_query(index, found)
            error = float(per_query.std(ddof=1) / np.sqrt(len(per_query))) if len(per_query) > 1 else 0.0
            measured[key] = float(per_query.mean()) - error
            curve.append(setting | {"recall": float(per_query.mean()), "recall_low": measured[key],
                                    "ms_per_query": round(seconds * 1e3, 4)})
            if give_up_after is not None and measured[key] < target_recall and seconds > give_up_after:
                raise _TooSlow
        return measured[key]

    knob = knob_values(index.faiss_index)
    depth_name, depths = _depth_knob(index)
    reaching: list[dict[str, int]] = []
    pruned = False
    floor = 0  # a shallower depth needs at least the knob value of a deeper one
    if knob is not None and least is not None:
        floor = next((position for position, value in enumerate(knob[1]) if value >= least), len(knob[1]) - 1)
    for depth in sorted(depths, reverse=True):  # deepest first: if it cannot reach, none can
        base = {depth_name: depth} if depth_name != "rerank" or len(depths) > 1 else {}
        if knob is None:
            recall_of(base)
            break
        name, values = knob
        try:
            value = _lowest_reaching(values, lambda v, base=base, name=name: recall_of(base | {name: v}),
                                     target_recall, start=floor)
        except _TooSlow:
            pruned, value = True, None
        if value is None:
            break
        reaching.append(base | {name: value})
        floor = values.index(value)
    if len(reaching) > 1:  # several depths reach it, each with its own knob value: time them
        chosen = min(reaching, key=lambda setting: _seconds_per_query(index, probe, setting))
    elif reaching:
        chosen = reaching[0]
    else:  # nothing reaches the target: keep the best measured setting
        best = max(curve, key=lambda point: point["recall_low"])
        chosen = {key: value for key, value in best.items()
                  if key not in ("recall", "recall_low", "ms_per_query")}
    achieved = recall_of(chosen)
    achieved_mean = next(p["recall"] for p in curve
                         if all(p.get(key) == value for key, value in chosen.items()))
    index.params.update(chosen)
    faiss_ops.apply_params(index.faiss_index, index.params)
    curve.sort(key=lambda point: tuple(point.get(key, 0) for key in sorted(chosen)))
    result = {"target_recall": target_recall, "k": k, "queries": len(probe.labels),
              "achieved_recall": achieved_mean, "achieved_recall_low": achieved,
              "params": chosen, "curve": curve, "pruned": pruned and not reaching}
    index.params["tuning"] = result
    index.params[f"recall@{k}"] = achieved_mean
    message = (f"tuned {index.spec}: recall@{k} {achieved_mean:.3f} (target {target_recall}) "
               f"with {chosen or 'exact search'}")
    if achieved < target_recall:
        logger.warning("%s: the target is not reached; the best setting is kept", message)
    else:
        logger.debug(message)
    return result
