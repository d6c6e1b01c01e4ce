"""Live scoring of a factor model at catalog size: ``ScoredOnline`` scoring every item per request
vs taking its candidates from an index (``index_above``), latency and agreement.

    python benchmarks/scored_online.py --items 10000,100000,1000000

A BPR-MF model (``dim`` factors, Gaussian — the hard case for an index: no clusters) over
``--items`` items and ``--users`` users, each with ``--history`` events; per size, ``--requests``
``ranked(user, 10)`` calls on random users, timed one by one, through the full-table path and the
indexed one (built by ``build_index(target_recall=0.95)`` over the inner-product mapping of the
item factors). Prints build seconds, p50/p99 latency of both, the speed-up and recall@10 of the
indexed top-10 against the full one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

import mmrec
from mmrec.baselines.bpr import BPRMF
from mmrec.ranking.scored_online import ScoredOnline


def factor_model(n_items: int, n_users: int, dim: int, seed: int) -> BPRMF:
    """A BPR-MF model with Gaussian factors (its fitted state, without training: latency only)."""
    rng = np.random.default_rng(seed)
    model = BPRMF(dim=dim)
    model.item_ids_ = pd.Index([f"i{i}" for i in range(n_items)], dtype=object)
    model.user_ids_ = pd.Index([f"u{u}" for u in range(n_users)], dtype=object)
    model.item_factors_ = rng.normal(size=(n_items, dim)).astype(np.float32)
    model.user_factors_ = rng.normal(size=(n_users, dim)).astype(np.float32)
    return model


def histories(n_items: int, n_users: int, per_user: int, seed: int) -> mmrec.Interactions:
    rng = np.random.default_rng(seed + 1)
    users = np.repeat([f"u{u}" for u in range(n_users)], per_user)
    items = np.asarray([f"i{i}" for i in rng.integers(0, n_items, size=n_users * per_user)], dtype=object)
    return mmrec.Interactions.from_frame(pd.DataFrame({"user": users, "item": items, "event": "click",
                                                       "timestamp": np.arange(len(users), dtype=float)}))


def latencies(live: ScoredOnline, users: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    seconds, tops = [], []
    for user in users:
        started = time.perf_counter()
        items, _, _ = live.ranked(user, 10)
        seconds.append(time.perf_counter() - started)
        tops.append(items)
    return np.asarray(seconds) * 1000, tops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", default="10000,100000,1000000")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--history", type=int, default=20)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    print("| items | index (build s) | full p50 / p99 ms | indexed p50 / p99 ms | speed-up (p50) "
          "| recall@10 |")
    print("|---:|---|---:|---:|---:|---:|")
    for n_items in (int(n) for n in args.items.split(",")):
        model = factor_model(n_items, args.users, args.dim, args.seed)
        events = histories(n_items, args.users, args.history, args.seed)
        users = [f"u{u}" for u in rng.integers(0, args.users, size=args.requests)]
        full = ScoredOnline(model, history=events, index_above=n_items)
        started = time.perf_counter()
        indexed = ScoredOnline(model, history=events, index_above=0)
        build_s = time.perf_counter() - started
        assert indexed.index is not None
        full_ms, full_tops = latencies(full, users)
        indexed_ms, indexed_tops = latencies(indexed, users)
        recall = np.mean([len(set(a) & set(b)) / len(a)
                          for a, b in zip(full_tops, indexed_tops, strict=True)])
        print(f"| {n_items:,} | {indexed.index.spec} ({build_s:.1f}) | {np.median(full_ms):.1f} / "
              f"{np.percentile(full_ms, 99):.1f} | {np.median(indexed_ms):.2f} / "
              f"{np.percentile(indexed_ms, 99):.2f} | {np.median(full_ms) / np.median(indexed_ms):.1f}x | "
              f"{recall:.3f} |", flush=True)


if __name__ == "__main__":
    main()
