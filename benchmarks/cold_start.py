"""Cold start on real data: items that never appeared in training (and, with ``--users``, new users).

    python benchmarks/cold_start.py --dataset ml-1m                  # cold items, ≈ 20 min on 2 cores
    python benchmarks/cold_start.py --dataset ml-100k --epochs 10
    python benchmarks/cold_start.py --users --dataset ml-1m          # new users (benchmarks/new_users.py)

**Cold items**: a seeded 20% of the items is held out with every event on them
(``cold_item_split``); models train on the rest. For every user with a cold event (and a warm
history), Recall@20 = hits / min(|cold targets|, 20) in two views: ranking **only the cold items**
(how well content orders new items) and ranking **the whole catalog** (the serving case: cold items
compete with warm ones, history masked). ``cold share@20`` is the cold items' share of the
whole-catalog top-20 — about their share of the catalog when they are ranked like the others, near
1 when they flood. Rows: popularity, the untrained MiniLM content mean, LightFM with genre and
title-word item features (``benchmarks/peers.py``), and the two-tower with the ideas tried for the
cold path, each on the same fitted model: the learned content path alone, a cold item as the mean
of its content neighbours' learned vectors, and the content-neighbour blend uncalibrated and
calibrated (the default; :mod:`mmrec.models.content_blend`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import mmrec
from mmrec.baselines import ContentMean, Popularity
from mmrec.datasets import load_dataset
from mmrec.encode.attributes import add_attribute_modality


def cold_views(scores: np.ndarray, item_ids, history: pd.DataFrame, targets: pd.DataFrame, users,
               cold: set, k: int = 20) -> dict[str, float]:
    """Recall@k of the cold targets (hits / min(|cold targets|, k)) ranking only the cold items and
    ranking the whole catalog (history masked), and the cold items' share of the whole-catalog top-k."""
    ids = pd.Index(np.asarray(item_ids, dtype=object))
    scores = np.array(scores, dtype=np.float32)
    rows = pd.Index(users).get_indexer(history["user"])
    cols = ids.get_indexer(history["item"])
    keep = (rows >= 0) & (cols >= 0)
    scores[rows[keep], cols[keep]] = -np.inf
    is_cold = ids.isin(list(cold))
    truth = targets.assign(row=pd.Index(users).get_indexer(targets["user"]),
                           col=ids.get_indexer(targets["item"]))
    truth = truth[(truth["row"] >= 0) & (truth["col"] >= 0)].groupby("row")["col"].agg(set)
    out = {}
    for view, matrix in (("cold items", np.where(is_cold, scores, -np.inf)), ("whole catalog", scores)):
        top = np.argpartition(-matrix, k, axis=1)[:, :k]
        out[f"recall@{k}, {view}"] = float(np.mean([len(truth.get(r, set()) & set(top[r].tolist()))
                                                    / min(len(truth[r]), k) for r in truth.index]))
        if view == "whole catalog":
            out[f"cold share@{k}"] = float(is_cold[top].mean())
    return out


class LearnedNeighbours:
    """An idea tried for cold items: each cold item's vector = the softmax-weighted mean of the
    learned vectors of its ``k`` nearest warm items by raw content (MiniLM cosine)."""

    def __init__(self, k: int = 10, temperature: float = 0.05) -> None:
        self.k, self.temperature = k, temperature

    def vectors(self, learned: np.ndarray, content: np.ndarray, cold: np.ndarray) -> np.ndarray:
        content = content / np.linalg.norm(content, axis=1, keepdims=True)
        similarity = content[cold] @ content[~cold].T
        nearest = np.argpartition(-similarity, self.k, axis=1)[:, : self.k]
        weights = np.exp((np.take_along_axis(similarity, nearest, 1) - 1) / self.temperature)
        out = learned.copy()
        out[cold] = (weights[:, :, None] * learned[~cold][nearest]).sum(1) / weights.sum(1, keepdims=True)
        return out


def cold_items(args: argparse.Namespace, data, items, tower_items) -> None:
    """The cold-item table: peers read ``items`` (MiniLM), the two-towers ``tower_items``."""
    events = data.events
    split = mmrec.cold_item_split(events, test_fraction=args.fraction, seed=args.seed)
    cold = set(split.test.frame["item"])
    share = len(cold) / len(items.ids)
    print(f"{args.dataset}: {split}; {len(cold)} cold items ({share:.0%} of the catalog)")
    history, targets = split.train.frame, split.test.frame
    users = pd.unique(targets["user"].to_numpy(dtype=object))
    users = users[pd.Index(users).isin(history["user"])]
    if args.max_users and len(users) > args.max_users:
        pick = np.random.default_rng(args.seed).choice(len(users), args.max_users, replace=False)
        users = users[np.sort(pick)]
    rows, fit_s = {}, {}

    def timed(name, fit):
        started = time.perf_counter()
        model = fit()
        fit_s[name] = time.perf_counter() - started
        return model

    def scored(name, model, ids=None):
        scores = model.score_items(split.train, users=list(users))
        rows[name] = {**cold_views(scores, ids if ids is not None else model.item_ids_, history, targets,
                                   users, cold), "fit_s": fit_s.get(name, np.nan)}
        print(f"{name}: {rows[name]}", flush=True)

    scored("popularity", timed("popularity", lambda: Popularity().fit(items, split.train)))
    scored("content mean (MiniLM, untrained)", timed("content mean (MiniLM, untrained)",
                                                     lambda: ContentMean().fit(items, split.train)))
    if not args.no_lightfm:
        try:
            from peers import LightFMPeer
            name = f"LightFM (WARP, {args.lightfm_epochs} epochs; genre + title-word features)"
            scored(name, timed(name, lambda: LightFMPeer(catalog=data.catalog, epochs=args.lightfm_epochs,
                                                         seed=args.seed).fit(items, split.train)))
        except ImportError as exc:
            print(f"LightFM row skipped: {exc}")
    for rate in (float(r) for r in args.id_dropouts.split(",") if r):
        extra = " + " + "/".join(args.attribute_columns.split(",")) if args.attribute_columns else ""
        label = f"two-tower ids + MiniLM{extra}, {args.epochs} epochs, id dropout {rate:g}"
        model = timed(label, lambda rate=rate: mmrec.TwoTower(
            user_tower=args.tower, dim=64, max_len=200, epochs=args.epochs, patience=2, seed=args.seed,
            id_dropout=rate).fit(tower_items, split.train))
        blend, prior = model.blend_, model.prior_
        model.prior_ = None  # these users have long histories; the prior is measured in new_users.py
        model.blend_ = None
        fit_s[f"{label}: learned content path alone"] = fit_s[label]
        scored(f"{label}: learned content path alone", model)
        learned = model.encode_items(tower_items)
        text = items.vectors["text"]
        ids = pd.Index(learned.ids)
        user_vectors = model.encode_users(split.train, users=list(users)).vectors
        cold_rows = ids.isin(list(cold))
        neighbours = LearnedNeighbours().vectors(learned.fused, text, cold_rows)
        rows[f"{label}: cold vector = mean of the learned vectors of the 10 nearest warm items"] = {
            **cold_views(user_vectors @ neighbours.T, ids, history, targets, users, cold), "fit_s": np.nan}
        if blend is not None:
            import dataclasses
            model.blend_ = dataclasses.replace(blend, offset=0.0)
            scored(f"{label}: + content-neighbour score (weight {blend.weight:g}), uncalibrated", model)
            model.blend_ = blend
            scored(f"{label}: + content-neighbour score, calibrated (offset {blend.offset:+.3f}) = default",
                   model)
            print(f"blend fit: {blend.valid}")
        model.prior_ = prior
    print()
    columns = ["recall@20, cold items", "recall@20, whole catalog", "cold share@20", "fit_s"]
    print("| model | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" if c != "fit_s" else f"{row[c]:.0f}"
                                          for c in columns) + " |")
    peers = [r for n, r in rows.items() if not n.startswith("two-tower") and n != "popularity"]
    best = {c: max(r[c] for r in peers) for c in columns[:2]}
    default = next((r for n, r in rows.items() if n.endswith("= default")), None)
    if default:
        print("\ndefault vs the best simple peer: " + ", ".join(
            f"{c}: {default[c] / best[c]:.2f}x" for c in columns[:2]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1, default=float))
    print(f"saved {out}")


def main() -> None:
    if "--users" in sys.argv:  # new users: their own script, the same table layout
        sys.argv.remove("--users")
        import new_users

        new_users.main()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-1m", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--fraction", type=float, default=0.2, help="share of the items held out (cold)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--tower", default="transformer")
    parser.add_argument("--id-dropouts", default="0.5",
                        help="id dropout of the two-towers (one row each; '' : no two-tower)")
    parser.add_argument("--attribute-columns", default="genres,year",
                        help="catalog columns the two-tower also reads as an attributes modality ('': none)")
    parser.add_argument("--lightfm-epochs", type=int, default=30)
    parser.add_argument("--no-lightfm", action="store_true")
    parser.add_argument("--max-users", type=int, default=0, help="evaluate a sample of users (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None,
                        help="results JSON (default: benchmarks/results/cold-items-DATASET.json)")
    args = parser.parse_args()
    args.out = args.out or f"benchmarks/results/cold-items-{args.dataset}.json"
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    catalog = data.catalog.subset(data.events.frame["item"].unique())
    items = mmrec.encode_items(catalog, encoders={"text": "text-minilm-l6", "image": None, "audio": None},
                               show_progress=False)
    columns = [c for c in args.attribute_columns.split(",") if c]
    tower_items = add_attribute_modality(items, catalog, columns=columns) if columns else items
    cold_items(args, data, items, tower_items)


if __name__ == "__main__":
    main()
