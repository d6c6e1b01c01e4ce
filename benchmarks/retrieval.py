"""Retrieval: mmrec.build_index / ItemIndex.search next to raw FAISS with the same factory string.

    python benchmarks/retrieval.py [--sizes 100000,1000000] [--dim 128] [--queries 1000]

Synthetic clustered unit vectors (1,000 Gaussian clusters). For each index type: build seconds,
search QPS (one batch of queries, k=10) and recall@10 against exact search — for mmrec and for raw
FAISS (same factory string, same training sample, same nprobe/efSearch; builds and searches timed
alternately, best of several), with the overhead ratio;
then mmrec's automatic choice tuned to recall@10 >= 0.95 against exact (Flat) search.
"""

from __future__ import annotations

import argparse

import faiss
import numpy as np
from _timing import interleaved, timed

import mmrec
from mmrec.index import plan_index, recall_at_k
from mmrec.index.build import TRAIN_POINTS_PER_LIST


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    centers = np.random.default_rng(0).normal(size=(1000, dim)).astype(np.float32)
    rng = np.random.default_rng(seed + 1)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # in blocks: bounded temporaries
        m = min(100_000, n - start)
        block = centers[rng.integers(1000, size=m)] + 0.6 * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def raw_faiss(spec: str, x: np.ndarray, params: dict, seed: int):
    """The same index built with FAISS alone (same training sample as mmrec)."""
    index = faiss.index_factory(x.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    ivf = None
    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        pass
    if not index.is_trained:
        size = len(x) if ivf is None else min(len(x), TRAIN_POINTS_PER_LIST * ivf.nlist)
        size = max(size, min(len(x), 10_000))
        rows = np.sort(np.random.default_rng(seed).choice(len(x), size=size, replace=False))
        if ivf is not None:
            ivf.cp.seed = seed
            ivf.cp.max_points_per_centroid = max(TRAIN_POINTS_PER_LIST, 1 + size // ivf.nlist)
        index.train(x[rows])
    index.add(x)
    space = faiss.ParameterSpace()
    for name in ("nprobe", "efSearch"):
        if name in params:
            space.set_index_parameter(index, name, params[name])
    return index


def compare(spec: str, x: np.ndarray, queries: np.ndarray, truth: np.ndarray, seed: int) -> str:
    """One table row: mmrec vs raw FAISS with the same factory string and search parameters."""
    rounds = 2 if len(x) <= 200_000 else 1
    t_raw_build, t_build, _, index = interleaved(lambda: raw_faiss(spec, x, {}, seed),
                                                 lambda: mmrec.build_index(x, spec=spec, seed=seed),
                                                 rounds=rounds)
    if spec != "Flat":
        mmrec.index.tune(index, target_recall=0.95, k=10, seed=seed)
    params = {k: v for k, v in index.params.items() if k in ("nprobe", "efSearch")}
    raw = raw_faiss(spec, x, params, seed)
    _, raw_found = raw.search(queries, 10)
    # wrapper overhead: ItemIndex.search vs FAISS's own search on the very same index
    t_search, t_raw, (_, found), _ = interleaved(
        lambda: index.search(queries, 10), lambda: index.faiss_index.search(queries, 10), rounds=5)
    m = len(queries)
    return (f"| {spec} {params or ''} | {t_build:.1f} / {t_raw_build:.1f} | "
            f"{m / t_search:,.0f} / {m / t_raw:,.0f} | {t_build / t_raw_build - 1:+.1%} | "
            f"{t_search / t_raw - 1:+.1%} | "
            f"{recall_at_k(found, truth):.3f} / {recall_at_k(raw_found, truth):.3f} |")


def run(n: int, dim: int, n_queries: int, seed: int = 0) -> None:
    x = clustered(n, dim, seed)
    queries = clustered(n_queries, dim, seed + 100)
    flat = faiss.IndexFlatIP(dim)
    flat.add(x)
    t_exact, (_, truth) = timed(flat.search, queries, 10)
    exact_qps = n_queries / t_exact
    print(f"\n### {n:,} items x {dim} dims, {n_queries} queries, {faiss.omp_get_max_threads()} threads")
    print(f"exact search (FAISS IndexFlatIP): {exact_qps:,.0f} QPS\n")
    print("| index | build s (mmrec / FAISS) | QPS (mmrec / FAISS, same index) | build overhead "
          "| search overhead | recall@10 (mmrec / FAISS-built index) |")
    print("|---|---:|---:|---:|---:|---:|")
    nlist = plan_index(n, dim, memory_budget=1 << 40).spec if n > 500_000 else None
    specs = ["Flat", f"IVF{nlist.split(',')[0][3:]},Flat" if nlist else "IVF1024,Flat"]
    if n <= 200_000:
        specs.insert(1, "HNSW32")
    for spec in specs:
        print(compare(spec, x, queries, truth, seed))
    t_build, auto = timed(mmrec.build_index, x, target_recall=0.95, k=10, seed=seed)
    t_search, (_, found) = timed(auto.search, queries, 10, repeat=3)
    qps = n_queries / t_search
    print(f"\nauto choice: {auto.spec!r} ({auto.params.get('choice')}), tuned "
          f"{auto.params['tuning']['params'] or 'exact'}: build {t_build:.1f} s, {qps:,.0f} QPS = "
          f"{qps / exact_qps:.1f}x exact search, recall@10 {recall_at_k(found, truth):.3f} on new queries "
          f"(tuning's held-out estimate {auto.params['tuning']['achieved_recall']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    for n in map(int, args.sizes.split(",")):
        run(n, args.dim, args.queries)


if __name__ == "__main__":
    main()
