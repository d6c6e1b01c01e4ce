"""Online updates: latency of ``OnlineRecommender.observe`` and whether it helps on a replay.

    python benchmarks/online.py --dataset ml-100k
    python benchmarks/online.py --dataset ml-1m --epochs 5

Replay: each user's last ``--replay`` events are held out (temporal leave-last-out); a two-tower
model is trained on the rest. Walking through each user's held-out events in time order, the
*frozen* recommender predicts every next event from the training history alone, the *online* one
after observing the held-out events before it. Hit@20 over all predictions, history items masked
for both. Latency: ``observe`` for users with ≥ 200 training events (after the first touch, which
runs the tower once), ``recommend`` (exact search over the index), and ``observe`` for new users'
first five events (each re-runs the tower over the handful of events).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import mmrec
from mmrec.datasets import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--tower", default="transformer")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--replay", type=int, default=5)
    parser.add_argument("--alphas", default="0.2,0.35,0.5")
    parser.add_argument("--half-life", type=float, default=86_400.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    split = mmrec.leave_last_out(data.events, n_test=args.replay, n_valid=1)
    train = split.history  # train + the validation event; the replay events stay out
    model = mmrec.TwoTower(user_tower=args.tower, dim=64, max_len=200, epochs=args.epochs, patience=2)
    model.fit(None, split.train, valid=split.valid, show_progress=False)
    index = mmrec.build_index(model.encode_items(), spec="Flat")
    replay = split.test.frame.sort_values(["user", "timestamp"], kind="stable")
    print(f"{args.dataset}: {split}; {args.tower} trained {len(model.history_.epochs)} epochs")

    rows = []
    for alpha in [0.0] + [float(a) for a in args.alphas.split(",")]:
        online = mmrec.OnlineRecommender(model, index, history=train, alpha=alpha, half_life=args.half_life)
        hits = []
        for user, events in replay.groupby("user", sort=False):
            for event in events.itertuples(index=False):
                top = set(online.recommend(user, k=20)["item"])
                hits.append(event.item in top)
                if index.contains([event.item])[0]:  # items the model never saw cannot be observed
                    online.observe(user, event.item, event.event, event.value, event.timestamp)
        rows.append((alpha, float(np.mean(hits)), len(hits)))
        print(f"alpha {alpha:.2f} ({'frozen' if alpha == 0 else 'online'}): hit@20 {np.mean(hits):.4f} "
              f"over {len(hits)} replayed events", flush=True)

    online = mmrec.OnlineRecommender(model, index, history=train, alpha=0.5)
    counts = train.frame.groupby("user").size()
    heavy = counts[counts >= 200].index[:200]
    items = list(index.ids[:50])
    for user in heavy:  # first touch runs the tower once per user
        online.observe(user, items[0], "rating", 4.0, 2e9)
    started = time.perf_counter()
    n = 0
    for user in heavy:
        for step, item in enumerate(items[1:11]):
            online.observe(user, item, "rating", 4.0, 2e9 + step)
            n += 1
    observe_ms = (time.perf_counter() - started) / n * 1e3
    started = time.perf_counter()
    for user in heavy:
        online.recommend(user, k=20)
    recommend_ms = (time.perf_counter() - started) / len(heavy) * 1e3
    started = time.perf_counter()
    for newcomer in range(200):  # new users: the tower re-runs over their first 5 events
        for step, item in enumerate(items[newcomer % 40 : newcomer % 40 + 5]):
            online.observe(f"new-{newcomer}", item, "rating", 4.0, 2e9 + step)
    new_user_ms = (time.perf_counter() - started) / 1000 * 1e3
    print(f"\nobserve: {observe_ms:.3f} ms per event ({n} events, {len(heavy)} users with >= 200 events; "
          f"target <= 1 ms); recommend: {recommend_ms:.2f} ms per call (exact search, "
          f"{len(index)} items); observe for a new user's first 5 events (tower re-run): "
          f"{new_user_ms:.2f} ms per event")
    print("\n| user vector | hit@20 on the replay |\n|---|---|")
    for alpha, hit, _ in rows:
        label = "frozen (training history only)" if alpha == 0 else f"online, alpha {alpha}"
        print(f"| {label} | {hit:.4f} |")


if __name__ == "__main__":
    main()
