"""New users through the library's own path: popularity, attributes and a fading prior.

    python benchmarks/new_users.py --dataset ml-1m --epochs 3

A seeded 10% of the users is held out of training (``cold_user_split``); each reveals their first
``n`` events (``--given``, default 0,1,2,3,5,10) and **every later event is a target** (ML-1M's
first ratings come in same-second bulks: "the next event" would reward learning the tie order).
HR@20 = share of users with at least one later event in their top-20; Recall@20 = hits /
min(|later events|, 20). Every row ranks all items, the revealed events masked.

Rows: popularity (distinct training users per item); demographic popularity
(:class:`mmrec.baselines.SegmentPopularity` over the user attributes); the untrained content
mean (MiniLM titles + genres, the user's revealed items averaged; popularity at n = 0); LightFM
with user and item features (``benchmarks/peers.py``, if installed); and the two-tower as a user
calls it — ``mmrec.recommend(index, given, users=new_users, model=model)`` over an index of
``model.encode_items(items)`` — with its parts switched off one at a time at recommendation time
(the same fitted model): no prior (``model.prior_ = None``), no attributes.
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
from mmrec.baselines import ContentMean, Popularity, SegmentPopularity
from mmrec.datasets import load_dataset


def hit_and_recall(recs: pd.DataFrame, targets: pd.DataFrame, users: np.ndarray, k: int
                   ) -> tuple[float, float]:
    """HR@k and Recall@k (hits / min(|targets|, k)) of ``recs`` (user, item) against ``targets``."""
    truth = targets.groupby("user")["item"].agg(set)
    picked = recs[recs["rank"] <= k].groupby("user")["item"].agg(set)
    hits, recalls = [], []
    for user in users:
        wanted, got = truth.get(user, set()), picked.get(user, set())
        if not wanted:
            continue
        n = len(wanted & got)
        hits.append(n > 0)
        recalls.append(n / min(len(wanted), k))
    return float(np.mean(hits)), float(np.mean(recalls))


def scored_recommendations(model, given: mmrec.Interactions, users: np.ndarray, k: int) -> pd.DataFrame:
    """Top-``k`` from a harness model's ``score_items`` (revealed items masked)."""
    scores = np.asarray(model.score_items(given, users=list(users)), dtype=np.float32)
    ids = pd.Index(model.item_ids_)
    rows = pd.Index(users).get_indexer(given.frame["user"])
    cols = ids.get_indexer(given.frame["item"])
    keep = (rows >= 0) & (cols >= 0)
    scores[rows[keep], cols[keep]] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return pd.DataFrame({"user": np.repeat(users, k), "rank": np.tile(np.arange(1, k + 1), len(users)),
                         "item": ids.to_numpy()[top].ravel()})


def _scorer(model, k: int):
    return lambda given, users: scored_recommendations(model, given, users, k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-1m", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--given", default="0,1,2,3,5,10")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-lightfm", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/new-users.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    if data.users is None:
        raise SystemExit(f"{args.dataset} ships no user attributes")
    attributes = data.users
    catalog = data.catalog.subset(data.events.frame["item"].unique())
    items = mmrec.encode_items(catalog, encoders={"text": "text-minilm-l6", "image": None, "audio": None},
                               show_progress=False)
    givens = sorted(int(n) for n in args.given.split(","))
    train = mmrec.cold_user_split(data.events, test_fraction=args.fraction, n_given=0, seed=args.seed).train
    print(f"{args.dataset}: {len(train)} training events; user attributes {list(attributes.columns)}")

    fitted: dict[str, float] = {}

    def timed(name, fit):
        started = time.perf_counter()
        model = fit()
        fitted[name] = time.perf_counter() - started
        return model

    popularity = timed("popularity", lambda: Popularity().fit(items, train))
    segments = timed("demographic popularity",
                     lambda: SegmentPopularity().fit(items, train, users=attributes))
    content = timed("content mean", lambda: ContentMean().fit(items, train))
    peers = {}
    if not args.no_lightfm:
        try:
            from peers import LightFMPeer
            peers["LightFM (WARP; user + item features)"] = timed("LightFM", lambda: LightFMPeer(
                catalog=data.catalog, user_features=True, seed=args.seed).fit(items, train, users=attributes))
        except ImportError as exc:
            print(f"LightFM row skipped: {exc}")
    model = timed("two-tower", lambda: mmrec.TwoTower(user_tower="transformer", dim=64, max_len=200,
                                                     epochs=args.epochs, patience=2, seed=args.seed)
                  .fit(items, train, users=attributes))
    prior = model.prior_
    print(f"fitted prior weights {prior.weights} at {prior.steps} events" if prior else "no prior")
    index = mmrec.build_index(model.encode_items(items), spec="Flat")

    def library(use_prior: bool, use_attributes: bool):
        def recommend(given, users):
            model.prior_ = prior if use_prior else None
            model.set_user_attributes(attributes if use_attributes else None)
            # the log a deployment holds: everyone's training events and the new users' first n
            log = mmrec.Interactions(pd.concat([train.frame, given.frame], ignore_index=True))
            try:
                return mmrec.recommend(index, log, users=list(users), model=model, k=args.k)
            finally:
                model.prior_ = prior
                model.set_user_attributes(attributes)
        return recommend

    rows = {
        "popularity": lambda g, u: scored_recommendations(popularity, g, u, args.k),
        "demographic popularity (age, gender, occupation, zip)": lambda g, u: scored_recommendations(
            segments, g, u, args.k),
        "content mean (MiniLM, untrained; popularity at n=0)": lambda g, u: scored_recommendations(
            content, g, u, args.k) if len(g) else scored_recommendations(popularity, g, u, args.k),
        **{name: _scorer(peer, args.k) for name, peer in peers.items()},
        "mmrec two-tower, events only (no attributes, no prior)": library(False, False),
        "mmrec two-tower + attributes (no prior)": library(False, True),
        "mmrec two-tower + fading prior (no attributes)": library(True, False),
        "mmrec two-tower + attributes + fading prior (default)": library(True, True),
    }
    table = {name: {} for name in rows}
    for n in givens:
        split = mmrec.cold_user_split(data.events, test_fraction=args.fraction, n_given=n, seed=args.seed)
        given = split.given if split.given is not None else split.test.for_users([])
        users = pd.unique(split.test.frame["user"].to_numpy(dtype=object))
        for name, recommend in rows.items():
            hr, recall = hit_and_recall(recommend(given, users), split.test.frame, users, args.k)
            table[name][n] = (hr, recall)
        print(f"n={n}: {len(users)} new users", flush=True)
    print(f"\nHR@{args.k} / Recall@{args.k} of held-out users after their first n events (all later "
          "events are targets)\n")
    print("| model | " + " | ".join(f"n={n}" for n in givens) + " | fit s |")
    print("|---|" + "---:|" * (len(givens) + 1))
    fit_of = {"popularity": "popularity", "demographic": "demographic popularity", "content": "content mean",
              "LightFM": "LightFM", "mmrec": "two-tower"}
    for name, by_n in table.items():
        fit_s = next((fitted.get(v, np.nan) for key, v in fit_of.items() if name.startswith(key)), np.nan)
        cells = " | ".join(f"{by_n[n][0]:.3f} / {by_n[n][1]:.3f}" for n in givens)
        print(f"| {name} | {cells} | {fit_s:.0f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    saved = {name: {str(n): v for n, v in by_n.items()} for name, by_n in table.items()}
    Path(args.out).write_text(json.dumps({"args": vars(args), "prior": prior.to_dict() if prior else None,
                                          "table": saved, "fit_s": fitted}, indent=1))


if __name__ == "__main__":
    main()
