"""Recommend for every user in batches: time and peak memory from 100k to 1M users, and the naive path.

    python benchmarks/batch_recommend.py                       # 100k and 1M users, 10k items, k=20
    python benchmarks/batch_recommend.py --users 100000 --per-user 5 --naive-users 0

Synthetic data (numpy, seeded): ``--items`` random unit item vectors (dim ``--dim``) in a Flat index;
each user clicks ``--per-user`` random items at random times (one user in a thousand gave a single
neutral rating instead, so the popularity fallback runs too). Each configuration runs in a child
process: it builds the log as an :class:`mmrec.Interactions`, then

- *batched*: groups it once (:class:`mmrec.EventsByUser`), drops the table, and streams
  ``recommend_batches(k=20, batch_size=...)`` into one Parquet file (``write_recommendations``);
- *naive*: ``mmrec.recommend`` over all users at once, then ``to_parquet``.

Memory: the RSS before recommending (the input: the grouped log, or the whole table for the naive
path; freed heap handed back to the OS first) and the peak RSS while recommending and writing
(``VmHWM`` of ``/proc/self/status``, reset just before through ``/proc/self/clear_refs``); their
difference is the working memory, which must not grow with the number of users.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the peak RSS (VmHWM) to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _release_free_heap() -> None:
    """Hand freed heap back to the OS (glibc ``malloc_trim``), so that the RSS before recommending is
    the live input, not the table just deleted; a no-op elsewhere."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def synthetic(n_users: int, n_items: int, per_user: int, dim: int, seed: int = 0):
    """A Flat index over random unit vectors and a shuffled click log (string ids shared, as a
    reader's dictionary-encoded columns would be)."""
    import pandas as pd

    import mmrec

    rng = np.random.default_rng(seed)
    item_ids = np.array([f"item{i}" for i in range(n_items)], dtype=object)
    index = mmrec.build_index(rng.standard_normal((n_items, dim)).astype(np.float32), ids=item_ids,
                              spec="Flat")
    user_ids = np.array([f"user{u}" for u in range(n_users)], dtype=object)
    who = np.repeat(np.arange(n_users), per_user)
    neutral = who % 1000 == 999
    keep = ~neutral | (np.arange(len(who)) % per_user == 0)  # a neutral user: one rating only
    who, neutral = who[keep], neutral[keep]
    order = rng.permutation(len(who))
    frame = pd.DataFrame({  # object columns, as Interactions.from_frame makes them
        "user": pd.Series(user_ids[who[order]], dtype=object),
        "item": pd.Series(item_ids[rng.integers(0, n_items, len(who))], dtype=object),
        "timestamp": rng.uniform(1.6e9, 1.7e9, len(who)),
        "event": pd.Series(np.where(neutral[order], "rating", "click"), dtype=object),
        "value": np.where(neutral[order], 3.0, np.nan),
    })
    return index, mmrec.Interactions(frame)


def child(config: dict) -> dict:
    """One configuration in this process; returns its measurements."""
    import pandas as pd
    import pyarrow.parquet  # noqa: F401  (imported by the writers: loaded before memory is measured)

    import mmrec

    index, events = synthetic(config["users"], config["items"], config["per_user"], config["dim"])
    n_events = len(events)
    out = Path(config["out"])
    started = time.perf_counter()
    if config["path"] == "batched":
        grouped = mmrec.EventsByUser.from_interactions(index, events)
        del events  # the grouped arrays are all the batches read
    group_s = time.perf_counter() - started
    _release_free_heap()
    before = _status_kib("VmRSS")
    exact_peak = _reset_peak()
    started = time.perf_counter()
    if config["path"] == "batched":
        rows, users = mmrec.write_recommendations(
            mmrec.recommend_batches(index, grouped, k=config["k"], batch_size=config["batch_size"]), out)
    else:
        recs = mmrec.recommend(index, events, k=config["k"])
        recs.to_parquet(out, index=False)
        rows, users = len(recs), recs["user"].nunique()
    recommend_s = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    written = pd.read_parquet(out, columns=["user"])
    assert len(written) == rows and users == config["users"], (len(written), rows, users)
    return {**config, "events": n_events, "group_s": group_s, "recommend_s": recommend_s, "rows": rows,
            "before_mib": before / 1024, "peak_mib": peak / 1024, "exact_peak": exact_peak}


def run_child(config: dict, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{config['path']} with {config['users']:,} users failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", default="100000,1000000", help="comma-separated user counts")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--per-user", type=int, default=8, help="events per user")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--naive-users", type=int, default=100_000, help="0: skip the naive path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        plan = [("batched", int(n)) for n in args.users.split(",")]
        if args.naive_users:
            plan.insert(1 if plan[0][1] <= args.naive_users else 0, ("naive", args.naive_users))
        for path, n_users in plan:
            batch = args.batch_size if path == "batched" else None
            config = {"path": path, "users": n_users, "items": args.items, "per_user": args.per_user,
                      "dim": args.dim, "k": args.k, "batch_size": batch,
                      "out": str(Path(tmp) / f"{path}-{n_users}.parquet")}
            runs.append(run_child(config, args.threads))
            print(f"done: {path} {n_users:,} users", file=sys.stderr, flush=True)
    print(f"{args.items:,} items (Flat, dim {args.dim}), k={args.k}, {args.per_user} events per user, "
          f"{args.threads} threads; memory = RSS of a child process per row\n")
    print("| path | users | events | batch | group s | recommend s | users/s | RSS before (MiB) "
          "| peak RSS (MiB) | working = peak − before (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['path']} | {r['users']:,} | {r['events']:,} | {r['batch_size'] or 'all'} | "
              f"{r['group_s']:.1f} | {r['recommend_s']:.1f} | {r['users'] / r['recommend_s']:,.0f} | "
              f"{r['before_mib']:,.0f} | {r['peak_mib']:,.0f} | {r['peak_mib'] - r['before_mib']:,.0f} |")
    if not all(r["exact_peak"] for r in runs):
        print("\n(peak RSS could not be reset here: it includes building the synthetic data)")
    batched = sorted((r for r in runs if r["path"] == "batched"), key=lambda r: r["users"])
    if len(batched) >= 2:
        lo, hi = batched[0], batched[-1]
        print(f"\nworking memory {lo['users']:,} → {hi['users']:,} users: "
              f"{lo['peak_mib'] - lo['before_mib']:,.0f} → {hi['peak_mib'] - hi['before_mib']:,.0f} MiB; "
              f"peak RSS {lo['peak_mib']:,.0f} → {hi['peak_mib']:,.0f} MiB "
              f"(the grouped log itself grows with the events)")
    naive = next((r for r in runs if r["path"] == "naive"), None)
    same = next((r for r in batched if naive and r["users"] == naive["users"]), None)
    if naive and same:
        working = [r["peak_mib"] - r["before_mib"] for r in (naive, same)]
        print(f"naive / batched at {naive['users']:,} users: time "
              f"{naive['recommend_s'] / same['recommend_s']:.2f}x, working memory "
              f"{working[0] / max(working[1], 1):.1f}x, peak RSS {naive['peak_mib'] / same['peak_mib']:.1f}x")


if __name__ == "__main__":
    main()
