"""Soak of the online updater: events/s and memory at checkpoints while up to 1M events stream in.

    python benchmarks/soak.py                          # 1M events, window = the model's max_len
    python benchmarks/soak.py --events 300000 --window 1000000000   # every event kept: the growth

An id-only two-tower model (mean tower, dim 32, max_len 50) is trained briefly on a seeded log of
``--known`` users over ``--items`` items. Then:

1. *fixed users*: ``--known`` users with a training history and as many new ones, each drawing
   from a personal pool of 30 items, stream ``--events`` events with fresh id strings per event
   (as parsed requests bring them); every 1,000th event names an unknown item (rejected), every
   2,000th a visitor comes with three events and is forgotten, every 500th a user is recommended
   to. Every 100k events: events/s, RSS and live Python objects (``sys.getallocatedblocks``).
2. *new users*: ``--new-users`` more users with ``2 × window`` events each, then all forgotten:
   bytes per user kept (RSS and ``tracemalloc``), and how much forget returns.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

import mmrec
from mmrec.errors import SchemaError


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024


def live_objects() -> int:
    gc.collect()
    return sys.getallocatedblocks()


def train(n_users: int, n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_users * 20
    history = mmrec.Interactions(pd.DataFrame({
        "user": np.array([f"t{u}" for u in range(n_users)], dtype=object)[rng.integers(0, n_users, n)],
        "item": np.array([f"i{i}" for i in range(n_items)], dtype=object)[rng.integers(0, n_items, n)],
        "timestamp": np.arange(n, dtype=np.float64), "event": "click", "value": 1.0}))
    model = mmrec.TwoTower(user_tower="mean", dim=32, max_len=50, epochs=1, batch_size=1024, seed=seed)
    model.fit(None, history, show_progress=False)
    return model, mmrec.build_index(model.encode_items(), spec="Flat"), history


def fixed_users(online: mmrec.OnlineRecommender, *, n_known: int, n_items: int, events: int,
                every: int = 100_000, seed: int = 1) -> list[tuple]:
    rng = np.random.default_rng(seed)
    n_users = 2 * n_known
    pools = rng.integers(0, n_items, size=(n_users, 30))
    rows, rejected, forgotten = [], 0, 0
    started = last = time.perf_counter()
    for chunk in range(0, events, every):
        draws = rng.integers(0, 1 << 30, size=(every, 2))
        for offset in range(every):
            step = chunk + offset
            who = int(draws[offset, 0] % n_users)
            user = f"t{who}" if who < n_known else f"new{who}"
            if step % 1_000 == 0:
                try:
                    online.observe(f"stranger{step}", "no-such-item")
                except SchemaError:
                    rejected += 1
            if step % 2_000 == 1:
                for item in pools[0, :3]:
                    online.observe(f"visitor{step}", f"i{item}", "click", timestamp=float(step))
                forgotten += online.forget(f"visitor{step}") == 3
            if step % 500 == 2:
                online.recommend(user, k=10)
            online.observe(user, f"i{pools[who, draws[offset, 1] % 30]}", "click", timestamp=float(step))
        now = time.perf_counter()
        kept = sum(len(events) for events in online._observed.values())
        rows.append((chunk + every, every / (now - last), rss_mib(), live_objects(), kept, rejected,
                     forgotten))
        last = now
        print(f"  {chunk + every:>9,} events, {rows[-1][1]:,.0f}/s, RSS {rows[-1][2]:,.1f} MiB",
              file=sys.stderr, flush=True)
    print(f"fixed users: {events:,} events in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows


def new_users(online: mmrec.OnlineRecommender, *, n_users: int, n_items: int) -> dict:
    per_user = 2 * online.max_events_per_user
    gc.collect()
    rss, objects = rss_mib(), live_objects()
    tracemalloc.start()
    try:
        for u in range(n_users):
            for e in range(per_user):
                online.observe(f"fresh{u}", f"i{(u * 7 + e) % n_items}", "click", timestamp=float(e))
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0]
        grown = {"rss": rss_mib() - rss, "objects": live_objects() - objects}
        for u in range(n_users):
            online.forget(f"fresh{u}")
        gc.collect()
        left = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return {"per_user_events": per_user, "traced_per_user": traced / n_users,
            "rss_per_user": grown["rss"] * 2**20 / n_users, "objects_per_user": grown["objects"] / n_users,
            "kept_after_forget": left / max(traced, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--known", type=int, default=1_000, help="users with a training history")
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--window", type=int, default=None, help="max_events_per_user (default: max_len)")
    parser.add_argument("--new-users", type=int, default=500)
    args = parser.parse_args()
    model, index, history = train(args.known, args.items)
    online = mmrec.OnlineRecommender(model, index, history=history, max_events_per_user=args.window)
    print(f"{args.known:,} known + {args.known:,} new users, {args.items:,} items, window "
          f"{online.max_events_per_user:,} events per user\n")
    rows = fixed_users(online, n_known=args.known, n_items=args.items, events=args.events)
    print("| events | events/s | RSS (MiB) | live Python objects | observed events kept | rejected "
          "| forgotten |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for events, rate, rss, objects, kept, rejected, forgotten in rows:
        print(f"| {events:,} | {rate:,.0f} | {rss:,.1f} | {objects:,} | {kept:,} | {rejected} "
              f"| {forgotten} |")
    if len(rows) > 1:
        print(f"\nafter the first checkpoint: RSS {rows[-1][2] - rows[0][2]:+.1f} MiB, live objects "
              f"{rows[-1][3] - rows[0][3]:+,} over {rows[-1][0] - rows[0][0]:,} events")
    fresh = new_users(online, n_users=args.new_users, n_items=args.items)
    print(f"\nnew users ({args.new_users:,}, {fresh['per_user_events']} events each): "
          f"{fresh['traced_per_user'] / 1024:.1f} KiB traced, {fresh['rss_per_user'] / 1024:.1f} KiB RSS, "
          f"{fresh['objects_per_user']:.0f} objects per user; forget left "
          f"{100 * fresh['kept_after_forget']:.1f}% of the traced bytes")


if __name__ == "__main__":
    main()
