"""The measured index choice: candidate FAISS index families are built over the catalog, each tuned
to the target recall on held-out item queries and timed on one thread (a query's work, whatever
else shares the cores; the winner is timed on the process's threads too); the fastest that
reaches the target is kept.

Candidates (FAISS ``index_factory`` strings), in the order they are tried but for ScaNN:

- ``Flat``: exact search, the reference (always reaches any target);
- ``IVF{nlist},Flat`` for ``nlist`` ≈ 1, 2 and 4 × √n (1 and 2 below 50,000 items): inverted
  lists, ``nprobe`` tuned, fewest lists first; more lists are tried only while they cut what a
  query scans (the probed lists' rows, counted on the held-out queries, plus the coarse centroids
  at a tenth of a row each: a count, not a timing, so the path does not depend on the machine's
  load), and only while the QPS their fewest scans could buy stays within 1.5x of a faster
  family's (ScaNN is measured right after the fewest lists, when those scan >= 500 rows a query);
  past 2M items the coarse quantiser is an HNSW graph (``IVF{nlist}_HNSW32``);
- ``IVF{nlist},PQ{m}x4fsr,RFlat`` at the best IVF's ``nlist`` (its centroids reused, no second
  k-means): 4-bit PQ codes scanned with SIMD, the shortlist re-scored exactly (``k_factor_rf``);
- ``IVF{nlist},RaBitQfs,RFlat`` (from 128 dimensions, 50,000 items): RaBitQ's 1-bit codes with an
  error bound, fast-scan, re-scored exactly (at 64 dimensions one bit a dimension is too coarse:
  measured at 1M clustered vectors it needed 32 re-scored candidates a result and still searched
  slower than IVF-Flat);
- ``ScaNN{2√n},AH2,R100`` when the optional ``scann`` package is installed (``mmrec[scann]``,
  :mod:`mmrec.index.scann_backend`), from 50,000 items — tried right after the fewest IVF lists,
  before more lists: ScaNN's tree, anisotropic 4-bit hashing and
  exact reordering, ``leaves_to_search`` tuned like ``nprobe``; built over the whole catalog (the
  held-out queries' own items are skipped in their results, as for every candidate);
- ``HNSW32``: a graph, from 50,000 items and only when a build on a sample extrapolates to within
  the build budget (FAISS's HNSW with inner product needs a large ``efSearch``, and builds slowly on
  few cores); by default half the contest's time so far, twice it when the best IVF probes ≥ 2 % of
  its lists (weakly clustered vectors, where graphs usually win).

Small catalogs (< 50,000 items) take a fast path: 300 held-out queries instead of 1,000 (a setting
counts as reaching the target only when its recall minus one standard error does), two IVF list
counts, no graph and no RaBitQ (neither can pay back its build at that size), fast-scan PQ only from
128 dimensions (below, an exact row of the lists scans about as fast as its codes and refine).

The choice is stable on a noisy machine: every candidate within 1.5× of the fastest is timed
again, all in turn over several rounds, and compared by its median; a more complex index wins only
when it is more than 10 % faster than a simpler one (Flat < IVF-Flat, fewer lists first < fast-scan
PQ < RaBitQ < HNSW < ScaNN). ``memory_budget`` (bytes) skips candidates whose estimated size exceeds it.

On a GPU (``faiss.get_num_gpus() > 0``) the flat and IVF candidates are measured on it. Every
trial (build seconds, tuned parameters, recall, QPS, index bytes, why it lost) is recorded in
``ItemIndex.params["candidates"]``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import mmrec.index.faiss_ops as faiss_ops
from mmrec.errors import ConfigError
from mmrec.index.fill import train_and_fill, unit_rows
from mmrec.index.item_index import ItemIndex
from mmrec.index.scann_backend import is_scann_spec, scann_available
from mmrec.index.trials import (
    FINALIST_SPREAD,
    IVF_GAIN,
    SCANN_REORDER,
    SIMPLER_MARGIN,
    Trial,
    distances_per_query_of,
    few_rows_scanned,
    ivf_cost,
    needless_lists,
    pick_stable,
)
from mmrec.index.tuning import DEFAULT_QUERIES, TuningQueries, probe_for, tune

__all__ = ["choose_by_measurement", "ivf_list_options", "fastscan_spec", "rabitq_spec",
           "MEASURE_MIN_ITEMS", "SMALL_CATALOG_ITEMS"]

logger = logging.getLogger(__name__)

# Below this many items exact search is kept without measuring (it takes well under a millisecond).
MEASURE_MIN_ITEMS = 5_000
# Below this many items the contest takes its fast path (fewer queries, two list counts, no graph).
SMALL_CATALOG_ITEMS = 50_000
SMALL_CATALOG_QUERIES = 300
# Fast-scan PQ on a small catalog only from this width (64-d, 20k-100k clustered vectors: its QPS was
# half IVF-Flat's; 384-d MiniLM, 21k: 2.7x IVF-Flat's).
SMALL_FASTSCAN_MIN_DIM = 128
# FAISS wants at least this many training points per IVF list.
MIN_POINTS_PER_LIST = 39
# From this many lists the coarse quantiser is an HNSW graph (a flat one dominates query time).
HNSW_QUANTIZER_LISTS = 4096
HNSW_QUANTIZER_MIN_ITEMS = 2_000_000
# RaBitQ's 1-bit codes: from this width (at 64 dims they lost to IVF-Flat, 1M clustered vectors).
RABITQ_MIN_DIM = 128
HNSW_SAMPLE_ITEMS = 10_000
# FAISS HNSW32 build time grows as about n ** 1.25 (measured: 10k → 200k clustered 64-d vectors, 2 threads,
# 0.23 s → 8.7 s); n log n would under-estimate it by 40%.
HNSW_BUILD_EXPONENT = 1.25
# Candidates are timed on one thread: what a query costs is then measured whatever else shares the
# cores (timed on every core, OpenMP's barriers made FAISS lose more to a second job than ScaNN's
# pool: a 200k catalog chose IVF-Flat when idle and ScaNN with one core busy), and a server busy with
# many requests runs each on one. The winner's QPS on the process's threads is reported beside it.
TIMED_THREADS = 1
TIMED_SECONDS = 0.15
SMALL_TIMED_SECONDS = 0.04
MIN_TIMED_QUERIES = 64
# The last timing's rounds (see mmrec.index.trials.FINALIST_SPREAD).
FINAL_ROUNDS = 5
# A candidate still short of the target while searching this much slower than the best so far is
# dropped (every dearer setting is slower still).
PRUNE_MARGIN = 1.25
# By default HNSW is built only when its estimated build costs at most this share of the time the
# other candidates took (it rarely wins on well-clustered vectors, and builds slowly on few cores).
HNSW_SHARE = 0.5
# When the best IVF probes at least this share of its lists (weakly clustered vectors, e.g. word
# embeddings: GloVe needs 4 %, clustered catalogs 0.4 %), graphs usually search faster and HNSW may
# cost up to HNSW_SHARE_HARD of the contest's time (measured on GloVe 400k: HNSW32 1.22x IVF's QPS).
# Not when ScaNN reached the target: it searched faster than every graph on every set of
# benchmarks/retrieval.py (GloVe 400k: 2.7x hnswlib's QPS; FAISS's HNSW32 was built there for 18 s
# of a 33 s contest and pruned).
HARD_PROBE_SHARE = 0.02
HNSW_SHARE_HARD = 2.0


def ivf_list_options(n_items: int) -> list[int]:
    """IVF list counts to try: powers of two near 1, 2 and 4 × √n (1 and 2 below
    ``SMALL_CATALOG_ITEMS``), each with enough training points."""
    options = []
    factors = (1, 2) if n_items < SMALL_CATALOG_ITEMS else (1, 2, 4)
    for factor in factors:
        nlist = 1 << int(round(math.log2(max(16.0, factor * math.sqrt(n_items)))))
        if nlist * MIN_POINTS_PER_LIST <= n_items and nlist not in options:
            options.append(nlist)
    return options


def ivf_flat_spec(nlist: int, n_items: int) -> str:
    """IVF-Flat with ``nlist`` lists; past 2M items and 4,096 lists the coarse quantiser is HNSW."""
    graph = nlist >= HNSW_QUANTIZER_LISTS and n_items >= HNSW_QUANTIZER_MIN_ITEMS
    return f"IVF{nlist}{'_HNSW32' if graph else ''},Flat"


def fastscan_spec(nlist: int, dim: int) -> str | None:
    """IVF with 4-bit PQ fast-scan codes of at most two dimensions each up to 128 dims, then four
    (the fewest codes that allow it: an even count that divides ``dim``) and an exact refine stage;
    None when no even count divides ``dim`` (an odd width). Never coarser: 26 codes of 5 dimensions
    over 130-d model vectors reached recall@10 0.13 at 1M items."""
    per_code = 2 if dim <= 128 else 4
    m = next((m for m in range(max(2, math.ceil(dim / per_code)), dim + 1) if m % 2 == 0 and dim % m == 0),
             None)
    return None if m is None else f"IVF{nlist},PQ{m}x4fsr,RFlat"


def rabitq_spec(nlist: int) -> str:
    """IVF with RaBitQ 1-bit fast-scan codes and an exact refine stage."""
    return f"IVF{nlist},RaBitQfs,RFlat"


def estimated_bytes(family: str, n: int, dim: int, spec: str) -> int:
    """About how many bytes a candidate's FAISS index takes (to honour ``memory_budget``)."""
    full = n * dim * 4
    if family == "flat":
        return full
    if family == "ivf_flat":
        return full + n * 8
    if family == "ivf_fastscan_refine":
        m = int(spec.split("PQ")[1].split("x")[0])
        return full + n * (m // 2 + 8)
    if family == "ivf_rabitq_refine":
        return full + n * (dim // 8 + 16)
    if family == "scann":
        return full + n * (dim // 4 + 8)
    return full + n * (32 * 2 * 4 + 8)  # HNSW32: 64 neighbours on the bottom level


def _timed_batch(index: ItemIndex, queries: np.ndarray, k: int, seconds: float) -> np.ndarray:
    """As many queries as one ``seconds`` search on one thread takes (at least 64: batched search)."""
    with faiss_ops.threads(TIMED_THREADS):
        start = time.perf_counter()
        index.search(queries[:32], k)
        per_query = (time.perf_counter() - start) / 32
    return queries[: int(np.clip(seconds / max(per_query, 1e-9), MIN_TIMED_QUERIES, len(queries)))]


def _queries_per_second(index: ItemIndex, batch: np.ndarray, k: int, threads: int = TIMED_THREADS) -> float:
    """Queries per second of one ``ItemIndex.search`` (what callers get) over ``batch`` on
    ``threads`` threads (by default one: the work a query costs, whatever else runs)."""
    with faiss_ops.threads(threads):
        start = time.perf_counter()
        index.search(batch, k)
        return len(batch) / max(time.perf_counter() - start, 1e-9)


@dataclass
class _Contest:
    """The trials so far, the fastest that reached the target at its first timing, and the
    indices still in the running (timed again at the end)."""

    target_recall: float
    k: int
    probe: TuningQueries
    timed_seconds: float = TIMED_SECONDS
    trials: list[Trial] = field(default_factory=list)
    best_trial: Trial | None = None
    best_seconds: float | None = None  # the best index's tuning search time per query
    running: dict[str, ItemIndex] = field(default_factory=dict)  # spec -> a reached candidate
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def enter(self, trial: Trial, index: ItemIndex, least: int | None = None) -> None:
        """Tune the candidate (built without the held-out query items; its knob from ``least`` up),
        then add those items and time the complete index."""
        limit = None if self.best_seconds is None else PRUNE_MARGIN * self.best_seconds
        index.search(self.probe.queries[:MIN_TIMED_QUERIES], self.k)  # warm caches and thread pools
        result = tune(index, target_recall=self.target_recall, k=self.k, probe=self.probe,
                      give_up_after=limit, least=least)
        trial.params = dict(result["params"])
        trial.recall = float(result["achieved_recall"])
        self.trials.append(trial)
        if result["pruned"]:
            assert self.best_trial is not None
            trial.status = (f"pruned: slower than {self.best_trial.spec} before reaching the target "
                            f"(recall@{self.k} {trial.recall:.3f} at {trial.params})")
            return
        if "nprobe" in trial.params:
            trial.distances_per_query = distances_per_query_of(index, self.probe.queries,
                                                             trial.params["nprobe"])
        self._complete(trial, index)
        trial.reached = result["achieved_recall_low"] >= self.target_recall
        assert self.best_trial is not None  # exact search entered first
        if not trial.reached:
            trial.status = f"recall@{self.k} {trial.recall:.3f} below the target at its widest setting"
            return
        self.running[trial.spec] = index
        if trial.qps > self.best_trial.qps:
            self.best_trial = trial
            self.best_seconds = next(p["ms_per_query"] for p in result["curve"]
                                     if all(p.get(key) == v for key, v in trial.params.items())) / 1e3
        self._drop_slow()

    def enter_exact(self, trial: Trial, index: ItemIndex) -> None:
        """Exact search: recall 1 by construction (the truth is its own search), so only timed."""
        trial.recall, trial.reached = 1.0, True
        self._complete(trial, index, quick=True)
        index.params["tuning"] = {"target_recall": self.target_recall, "k": self.k,
                                  "queries": len(self.probe.labels), "achieved_recall": 1.0,
                                  "achieved_recall_low": 1.0, "params": {}, "curve": [], "pruned": False}
        index.params[f"recall@{self.k}"] = 1.0
        self.trials.append(trial)
        self.best_trial, self.best_seconds = trial, 1.0 / trial.qps
        self.running[trial.spec] = index

    def _complete(self, trial: Trial, index: ItemIndex, quick: bool = False) -> None:
        """Add the held-out query items back (the index then holds the whole catalog) and measure
        its size and speed (one timed batch, best of three; finalists are timed again at the end).
        ``quick``: best of two batches of :data:`MIN_TIMED_QUERIES` (exact search, whose cost is
        rows × width: at 20,000 items its full timing was a third of the contest)."""
        _add_held_out(index, self.probe.labels)
        trial.index_bytes = faiss_ops.index_bytes(index.faiss_index)
        if quick:
            batch, repeats = self.probe.queries[:MIN_TIMED_QUERIES], 2
        else:
            batch, repeats = _timed_batch(index, self.probe.queries, self.k, self.timed_seconds), 3
        trial.qps = max(_queries_per_second(index, batch, self.k) for _ in range(repeats))

    def _drop_slow(self) -> None:
        """Release candidates too slow to be finalists (their memory, at a million items)."""
        assert self.best_trial is not None
        for trial in self.trials:
            if trial.spec in self.running and trial.qps * FINALIST_SPREAD < self.best_trial.qps:
                del self.running[trial.spec]
                trial.status = f"slower than {self.best_trial.spec}"

    def decide(self) -> tuple[ItemIndex, Trial]:
        """Time the finalists in turn over ``FINAL_ROUNDS`` rounds; the winner by median QPS,
        the simpler one within ``SIMPLER_MARGIN``."""
        self._drop_slow()
        finalists = [t for t in self.trials if t.spec in self.running]
        if len(finalists) > 1:
            slowest = min(finalists, key=lambda t: t.qps)
            batch = _timed_batch(self.running[slowest.spec], self.probe.queries, self.k, self.timed_seconds)
            for round_ in range(FINAL_ROUNDS):
                shift = round_ % len(finalists)  # each round starts with a different candidate
                for trial in finalists[shift:] + finalists[:shift]:
                    trial.rounds_qps.append(_queries_per_second(self.running[trial.spec], batch, self.k))
            for trial in finalists:
                trial.qps = float(np.median(trial.rounds_qps))
        winner = pick_stable(finalists)
        fastest = max(finalists, key=lambda t: t.qps)
        for trial in finalists:
            if trial is winner:
                trial.status = "chosen" if winner is fastest else (
                    f"chosen: within {SIMPLER_MARGIN - 1:.0%} of {fastest.spec} and simpler")
            elif trial.qps * SIMPLER_MARGIN >= winner.qps and trial is fastest:
                trial.status = f"within {SIMPLER_MARGIN - 1:.0%} of {winner.spec}, which is simpler"
            else:
                trial.status = f"slower than {winner.spec} (median of {FINAL_ROUNDS} interleaved rounds)"
        return self.running[winner.spec], winner

    def skip(self, spec: str, family: str, why: str) -> None:
        self.trials.append(Trial(spec, family, status=f"skipped: {why}"))


def _build(spec: str, vectors: np.ndarray, ids: np.ndarray, held_out: np.ndarray, *, seed: int,
           use_gpu: bool | None, centroids: np.ndarray | None = None) -> tuple[ItemIndex, float]:
    """A candidate over every item but the held-out queries (marked not alive until they are added
    back; a ScaNN tree is built over all of them: its added rows would be searched exactly), and
    its build seconds."""
    started = time.perf_counter()
    alive = np.ones(len(ids), dtype=bool)
    if not is_scann_spec(spec):
        alive[held_out] = False
    faiss_index, params = train_and_fill(spec, vectors.shape[1], vectors, np.flatnonzero(alive), seed=seed,
                                         centroids=centroids)
    faiss_index, device = faiss_ops.place(faiss_index, use_gpu)
    index = ItemIndex(faiss_index, ids, vectors, spec=spec, params=params | {"device": device}, alive=alive)
    return index, time.perf_counter() - started


def _add_held_out(index: ItemIndex, held_out: np.ndarray) -> None:
    """Add the held-out query items to a tuned candidate: it then holds the whole catalog."""
    if index.alive.all():
        return
    faiss_ops.add(index.faiss_index, unit_rows(index.vectors, held_out), held_out)
    index.alive[held_out] = True


def _centroids(index: ItemIndex) -> np.ndarray | None:
    ivf = faiss_ops.ivf_of(index.faiss_index)
    if ivf is None:
        return None
    quantizer = ivf.quantizer
    try:
        return quantizer.reconstruct_n(0, quantizer.ntotal)
    except RuntimeError:  # a GPU quantizer: copy it back first
        return faiss_ops.faiss().index_gpu_to_cpu(quantizer).reconstruct_n(0, quantizer.ntotal)


def _hnsw_estimate(vectors: np.ndarray, ids: np.ndarray, spec: str, seed: int) -> float:
    """Seconds a full HNSW build would take, from a build on a seeded sample, scaled by
    ``(n / sample) ** HNSW_BUILD_EXPONENT`` (inserts slow down as the graph outgrows the caches)."""
    n = len(ids)
    size = min(n, HNSW_SAMPLE_ITEMS)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))
    sample = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    started = time.perf_counter()
    train_and_fill(spec, vectors.shape[1], sample, np.arange(len(rows), dtype=np.int64), seed=seed)
    seconds = time.perf_counter() - started
    return seconds * (n / size) ** HNSW_BUILD_EXPONENT


def choose_by_measurement(vectors: np.ndarray, ids: np.ndarray, *, target_recall: float, k: int = 10,
                          seed: int = 0, build_budget: float | None = None, use_gpu: bool | None = None,
                          n_queries: int | None = None, memory_budget: int | None = None) -> ItemIndex:
    """Build the candidate indices over unit ``vectors``, tune each to ``target_recall`` (recall@k
    on held-out item queries: ``n_queries``, by default 1,000, or 300 below 50,000 items), time
    them, and return the fastest that reaches it (a simpler one within 10 %).

    ``build_budget`` (seconds) bounds the whole contest: once spent, the remaining candidates are
    skipped. By default the IVF candidates are always tried and HNSW only when its estimated build
    costs at most half the time everything before it took. ``memory_budget`` (bytes) skips the
    candidates whose estimated index size exceeds it.
    """
    n, dim = vectors.shape
    small = n < SMALL_CATALOG_ITEMS
    if n_queries is None:
        n_queries = SMALL_CATALOG_QUERIES if small else DEFAULT_QUERIES
    rng = np.random.default_rng(seed)
    held_out = np.sort(rng.choice(n, size=min(n_queries, n // 10), replace=False))
    flat, flat_seconds = _build("Flat", vectors, ids, held_out, seed=seed, use_gpu=use_gpu)
    contest = _Contest(target_recall, k, probe_for(flat, held_out, k=k),
                       timed_seconds=SMALL_TIMED_SECONDS if small else TIMED_SECONDS)
    contest.enter_exact(Trial("Flat", "flat", flat_seconds), flat)

    def allowed(spec: str, family: str, estimate: float = 0.0) -> bool:
        budget = build_budget if build_budget is not None else math.inf
        if contest.elapsed() + estimate > budget:
            contest.skip(spec, family, f"build budget of {budget:.0f} s "
                         f"({contest.elapsed():.0f} s spent, about {estimate:.0f} s more needed)")
            return False
        size = estimated_bytes(family, n, dim, spec)
        if memory_budget is not None and size > memory_budget:
            contest.skip(spec, family, f"about {size / 2**20:,.0f} MiB, over the memory budget of "
                         f"{memory_budget / 2**20:,.0f} MiB")
            return False
        return True

    def attempt(spec: str, family: str, build: Callable[[], tuple[ItemIndex, float]],
                least: int | None = None) -> tuple[ItemIndex, Trial] | None:
        try:
            index, seconds = build()
        except (RuntimeError, ConfigError) as exc:  # one FAISS cannot build here is skipped, and reported
            contest.skip(spec, family, f"FAISS: {exc}")
            return None
        trial = Trial(spec, family, seconds)
        contest.enter(trial, index, least)
        return index, trial

    best_ivf: tuple[ItemIndex, Trial] | None = None
    stopped = ""  # why the climb stopped (fewest lists first; a count not worth its build ends it)

    def try_ivf(nlist: int) -> None:
        nonlocal best_ivf, stopped
        spec = ivf_flat_spec(nlist, n)
        if stopped:
            contest.skip(spec, "ivf_flat", stopped)
            return
        why_not = None if best_ivf is None else needless_lists(nlist, n, best_ivf[1], contest.best_trial)
        if why_not is not None:  # more lists still: their floor assumes no more probes, ever less true
            contest.skip(spec, "ivf_flat", why_not)
            stopped = f"the climb stopped at {spec} (not worth its build: more lists even less)"
            return
        if not allowed(spec, "ivf_flat"):
            return
        entry = attempt(spec, "ivf_flat", lambda: _build(spec, vectors, ids, held_out, seed=seed,
                                                         use_gpu=use_gpu))
        if entry is None:
            return
        more_lists_only_cost = (f"{spec} did not cost {IVF_GAIN:.2f}x fewer row scans per query than "
                                "fewer lists: more lists only cost more build time")
        if not entry[1].reached:  # pruned (slower before reaching it) or short: more lists are slower still
            stopped = "" if best_ivf is None else more_lists_only_cost
            return
        if best_ivf is not None and ivf_cost(entry[1]) * IVF_GAIN >= ivf_cost(best_ivf[1]):
            stopped = more_lists_only_cost
        if best_ivf is None or ivf_cost(entry[1]) < ivf_cost(best_ivf[1]):
            best_ivf = entry

    list_options = ivf_list_options(n)
    if list_options:
        try_ivf(list_options[0])
    # ScaNN right after the fewest lists: where it is far faster, more IVF lists that could not catch
    # it are skipped before their k-means (at 1M clustered 64-d vectors: ScaNN 3.5x IVF1024's QPS).
    scann_spec = f"ScaNN{1 << int(round(math.log2(2 * math.sqrt(n))))},AH2,R{SCANN_REORDER}"
    few_rows = None if best_ivf is None else few_rows_scanned(best_ivf[1])
    if small or not scann_available():
        contest.skip(scann_spec, "scann", "the scann package is not installed (pip install 'mmrec[scann]')"
                     if not small else f"below {SMALL_CATALOG_ITEMS:,} items (its build does not pay back)")
    elif few_rows is not None:
        contest.skip(scann_spec, "scann", few_rows)
    elif allowed(scann_spec, "scann"):
        attempt(scann_spec, "scann", lambda: _build(scann_spec, vectors, ids, held_out, seed=seed,
                                                    use_gpu=False))
    for nlist in list_options[1:]:
        try_ivf(nlist)
    if best_ivf is not None:
        nlist = faiss_ops.ivf_lists_of(best_ivf[0].faiss_index)
        centroids, least = _centroids(best_ivf[0]), best_ivf[1].params.get("nprobe")
        compressed = []
        if not small or dim >= SMALL_FASTSCAN_MIN_DIM:
            compressed.append((fastscan_spec(nlist, dim), "ivf_fastscan_refine"))
        else:
            contest.skip(fastscan_spec(nlist, dim) or "fast-scan PQ", "ivf_fastscan_refine",
                         f"below {SMALL_CATALOG_ITEMS:,} items and {SMALL_FASTSCAN_MIN_DIM} dimensions a "
                         "short exact row scans as fast as 4-bit codes plus their refine")
        if dim >= RABITQ_MIN_DIM and not small:
            compressed.append((rabitq_spec(nlist), "ivf_rabitq_refine"))
        for spec, family in compressed:
            if spec is not None and allowed(spec, family):
                # Same lists, compressed codes: it needs at least the probes the exact lists needed.
                attempt(spec, family, lambda spec=spec: _build(spec, vectors, ids, held_out, seed=seed,
                                                             use_gpu=use_gpu, centroids=centroids),
                        least=least)
    if small:
        contest.skip("HNSW32", "hnsw", f"below {SMALL_CATALOG_ITEMS:,} items a graph's build does not pay "
                     "back: inverted lists scan few rows there")
    elif allowed("HNSW32", "hnsw"):
        estimate = _hnsw_estimate(vectors, ids, "HNSW32", seed)
        share = HNSW_SHARE
        scann_reached = any(t.family == "scann" and t.reached for t in contest.trials)
        if best_ivf is not None and not scann_reached and (
                best_ivf[1].params.get("nprobe", 0)
                >= HARD_PROBE_SHARE * faiss_ops.ivf_lists_of(best_ivf[0].faiss_index)):
            share = HNSW_SHARE_HARD
        limit = build_budget if build_budget is not None else (1 + share) * contest.elapsed()
        if contest.elapsed() + estimate <= limit:
            attempt("HNSW32", "hnsw", lambda: _build("HNSW32", vectors, ids, held_out, seed=seed,
                                                 use_gpu=use_gpu))
        else:
            contest.skip("HNSW32", "hnsw",
                         f"{contest.elapsed():.0f} s spent + about {estimate:.0f} s for its build would "
                         f"pass the {limit:.0f} s budget (by default: the other candidates' time, plus "
                         f"{share:.0%})")
    winner, trial = contest.decide()
    threads = faiss_ops.faiss().omp_get_max_threads()
    batch = _timed_batch(winner, contest.probe.queries, k, contest.timed_seconds)
    winner.params["qps"] = round(max(_queries_per_second(winner, batch, k, threads) for _ in range(3)))
    others = ", ".join(f"{t.spec} {t.qps:,.0f}" for t in contest.trials if t is not trial and t.qps)
    winner.params["choice"] = (f"measured: the fastest at recall@{k} >= {target_recall} on "
                               f"{len(contest.probe.labels)} held-out items (a simpler index within "
                               f"{SIMPLER_MARGIN - 1:.0%} preferred): {trial.spec} "
                               f"{trial.params or ''} at {trial.qps:,.0f} QPS on one thread ({others}; "
                               f"{winner.params['qps']:,} QPS on this process's {threads} threads)")
    winner.params["candidates"] = [t.record() for t in contest.trials]
    winner.params["build_seconds"] = round(contest.elapsed(), 3)
    winner.params["index_bytes"] = trial.index_bytes
    logger.info("%s", winner.params["choice"])
    return winner
