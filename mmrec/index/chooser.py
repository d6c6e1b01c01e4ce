"""The measured index choice: candidate FAISS index families are built over the catalog, each tuned
to the target recall on held-out item queries and timed at this process's thread count; the
fastest that reaches the target is kept.

Candidates, in the order they are tried (FAISS ``index_factory`` strings):

- ``Flat``: exact search, the reference (always reaches any target);
- ``IVF{nlist},Flat`` for ``nlist`` ≈ 1, 2 and 4 × √n: inverted lists, ``nprobe`` tuned (fewest
  lists first; once more lists measure slower, the larger counts are skipped);
- ``IVF{nlist},PQ{m}x4fsr,RFlat`` at the best IVF's ``nlist`` (its centroids reused, no second
  k-means): 4-bit PQ codes scanned with SIMD, the shortlist re-scored exactly (``k_factor_rf``);
- ``HNSW32``: a graph, only when a build on a sample extrapolates to within the build budget
  (FAISS's HNSW with inner product needs a large ``efSearch``, and builds slowly on few cores); by
  default half the contest's time so far, twice it when the best IVF probes ≥ 2 % of its lists
  (weakly clustered vectors, where graphs usually win).

On a GPU (``faiss.get_num_gpus() > 0``) the flat and IVF candidates are measured on it. Every
trial (build seconds, tuned parameters, recall, QPS, index bytes, why it lost) is recorded in
``ItemIndex.params["candidates"]``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import mmrec.index.faiss_ops as faiss_ops
from mmrec.index.fill import train_and_fill, unit_rows
from mmrec.index.item_index import ItemIndex
from mmrec.index.tuning import TuningQueries, probe_for, tune

__all__ = ["Trial", "choose_by_measurement", "ivf_list_options", "fastscan_spec", "MEASURE_MIN_ITEMS"]

logger = logging.getLogger(__name__)

# Below this many items exact search is kept without measuring (it takes well under a millisecond).
MEASURE_MIN_ITEMS = 5_000
# FAISS wants at least this many training points per IVF list.
MIN_POINTS_PER_LIST = 39
HNSW_SAMPLE_ITEMS = 10_000
# FAISS HNSW32 build time grows as about n ** 1.25 (measured: 10k → 200k clustered 64-d vectors, 2 threads,
# 0.23 s → 8.7 s); n log n would under-estimate it by 40%.
HNSW_BUILD_EXPONENT = 1.25
TIMING_ROUNDS = 3
TIMED_SECONDS = 0.15
MIN_TIMED_QUERIES = 64
# A candidate still short of the target while searching this much slower than the best so far is
# dropped (every dearer setting is slower still).
PRUNE_MARGIN = 1.25
# The next IVF list count is tried only after the last one searched this much faster than fewer lists.
IVF_GAIN = 1.05
# By default HNSW is built only when its estimated build costs at most this share of the time the
# other candidates took (it rarely wins on well-clustered vectors, and builds slowly on few cores).
HNSW_SHARE = 0.5
# When the best IVF probes at least this share of its lists (weakly clustered vectors, e.g. word
# embeddings: GloVe needs 4 %, clustered catalogs 0.4 %), graphs usually search faster and HNSW may
# cost up to HNSW_SHARE_HARD of the contest's time (measured on GloVe 400k: HNSW32 1.22x IVF's QPS).
HARD_PROBE_SHARE = 0.02
HNSW_SHARE_HARD = 2.0


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

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["build_seconds"] = round(self.build_seconds, 3)
        out["recall"] = round(self.recall, 4)
        out["qps"] = round(self.qps, 1)
        return out


def ivf_list_options(n_items: int) -> list[int]:
    """IVF list counts to try: powers of two near 1, 2 and 4 × √n, each with enough training points."""
    options = []
    for factor in (1, 2, 4):
        nlist = 1 << int(round(math.log2(max(16.0, factor * math.sqrt(n_items)))))
        if nlist * MIN_POINTS_PER_LIST <= n_items and nlist not in options:
            options.append(nlist)
    return options


def fastscan_spec(nlist: int, dim: int) -> str | None:
    """IVF with 4-bit PQ fast-scan codes (two dimensions per code up to 128 dims, then four) and an
    exact refine stage; None when no even number of codes divides ``dim`` (an odd width)."""
    per_code = 2 if dim <= 128 else 4
    m = max(2, dim // per_code)
    m -= m % 2  # fast-scan packs codes in pairs
    while m > 2 and dim % m:
        m -= 2
    return f"IVF{nlist},PQ{m}x4fsr,RFlat" if dim % m == 0 else None


def _index_bytes(faiss_index: Any) -> int:
    f = faiss_ops.faiss()
    try:
        return int(f.serialize_index(faiss_index).nbytes)
    except (RuntimeError, AttributeError):  # e.g. a GPU index: count its CPU copy
        return int(f.serialize_index(f.index_gpu_to_cpu(faiss_index)).nbytes)


def _queries_per_second(index: ItemIndex, queries: np.ndarray, k: int) -> float:
    """Queries per second of ``ItemIndex.search`` (what callers get): the best of a few timed
    batches, each of as many queries as fit in about 0.15 s (at least 64: batched search)."""
    start = time.perf_counter()
    index.search(queries[:50], k)
    per_query = (time.perf_counter() - start) / 50
    batch = queries[: int(np.clip(TIMED_SECONDS / max(per_query, 1e-9), MIN_TIMED_QUERIES, len(queries)))]
    best = float("inf")
    for _ in range(TIMING_ROUNDS):
        start = time.perf_counter()
        index.search(batch, k)
        best = min(best, time.perf_counter() - start)
    return len(batch) / max(best, 1e-9)


@dataclass
class _Contest:
    """The trials so far and the fastest index that reached the target."""

    target_recall: float
    k: int
    probe: TuningQueries
    trials: list[Trial] = field(default_factory=list)
    best: ItemIndex | None = None
    best_trial: Trial | None = None
    best_seconds: float | None = None  # the best index's tuning search time per query
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def enter(self, trial: Trial, index: ItemIndex, least: int | None = None) -> None:
        """Tune the candidate (built without the held-out query items; its knob from ``least`` up),
        then add those items and time the complete index."""
        limit = None if self.best_seconds is None else PRUNE_MARGIN * self.best_seconds
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
        self._complete(trial, index)
        trial.reached = result["achieved_recall_low"] >= self.target_recall
        assert self.best_trial is not None  # exact search entered first
        if not trial.reached:
            trial.status = f"recall@{self.k} {trial.recall:.3f} below the target at its widest setting"
        elif trial.qps > self.best_trial.qps:
            self.best_trial.status = f"slower than {trial.spec}"
            self.best, self.best_trial = index, trial
            self.best_seconds = next(p["ms_per_query"] for p in result["curve"]
                                     if all(p.get(key) == v for key, v in trial.params.items())) / 1e3
        else:
            trial.status = f"slower than {self.best_trial.spec}"

    def enter_exact(self, trial: Trial, index: ItemIndex) -> None:
        """Exact search: recall 1 by construction (the truth is its own search), so only timed."""
        trial.recall, trial.reached = 1.0, True
        self._complete(trial, index)
        index.params["tuning"] = {"target_recall": self.target_recall, "k": self.k,
                                  "queries": len(self.probe.labels), "achieved_recall": 1.0,
                                  "achieved_recall_low": 1.0, "params": {}, "curve": [], "pruned": False}
        index.params[f"recall@{self.k}"] = 1.0
        self.trials.append(trial)
        self.best, self.best_trial, self.best_seconds = index, trial, 1.0 / trial.qps

    def _complete(self, trial: Trial, index: ItemIndex) -> None:
        """Add the held-out query items back (the index then holds the whole catalog) and measure
        its size and speed."""
        _add_held_out(index, self.probe.labels)
        trial.index_bytes = _index_bytes(index.faiss_index)
        trial.qps = _queries_per_second(index, self.probe.queries, self.k)

    def skip(self, spec: str, family: str, why: str) -> None:
        self.trials.append(Trial(spec, family, status=f"skipped: {why}"))


def _build(spec: str, vectors: np.ndarray, ids: np.ndarray, held_out: np.ndarray, *, seed: int,
           use_gpu: bool | None, centroids: np.ndarray | None = None) -> tuple[ItemIndex, float]:
    """A candidate over every item but the held-out queries (marked not alive until they are added
    back), and its build seconds."""
    started = time.perf_counter()
    alive = np.ones(len(ids), dtype=bool)
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
    rows = np.sort(np.random.default_rng(seed).choice(n, size=HNSW_SAMPLE_ITEMS, replace=False))
    sample = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    started = time.perf_counter()
    train_and_fill(spec, vectors.shape[1], sample, np.arange(len(rows), dtype=np.int64), seed=seed)
    seconds = time.perf_counter() - started
    return seconds * (n / HNSW_SAMPLE_ITEMS) ** HNSW_BUILD_EXPONENT


def choose_by_measurement(vectors: np.ndarray, ids: np.ndarray, *, target_recall: float, k: int = 10,
                          seed: int = 0, build_budget: float | None = None, use_gpu: bool | None = None,
                          n_queries: int = 1000) -> ItemIndex:
    """Build the candidate indices over unit ``vectors``, tune each to ``target_recall`` (recall@k
    on ``n_queries`` held-out item queries), time them, and return the fastest that reaches it.

    ``build_budget`` (seconds) bounds the whole contest: once spent, the remaining candidates are
    skipped. By default the IVF candidates are always tried and HNSW only when its estimated build
    costs at most half the time everything before it took.
    """
    n, dim = vectors.shape
    rng = np.random.default_rng(seed)
    held_out = np.sort(rng.choice(n, size=min(n_queries, n // 10), replace=False))
    flat, flat_seconds = _build("Flat", vectors, ids, held_out, seed=seed, use_gpu=use_gpu)
    contest = _Contest(target_recall, k, probe_for(flat, held_out, k=k))
    contest.enter_exact(Trial("Flat", "flat", flat_seconds), flat)

    def within_budget(spec: str, family: str, estimate: float = 0.0) -> bool:
        budget = build_budget if build_budget is not None else math.inf
        if contest.elapsed() + estimate > budget:
            contest.skip(spec, family, f"build budget of {budget:.0f} s "
                         f"({contest.elapsed():.0f} s spent, about {estimate:.0f} s more needed)")
            return False
        return True

    def attempt(spec: str, family: str, build: Callable[[], tuple[ItemIndex, float]],
                least: int | None = None) -> tuple[ItemIndex, Trial] | None:
        try:
            index, seconds = build()
        except RuntimeError as exc:  # a candidate FAISS cannot build here is skipped, and reported
            contest.skip(spec, family, f"FAISS: {exc}")
            return None
        trial = Trial(spec, family, seconds)
        contest.enter(trial, index, least)
        return index, trial

    best_ivf: tuple[ItemIndex, Trial] | None = None
    climbing = True  # fewest lists first; stop once more lists were not clearly faster
    for nlist in ivf_list_options(n):
        spec = f"IVF{nlist},Flat"
        if not climbing:
            assert best_ivf is not None
            contest.skip(spec, "ivf_flat", f"{contest.trials[-1].spec} was not {IVF_GAIN:.2f}x faster than "
                         f"fewer lists: more lists only cost more build time")
            continue
        if not within_budget(spec, "ivf_flat"):
            continue
        entry = attempt(spec, "ivf_flat", lambda spec=spec: _build(spec, vectors, ids, held_out, seed=seed,
                                                                   use_gpu=use_gpu))
        if entry is None:
            continue
        if not entry[1].reached:  # pruned (slower before reaching it) or short: more lists are slower still
            climbing = best_ivf is None
            continue
        climbing = best_ivf is None or entry[1].qps > IVF_GAIN * best_ivf[1].qps
        if best_ivf is None or entry[1].qps > best_ivf[1].qps:
            best_ivf = entry
    if best_ivf is not None:
        nlist = faiss_ops.ivf_lists_of(best_ivf[0].faiss_index)
        spec, centroids = fastscan_spec(nlist, dim), _centroids(best_ivf[0])
        if spec is not None and within_budget(spec, "ivf_fastscan_refine"):
            # Same lists, compressed codes: it needs at least the probes the exact lists needed.
            attempt(spec, "ivf_fastscan_refine",
                    lambda: _build(spec, vectors, ids, held_out, seed=seed, use_gpu=use_gpu,
                                   centroids=centroids), least=best_ivf[1].params.get("nprobe"))
    if n > HNSW_SAMPLE_ITEMS:
        estimate = _hnsw_estimate(vectors, ids, "HNSW32", seed)
        share = HNSW_SHARE
        if best_ivf is not None and (best_ivf[1].params.get("nprobe", 0)
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
    assert contest.best is not None and contest.best_trial is not None  # Flat always reaches it
    winner, trial = contest.best, contest.best_trial
    others = ", ".join(f"{t.spec} {t.qps:,.0f}" for t in contest.trials if t is not trial and t.qps)
    winner.params["choice"] = (f"measured: the fastest at recall@{k} >= {target_recall} on "
                               f"{len(contest.probe.labels)} held-out items: {trial.spec} "
                               f"{trial.params or ''} at {trial.qps:,.0f} QPS ({others} QPS; "
                               f"{faiss_ops.faiss().omp_get_max_threads()} threads)")
    winner.params["candidates"] = [t.record() for t in contest.trials]
    winner.params["build_seconds"] = round(contest.elapsed(), 3)
    logger.info("%s", winner.params["choice"])
    return winner
