"""Scale-out: encoding on Ray Data (1 vs 2 workers, vs the local engine) and sharded FAISS search.

    python benchmarks/scaling.py [--sections encode,sharded] [--items 600] [--vectors 200000]

Sections are registered by name (``SECTIONS``); each returns rows that are printed as a table and
saved to ``benchmarks/results/scaling-<time>.json``.

- ``encode``: items/s of ``encode_items`` on a generated catalog (text via TF-IDF + images via
  ResNet-18) with the local engine, then Ray (local mode, ``--ray-cpus`` CPUs) with 1 and 2 actors
  per modality; ratios Ray 2 / Ray 1 and Ray / local. Ray times include starting the actors (each
  imports torch and builds its model), not starting Ray itself.
- ``sharded``: QPS (one batch of queries, k=10) and recall@10 against exact search of one index,
  4 resident shards and 4 shards searched one at a time, for Flat and an IVF spec, on clustered
  unit vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _timing import timed

import mmrec
from mmrec.registry import Registry

SECTIONS: Registry[Callable[[argparse.Namespace], list[dict]]] = Registry("benchmark section")


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}")
    if not rows:
        return
    columns = list(dict.fromkeys(c for row in rows for c in row))  # every column, first-seen order
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).rjust(widths[c]) for c in columns))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


@SECTIONS.register("encode")
def encode_section(args: argparse.Namespace) -> list[dict]:
    import ray

    from mmrec.datasets.demo import make_demo
    from mmrec.encode.engines import EncodeEngine

    root = Path(tempfile.mkdtemp(prefix="mmrec-scaling-"))
    demo = make_demo(root, n_items=args.items, n_users=10, seed=0)
    catalog = mmrec.Catalog.from_path(demo.catalog)
    encoders = {"text": "text-tfidf-svd", "image": "image-resnet18", "audio": None}
    rows = []
    seconds, local = timed(mmrec.encode_items, catalog, encoders=encoders, batch_size=args.batch_size)
    rows.append({"engine": "local", "workers": "-", "seconds": seconds, "items/s": len(catalog) / seconds})
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for workers in (1, 2):
            engine = EncodeEngine("ray", workers=workers)
            seconds, items = timed(mmrec.encode_items, catalog, encoders=encoders,
                                   batch_size=args.batch_size, engine=engine)
            diff = float(np.abs(np.asarray(items.fused) - local.fused).max())
            rows.append({"engine": "ray", "workers": workers, "seconds": seconds,
                         "items/s": len(catalog) / seconds, "max |fused - local|": diff})
    finally:
        ray.shutdown()
    base, one, two = (r["items/s"] for r in rows)
    rows[1]["ray/local"], rows[2]["ray/local"] = one / base, two / base
    rows[2]["ray2/ray1"] = two / one
    print_table(f"encoding {len(catalog)} items (text TF-IDF + ResNet-18 images), "
                f"Ray on {args.ray_cpus} CPUs", rows)
    return rows


@SECTIONS.register("sharded")
def sharded_section(args: argparse.Namespace) -> list[dict]:
    from retrieval import clustered

    from mmrec.index import recall_at_k
    from mmrec.index.sharded import ShardedIndex, build_sharded_index

    vectors = clustered(args.vectors, args.dim, seed=0)
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(len(vectors), args.queries, replace=False)]
    queries = queries + 0.1 * rng.standard_normal(queries.shape, dtype=np.float32)
    exact = mmrec.build_index(vectors, spec="Flat", use_gpu=False).search(queries, 10)[1]
    rows = []
    root = Path(tempfile.mkdtemp(prefix="mmrec-shards-"))
    for spec in ("Flat", args.ann_spec):
        build_s, single = timed(mmrec.build_index, vectors, spec=spec, use_gpu=False)
        search_s, (_, labels) = timed(single.search, queries, 10, repeat=3)
        rows.append({"spec": spec, "layout": "single index", "build s": build_s,
                     "QPS": len(queries) / search_s, "recall@10": recall_at_k(labels, exact)})
        folder = root / spec.replace(",", "_")
        build_s, sharded = timed(build_sharded_index, vectors, folder, n_shards=4, spec=spec)
        search_s, (_, labels) = timed(sharded.search, queries, 10, repeat=3)
        rows.append({"spec": spec, "layout": "4 shards, resident", "build s": build_s,
                     "QPS": len(queries) / search_s, "recall@10": recall_at_k(labels, exact)})
        lazy = ShardedIndex.load(folder, resident=False, verify=False)
        search_s, (_, labels) = timed(lazy.search, queries, 10, repeat=3)
        rows.append({"spec": spec, "layout": "4 shards, one at a time", "build s": None,
                     "QPS": len(queries) / search_s, "recall@10": recall_at_k(labels, exact)})
    for row in rows:
        same = [r for r in rows if r["spec"] == row["spec"] and r["layout"] == "single index"][0]
        row["QPS / single"] = row["QPS"] / same["QPS"]
    print_table(f"sharded search: {args.vectors} x {args.dim} unit vectors, {args.queries} queries, "
                "k=10", rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS.names()),
                        help=f"comma-separated, of: {', '.join(SECTIONS.names())}")
    parser.add_argument("--items", type=int, default=600, help="catalog items of the encode section")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--vectors", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--ann-spec", default="IVF1024,Flat")
    args = parser.parse_args()
    started = time.strftime("%Y%m%d-%H%M%S")
    load_before = os.getloadavg()
    results = {name: SECTIONS.get(name)(args) for name in args.sections.split(",")}
    load_after = os.getloadavg()
    print(f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), "
          f"{os.cpu_count()} CPUs")
    out = Path(__file__).parent / "results" / f"scaling-{started}.json"
    out.write_text(json.dumps({"args": vars(args), "load_before": load_before, "load_after": load_after,
                               "sections": results}, indent=1, default=str))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
