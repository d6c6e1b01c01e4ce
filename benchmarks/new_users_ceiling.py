"""How much can a new user's first n events tell? Probes of the new-user protocol's headroom.

    python benchmarks/new_users_ceiling.py --dataset ml-1m --seeds 0,1

The protocol of ``benchmarks/new_users.py``: a seeded 10% of the users is held out of training
(``cold_user_split``); each reveals their first ``n`` events and every later event is a target;
Recall@20 = hits / min(|later events|, 20), every item ranked, the revealed ones masked.

Every probe below is **tuned on the test users themselves** (its best setting per ``n`` is
reported): an optimistic bound on what the method can do here, not a fair row. Probes:

- popularity (distinct training users per item);
- **time-local popularity**: training events weighted by ``exp(-|t - t_user| / tau)`` around the
  user's last revealed event (what was popular when they arrived);
- **EASE folded in** (Steck 2019, fitted on the training users): the revealed events times the
  item-item weights, plus ``w`` x popularity (``w`` on a grid; 0 at ``n = 0``);
- **user-KNN**: training users weighted by their IDF-weighted overlap with the revealed items
  (plus ``a`` x the mean overlap), their items summed;
- **first-events model**: a multinomial autoencoder (one hidden layer, Mult-DAE's loss) trained on
  the training users' own first ``m`` events (``m`` drawn in 0..10) to predict the rest of their
  history: the conditional "what comes after these first events" learned directly, its best
  epoch reported.

If none of them moves far from popularity, the revealed events carry little the ranking can use.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import mmrec
from mmrec.baselines import EASE
from mmrec.datasets import load_dataset

K = 20


def recall_at(scores: np.ndarray, given: np.ndarray, truth: list[set[int]], k: int = K) -> float:
    """Mean hits / min(|truth|, k) of each row's top-``k`` (``given`` cells masked)."""
    scores = np.where(given, -np.inf, scores)
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    recalls = [len(t & set(row)) / min(len(t), k) for row, t in zip(top, truth, strict=True) if t]
    return float(np.mean(recalls))


class Fold:
    """One split at one ``n``: the training matrix, the new users' revealed matrix and targets."""

    def __init__(self, events: mmrec.Interactions, items: pd.Index, n: int, seed: int) -> None:
        split = mmrec.cold_user_split(events, test_fraction=0.1, n_given=n, seed=seed)
        self.split, self.items = split, items
        train = split.train.frame
        self.train_users = pd.Index(pd.unique(train["user"]))
        self.users = pd.Index(pd.unique(split.test.frame["user"]))
        self.train = np.zeros((len(self.train_users), len(items)), dtype=np.float32)
        self.train[self.train_users.get_indexer(train["user"]), items.get_indexer(train["item"])] = 1.0
        self.train_items = items.get_indexer(train["item"])
        self.train_days = train["timestamp"].to_numpy(dtype=np.float64) / 86_400.0
        self.given = np.zeros((len(self.users), len(items)), dtype=bool)
        self.last_day = np.full(len(self.users), np.nan)
        if split.given is not None and len(split.given):
            rows = self.users.get_indexer(split.given.frame["user"])
            self.given[rows, items.get_indexer(split.given.frame["item"])] = True
            days = split.given.frame["timestamp"].to_numpy(dtype=np.float64) / 86_400.0
            self.last_day = pd.Series(days).groupby(rows).max().reindex(range(len(self.users))).to_numpy()
        self.truth: list[set[int]] = [set() for _ in self.users]
        test = split.test.frame
        rows, cols = self.users.get_indexer(test["user"]), items.get_indexer(test["item"])
        for row, col in zip(rows, cols, strict=True):
            self.truth[row].add(int(col))
        self.popularity = self.train.sum(axis=0)

    def score(self, scores: np.ndarray) -> float:
        return recall_at(scores, self.given, self.truth)


def time_local_popularity(fold: Fold, taus: list[float]) -> dict[str, float]:
    if np.isnan(fold.last_day).all():
        return {}
    day0 = np.floor(fold.train_days.min())
    days = (np.floor(fold.train_days) - day0).astype(np.int64)
    per_day = np.zeros((days.max() + 1, fold.train.shape[1]))
    np.add.at(per_day, (days, fold.train_items), 1.0)
    user_day = np.nan_to_num(fold.last_day - day0, nan=float(np.median(days)))
    gap = np.abs(user_day[:, None] - np.arange(per_day.shape[0])[None, :])
    return {f"tau={tau:g} days": fold.score(np.exp(-gap / tau) @ per_day + 1e-3 * fold.popularity)
            for tau in taus}


def ease_folded_in(fold: Fold, l2s: list[float], weights: list[float]) -> dict[str, float]:
    """:class:`mmrec.baselines.EASE` fitted on the training users, scoring the revealed events."""
    out = {}
    for l2 in l2s:
        model = EASE(l2=l2).fit(None, fold.split.train)
        scores = np.zeros(fold.given.shape, dtype=np.float32)  # items without a training event: 0
        scores[:, fold.items.get_indexer(model.item_ids_)] = model.score_items(fold.split.given,
                                                                               users=list(fold.users))
        for w in weights:
            out[f"l2={l2:g}, w={w:g}"] = fold.score(scores + w * fold.popularity)
    return out


def user_knn(fold: Fold, alphas: list[float]) -> dict[str, float]:
    idf = np.log(len(fold.train_users) / (1.0 + fold.popularity)).astype(np.float32)
    overlap = (fold.given * idf) @ fold.train.T
    return {f"a={a:g}": fold.score((overlap + a * overlap.mean(axis=1, keepdims=True) + 1e-6) @ fold.train)
            for a in alphas}


def first_events_model(fold: Fold, sequences: list[np.ndarray], *, epochs: int, hidden: int, seed: int
                       ) -> dict[str, float]:
    """Best-epoch Recall@20 of a one-hidden-layer multinomial autoencoder trained on the training
    users' first ``m`` events (``m`` in 0..10) -> the rest of their history."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    n_items = fold.train.shape[1]
    net = torch.nn.Sequential(torch.nn.Linear(n_items, hidden), torch.nn.Tanh(), torch.nn.Dropout(0.5),
                              torch.nn.Linear(hidden, n_items))
    with torch.no_grad():
        log_pop = torch.log1p(torch.from_numpy(fold.popularity))
        net[3].bias.copy_(log_pop - log_pop.mean())
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    revealed = torch.from_numpy(fold.given.astype(np.float32))
    out = {}
    for epoch in range(epochs):
        net.train()
        order = rng.permutation(len(sequences))
        for start in range(0, len(sequences), 128):
            chosen = order[start : start + 128]
            x = torch.zeros(len(chosen), n_items)
            y = torch.zeros(len(chosen), n_items)
            for row, user in enumerate(chosen):
                sequence = sequences[user]
                m = int(rng.integers(0, min(11, len(sequence) - 1)))
                x[row, sequence[:m]] = 1.0
                y[row, sequence[m:]] = 1.0
            loss = -(torch.log_softmax(net(x), dim=1) * y).sum(1).div(y.sum(1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad():
            out[f"epoch {epoch + 1}"] = fold.score(net(revealed).numpy())
    return out


def training_sequences(events: mmrec.Interactions, fold: Fold, items: pd.Index) -> list[np.ndarray]:
    """Each training user's items in time order (ties: the log's order)."""
    frame = events.frame[events.frame["user"].isin(fold.train_users)]
    order = np.lexsort((np.arange(len(frame)), frame["timestamp"].to_numpy()))
    frame = frame.iloc[order]
    return [items.get_indexer(group["item"]) for _, group in frame.groupby("user", sort=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-1m", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--given", default="0,1,2,3,5,10")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/new-users-ceiling.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    events = load_dataset(args.dataset).events
    items = pd.Index(pd.unique(events.frame["item"]))
    results: dict[str, dict] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        sequences = None
        for n in (int(g) for g in args.given.split(",")):
            started = time.perf_counter()
            fold = Fold(events, items, n, seed)
            if sequences is None:
                sequences = training_sequences(events, fold, items)
            popularity = fold.score(np.broadcast_to(fold.popularity, fold.given.shape))
            probes = {"time-local popularity": time_local_popularity(fold, [3, 10, 30, 100]),
                      "EASE folded in": ease_folded_in(fold, [250, 1000, 3000], [0, 1e-4, 1e-3]) if n else {},
                      "user-KNN": user_knn(fold, [0.0, 0.3, 1.0]) if n else {},
                      "first-events model": first_events_model(fold, sequences, epochs=args.epochs,
                                                               hidden=256, seed=seed)}
            row = {"popularity": popularity, "users": len(fold.users)}
            for name, grid in probes.items():
                if grid:
                    best = max(grid, key=grid.get)
                    row[name] = {"recall": grid[best], "setting": best, "ratio": grid[best] / popularity}
            results.setdefault(str(seed), {})[str(n)] = row
            cells = ", ".join(f"{name} {v['recall']:.4f} ({v['ratio']:.2f}x; {v['setting']})"
                              for name, v in row.items() if isinstance(v, dict))
            print(f"seed {seed} n={n} ({len(fold.users)} users, {time.perf_counter() - started:.0f} s): "
                  f"popularity {popularity:.4f}; {cells}", flush=True)
    names = ["time-local popularity", "EASE folded in", "user-KNN", "first-events model"]
    print(f"\nRecall@{K} of every later event, best setting per probe chosen on the test users "
          "(ratio to popularity)\n")
    print("| seed | n | popularity | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for seed, by_n in results.items():
        for n, row in by_n.items():
            cells = " | ".join(f"{row[m]['recall']:.4f} ({row[m]['ratio']:.2f}x)" if m in row else "—"
                               for m in names)
            print(f"| {seed} | {n} | {row['popularity']:.4f} | {cells} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
