"""Cold start on real data: items that never appeared in training, and users with 1–5 events.

    python benchmarks/cold_start.py --dataset ml-100k
    python benchmarks/cold_start.py --dataset ml-1m --epochs 3
    python benchmarks/cold_start.py --dataset ml-1m --users --given 1,3,5

**Cold items** (default): a seeded 10% of the items is held out with every event on them
(``cold_item_split``); models train on the rest and rank the whole catalog (cold items included,
each user's training items masked) for every user who touched a cold item. Recall@K counts only
the cold targets. Rows: popularity (cold items have no count), an id-only two-tower (cannot place
them at all), the untrained content mean and the two-tower with content (cold items fused from
their content alone).

**New users** (``--users``): a seeded 10% of the users is held out of training
(``cold_user_split``); at recommendation time each of them has only their first ``n`` events
(``--given``), and every later event is a target. The models are fitted once and read the
``n`` given events: popularity (the 0-event fallback), the untrained content mean, and the
two-tower whose user tower runs over the handful of events (ids only and ids + content), and
the mean of the trained model's item vectors over the events (what the online short-term vector
holds).
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pandas as pd
import torch

import mmrec
from mmrec.baselines import ContentMean, Popularity
from mmrec.datasets import load_dataset
from mmrec.evaluation import EvalConfig, evaluate_models
from mmrec.evaluation.registry import WithoutContent

COLUMNS = ["recall@20", "ndcg@20", "recall@50", "ndcg@50", "fit_s"]


def _models(args: argparse.Namespace) -> dict:
    tower = dict(user_tower=args.tower, dim=64, max_len=200, epochs=args.epochs, patience=2, seed=args.seed)
    models = {
        "popularity": Popularity(),
        f"two-tower {args.tower}, ids only": WithoutContent(mmrec.TwoTower(**tower)),
        "content mean (MiniLM, untrained)": ContentMean(),
    }
    for rate in (float(r) for r in args.id_dropouts.split(",")):
        models[f"two-tower {args.tower}, ids + MiniLM content, id dropout {rate:g}"] = mmrec.TwoTower(
            **tower, id_dropout=rate)
    if args.skip_ids_only:
        models.pop(f"two-tower {args.tower}, ids only")
    return models


def cold_share(model, split, cold: set, k: int = 20, n_users: int = 1000) -> float:
    """Share of cold items in the top-``k`` of a sample of users (history masked): ~ the cold
    items' share of the catalog when they are ranked like the others, near 1 when they flood."""
    users = list(split.history.users[:n_users])
    scores = np.asarray(model.score_items(split.history, users=users), dtype=np.float32)
    ids = pd.Index(np.asarray(model.item_ids_, dtype=object))
    frame = split.history.frame
    rows = pd.Index(users).get_indexer(frame["user"])
    cols = ids.get_indexer(frame["item"])
    keep = (rows >= 0) & (cols >= 0)
    scores[rows[keep], cols[keep]] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return float(np.isin(ids.to_numpy()[top], list(cold)).mean())


class LearnedItemMean(ContentMean):
    """The new user's vector as the event-weighted mean of the trained model's item vectors (the
    tower's alternative for a handful of events); fit after ``model``."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def fit(self, items, events, *, valid=None) -> LearnedItemMean:
        return super().fit(self.model.encode_items(items), events)


def cold_items(args: argparse.Namespace, events, items) -> None:
    split = mmrec.cold_item_split(events, test_fraction=args.fraction, seed=args.seed)
    print(f"{args.dataset}: {split}; {split.test.frame['item'].nunique()} cold items")
    models = _models(args)
    report = evaluate_models(models, split, items=items, config=EvalConfig(ks=(20, 50), seed=args.seed))
    cold = set(split.test.frame["item"])
    for row in report.rows:
        row["cold share@20"] = cold_share(models[row["model"]], split, cold)
    print()
    print(report.to_markdown([*COLUMNS[:4], "cold share@20", "fit_s"]))
    print(f"\ncold items are {len(cold) / len(items.ids):.1%} of the catalog; 'cold share@20' is their "
          "share of 1,000 users' top-20 (history masked)")


def new_users(args: argparse.Namespace, events, items) -> None:
    givens = sorted(int(n) for n in args.given.split(","))
    models = _models(args)
    trained = models[next(name for name in models if "MiniLM content" in name)]
    models["mean of its learned item vectors (no tower)"] = LearnedItemMean(trained)
    config = EvalConfig(ks=(20, 50), seed=args.seed)
    rows, report = [], None
    for position, n_given in enumerate(givens):
        split = mmrec.cold_user_split(events, test_fraction=args.fraction, n_given=n_given, seed=args.seed)
        print(f"{args.dataset}: {split}; {split.test.frame['user'].nunique()} new users")
        # the held-out users are the same for every n (same seed): fit once, on the first split
        report = evaluate_models(models, split, items=items, config=config, fit=position == 0)
        for row in report.rows:
            fit_s = row["fit_s"] if position == 0 else float("nan")
            rows.append({**row, "model": f"{row['model']} ({n_given} events)", "fit_s": fit_s})
    print()
    merged = dataclasses.replace(report, rows=rows, split=f"cold_user_split, n_given in {givens}")
    print(merged.to_markdown(COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--users", action="store_true", help="new users instead of cold items")
    parser.add_argument("--given", default="1,3,5", help="events each new user has (--users)")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--tower", default="transformer")
    parser.add_argument("--skip-ids-only", action="store_true", help="leave out the id-only two-tower")
    parser.add_argument("--id-dropouts", default="0.2",
                        help="id dropout rates of the content two-towers (one row each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    catalog = data.catalog.subset(data.events.frame["item"].unique())
    items = mmrec.encode_items(catalog, encoders={"text": "text-minilm-l6", "image": None, "audio": None},
                               show_progress=False)
    (new_users if args.users else cold_items)(args, data.events, items)


if __name__ == "__main__":
    main()
