"""Cold items: can a model rank items that never appeared in training?

    python benchmarks/cold_start.py --dataset ml-100k
    python benchmarks/cold_start.py --dataset ml-1m --epochs 5

A seeded 10% of the items is held out with every event on them (``cold_item_split``); models train
on the rest and rank the whole catalog (cold items included, each user's training items masked)
for every user who touched a cold item. Recall@20 counts only the cold targets. Rows: popularity
(cold items have no count), an id-only two-tower (cannot place them at all), the untrained content
mean and the two-tower with content (cold items fused from their content alone).
"""

from __future__ import annotations

import argparse

import torch

import mmrec
from mmrec.baselines import ContentMean, Popularity
from mmrec.datasets import load_dataset
from mmrec.evaluate_job import WithoutContent
from mmrec.evaluation import EvalConfig, evaluate_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--tower", default="transformer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    catalog = data.catalog.subset(data.events.frame["item"].unique())
    items = mmrec.encode_items(catalog, encoders={"text": "text-minilm-l6", "image": None, "audio": None},
                               show_progress=False)
    split = mmrec.cold_item_split(data.events, test_fraction=args.fraction, seed=args.seed)
    print(f"{args.dataset}: {split}; {split.test.frame['item'].nunique()} cold items")
    tower = dict(user_tower=args.tower, dim=64, max_len=200, epochs=args.epochs, patience=2, seed=args.seed)
    models = {
        "popularity": Popularity(),
        f"two-tower {args.tower}, ids only": WithoutContent(mmrec.TwoTower(**tower)),
        "content mean (MiniLM, untrained)": ContentMean(),
        f"two-tower {args.tower}, ids + MiniLM content": mmrec.TwoTower(**tower),
    }
    report = evaluate_models(models, split, items=items, config=EvalConfig(ks=(20, 50), seed=args.seed))
    print()
    print(report.to_markdown(["recall@20", "ndcg@20", "recall@50", "ndcg@50", "fit_s"]))


if __name__ == "__main__":
    main()
