"""A contest's trials and the rules that read them without a clock: which finalist wins within
the timing margin, and which IVF list counts — and whether ScaNN — are worth building, from the
rows a query scans (counted on the held-out queries, so the path does not depend on the machine's
load). :mod:`mmrec.index.chooser` runs the contest."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import mmrec.index.faiss_ops as faiss_ops
from mmrec.index.item_index import ItemIndex

__all__ = ["Trial", "pick_stable", "distances_per_query_of", "needless_lists", "few_rows_scanned",
           "ivf_cost", "FAMILY_ORDER", "FINALIST_SPREAD", "SIMPLER_MARGIN", "COARSE_DISTANCE_COST",
           "IVF_GAIN", "SCANN_REORDER", "SCANN_MIN_ROWS"]

# The last timing: candidates within FINALIST_SPREAD of the fastest are timed again (the contest's
# FINAL_ROUNDS) and compared by their median; a more complex one must beat a simpler one by
# SIMPLER_MARGIN.
FINALIST_SPREAD = 1.5
SIMPLER_MARGIN = 1.10
# Families from simplest to most complex (the tie-break within SIMPLER_MARGIN).
FAMILY_ORDER = ("flat", "ivf_flat", "ivf_fastscan_refine", "ivf_rabitq_refine", "hnsw", "scann")
# A coarse centroid's distance (one matrix product for the whole batch) costs about a tenth of a list
# row's scan (one thread, 20k-100k clustered 64-d vectors: 1.4 ns against 14 ns, plus ~1.2 us a query;
# counted alike, 20k items kept IVF128 at 284k QPS where IVF256 searched at 389k).
COARSE_DISTANCE_COST = 0.1
# The next IVF list count is tried only after the last one cut the row scans per query by this factor.
IVF_GAIN = 1.05
# ScaNN re-scores this many rows exactly; it is built only when the fewest IVF lists scan at least
# SCANN_MIN_ROWS rows a query (clustered 64-d vectors: at 100k, 390 rows, IVF256 searched at 1.04x
# ScaNN's QPS and ScaNN's build was 60 % of the contest's; at 200k, 780 rows, ScaNN searched 1.4x
# IVF512's; at 1M, ~3,900 rows, 3.5x IVF1024's).
SCANN_REORDER = 100
SCANN_MIN_ROWS = 5 * SCANN_REORDER


@dataclass
class Trial:
    """One measured candidate."""

    spec: str
    family: str
    build_seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    recall: float = 0.0
    qps: float = 0.0
    index_bytes: int = 0
    reached: bool = False
    status: str = "measured"
    distances_per_query: float | None = None  # IVF: coarse centroids + probed rows (a count)
    rounds_qps: list[float] = field(default_factory=list)  # the final interleaved timing, when a finalist

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["build_seconds"] = round(self.build_seconds, 3)
        out["recall"] = round(self.recall, 4)
        out["qps"] = round(self.qps, 1)
        out["rounds_qps"] = [round(q, 1) for q in self.rounds_qps]
        if self.distances_per_query is not None:
            out["distances_per_query"] = round(self.distances_per_query, 1)
        return out

    @property
    def lists(self) -> int:
        """IVF lists (0 for other families)."""
        return int(self.spec[3:].split(",")[0].split("_")[0]) if self.spec.startswith("IVF") else 0

    @property
    def rows_scanned(self) -> float | None:
        """IVF: the rows of the lists a query probes (its counted distances less its centroids;
        None without a count)."""
        return None if self.distances_per_query is None else self.distances_per_query - self.lists

    @property
    def scan_cost(self) -> float | None:
        """IVF: what a query costs in list-row scans: :attr:`rows_scanned` plus its coarse
        centroids at ``COARSE_DISTANCE_COST`` each (None without a count)."""
        rows = self.rows_scanned
        return None if rows is None else rows + COARSE_DISTANCE_COST * self.lists

    @property
    def complexity(self) -> tuple[int, int]:
        """Simpler first: the family's rank, then fewer IVF lists."""
        return FAMILY_ORDER.index(self.family), self.lists


def pick_stable(trials: list[Trial]) -> Trial:
    """The winner among timed finalists: the fastest by median QPS, unless a simpler one is within
    ``SIMPLER_MARGIN`` of it (then the simplest such) — but between list counts of one family
    within the margin, the counts decide with the timing: more lists that are faster *and* scan
    fewer rows (counted, centroids at a tenth) win. (At 20k clustered vectors IVF256 measured
    1.05-1.15x IVF128 in one-thread medians, across the margin; it counts 104 row scans a query
    against 169: by the margin alone the choice flipped between runs.)"""
    fastest = max(trials, key=lambda t: t.qps)
    close = [t for t in trials if t.qps * SIMPLER_MARGIN >= fastest.qps]
    simplest = min(close, key=lambda t: t.complexity)
    for trial in sorted(close, key=lambda t: -t.qps):
        if (trial.family == simplest.family and trial.qps > simplest.qps
                and None not in (trial.scan_cost, simplest.scan_cost)
                and trial.scan_cost < simplest.scan_cost):
            return trial
    return simplest


def distances_per_query_of(index: ItemIndex, queries: np.ndarray, nprobe: int) -> float | None:
    """Distances an IVF search at ``nprobe`` computes per query: its coarse centroids plus the rows
    of the lists it probes (counted on ``queries``); None for other indices or on a GPU."""
    ivf = faiss_ops.ivf_of(index.faiss_index)
    if ivf is None:
        return None
    try:
        sizes = np.array([ivf.invlists.list_size(i) for i in range(ivf.nlist)], dtype=np.int64)
        _, lists = ivf.quantizer.search(np.ascontiguousarray(queries, dtype=np.float32), int(nprobe))
    except (RuntimeError, AttributeError):
        return None
    return float(ivf.nlist + sizes[np.maximum(lists, 0)].sum(axis=1).mean())


def _ivf_floor(nlist: int, n_items: int, best: Trial) -> float:
    """The least a query could cost (:attr:`Trial.scan_cost`) with ``nlist`` lists, given the best
    IVF so far: its centroids plus at least as many probes as ``best`` needed (more, smaller lists
    never need fewer to reach the same recall) of average-sized lists; 0 without a count (a GPU)."""
    if best.distances_per_query is None:
        return 0.0
    return COARSE_DISTANCE_COST * nlist + int(best.params.get("nprobe", 1)) * n_items / nlist


def needless_lists(nlist: int, n_items: int, best_ivf: Trial, leader: Trial | None) -> str | None:
    """Why an IVF-Flat with ``nlist`` lists need not be built, given the best IVF so far and the
    contest's leader, or None: even its floor of row scans a query would not cut the best IVF's by
    ``IVF_GAIN``, or the QPS that floor could buy would be more than ``FINALIST_SPREAD`` below a
    faster index of another family (a wide margin: this one rule reads timings, and a near tie
    must not decide what is built)."""
    floor, cost = _ivf_floor(nlist, n_items, best_ivf), ivf_cost(best_ivf)
    if floor * IVF_GAIN >= cost:
        probes = best_ivf.params.get("nprobe", 1)
        return (f"at least {floor:,.0f} row scans a query ({probes} lists of ~{n_items / nlist:,.0f} "
                f"rows + its centroids at {COARSE_DISTANCE_COST:g} each), not {IVF_GAIN:.2f}x fewer "
                f"than {best_ivf.spec}'s {cost:,.0f}")
    ceiling = _ivf_ceiling(floor, best_ivf)
    if leader is not None and leader.family != "ivf_flat" and ceiling * FINALIST_SPREAD < leader.qps:
        return (f"at most ~{ceiling:,.0f} QPS ({best_ivf.spec}'s {best_ivf.qps:,.0f} scaled by its "
                f"{cost:,.0f} row scans a query to at least {floor:,.0f}): not even a finalist beside "
                f"{leader.spec}'s {leader.qps:,.0f}")
    return None


def few_rows_scanned(best_ivf: Trial) -> str | None:
    """Why ScaNN need not be built beside ``best_ivf`` (the fewest lists, tuned), or None: its
    lists' rows a query scans (counted) are under ``SCANN_MIN_ROWS``, too few for ScaNN's cheaper
    4-bit scan to pay for its exact re-scoring of ``SCANN_REORDER`` rows and its build."""
    rows = best_ivf.rows_scanned
    if rows is None or rows >= SCANN_MIN_ROWS:
        return None
    return (f"{best_ivf.spec} scans ~{rows:,.0f} rows a query, under {SCANN_MIN_ROWS:,}: ScaNN's exact "
            f"re-scoring of {SCANN_REORDER} alone is a fifth of that, its build does not pay back")


def _ivf_ceiling(floor: float, best: Trial) -> float:
    """The most QPS an IVF-Flat costing ``floor`` row scans a query could reach, from the measured
    ``best`` IVF: its QPS scaled by its row scans over ``floor`` (an over-estimate: a query's fixed
    costs do not shrink with its scans); infinite without a count (on a GPU)."""
    if best.scan_cost is None or floor <= 0:
        return math.inf
    return best.qps * best.scan_cost / floor


def ivf_cost(trial: Trial) -> float:
    """What a reached IVF-Flat candidate costs a query: its row scans (QPS on a GPU)."""
    return trial.scan_cost if trial.scan_cost is not None else 1.0 / max(trial.qps, 1e-9)
