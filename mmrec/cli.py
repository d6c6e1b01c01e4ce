"""The ``mmrec`` command line: one sub-command per stage (demo, encode, train, index, recommend, ...)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmrec._version import __version__
from mmrec.errors import ConfigError, MmrecError
from mmrec.serve.commands import add_forget_parser, add_serve_parser
from mmrec.utils.io import atomic_path

logger = logging.getLogger("mmrec")


def _encoder_overrides(args: argparse.Namespace) -> dict[str, str | None]:
    chosen: dict[str, str | None] = {}
    for modality in ("text", "image", "audio"):
        value = getattr(args, modality)
        if value is not None:
            chosen[modality] = None if value.lower() == "none" else value
    return chosen


def cmd_encode(args: argparse.Namespace) -> int:
    from mmrec import Catalog, encode_items

    if args.engine == "ray":  # Ray Data reads the file itself (also s3://... URIs)
        from mmrec.encode.engines import EncodeEngine

        if args.cache or args.workers is not None:
            raise ConfigError("--cache and --workers are local-engine options; with --engine ray use "
                              "--ray-workers (actors per modality).")
        engine = EncodeEngine("ray", address=args.ray_address, workers=args.ray_workers or 2)
        items = encode_items(args.catalog, encoders=_encoder_overrides(args), batch_size=args.batch_size,
                             device=args.device, out=args.out, num_threads=args.threads, engine=engine)
    else:
        catalog = Catalog.from_path(args.catalog)
        logger.info("%s", catalog)
        items = encode_items(catalog, encoders=_encoder_overrides(args), batch_size=args.batch_size,
                             device=args.device, num_workers=args.workers, cache_dir=args.cache,
                             out=args.out, num_threads=args.threads)
    print(items)
    print(items.report)
    print(f"saved item vectors to {args.out}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from mmrec import ItemVectors, build_index

    if args.shards:
        from mmrec.index.sharded import build_sharded_index

        if args.target_recall:
            raise ConfigError("--shards builds plain shards: drop --target-recall.")
        attributes = None
        if args.catalog:
            from mmrec import Catalog

            attributes = Catalog.from_path(args.catalog)
        sharded = build_sharded_index(args.items, args.out, n_shards=args.shards, spec=args.spec,
                                      attributes=attributes, seed=args.seed)
        print(sharded)
        print(f"saved sharded index to {args.out}")
        return 0
    attributes = None
    if args.catalog:
        from mmrec import Catalog

        attributes = Catalog.from_path(args.catalog)
    index = build_index(ItemVectors.load(args.items, mmap=True), spec=args.spec, seed=args.seed,
                        target_recall=args.target_recall, k=args.k, attributes=attributes,
                        memory_budget=int(args.memory_gb * 2**30) if args.memory_gb else None)
    index.save(args.out)
    print(index)
    tuning = index.params.get("tuning")
    if tuning:
        print(f"recall@{tuning['k']} {tuning['achieved_recall']:.3f} (target {tuning['target_recall']}) "
              f"on {tuning['queries']} held-out item queries with {tuning['params'] or 'exact search'}")
    print(f"saved index to {args.out}")
    return 0


def _titles(catalog_path: str | None) -> pd.Series | None:
    if not catalog_path:
        return None
    from mmrec import Catalog

    catalog = Catalog.from_path(catalog_path)
    column = catalog.schema.text[0] if catalog.schema.text else None
    if column is None:
        return None
    return pd.Series(catalog.column(column), index=catalog.ids)


def print_recommendations(
    recs: pd.DataFrame, titles: pd.Series | None, *, extra: pd.Series | None = None
) -> None:
    """Print recommendations grouped by user, with titles when known and explanations when the
    table has them (``modalities``, ``because``)."""
    explained = "because" in recs.columns
    for user, rows in recs.groupby("user", sort=False):
        note = f"  ({extra[user]})" if extra is not None and user in extra.index else ""
        print(f"{user} [{rows['source'].iloc[0]}]{note}")
        for row in rows.itertuples():
            title = f"  {titles[row.item]}" if titles is not None else ""
            print(f"  {row.rank:>3}. {row.item:<12} {row.score:7.3f}{title}")
            if explained and row.because:
                print(f"       [{row.modalities}] because of: {row.because}")


def cmd_recommend(args: argparse.Namespace) -> int:
    from mmrec import Interactions, RankingOptions, TwoTower, recommend
    from mmrec.evaluation.registry import load_model
    from mmrec.index.sharded import load_serving_index

    if args.batch_size is not None and (not args.out or args.explain):
        raise ConfigError("--batch-size streams to a file: give --out recs.parquet (or .csv), "
                          "without --explain.")
    options = RankingOptions(k=args.k, exclude_seen=not args.include_seen, where=_parse_where(args.where),
                             half_life=args.half_life)
    index = (load_serving_index(args.index, resident=not args.shard_at_a_time)
             if args.index is not None else None)
    events = Interactions.from_path(args.events)
    model = load_model(args.model) if args.model else None
    if index is None:
        if model is None:
            raise ConfigError("give --index (content or two-tower recommendations through an index), "
                              "--model (a saved model ranks its items), or both.")
        unsupported = [flag for flag, given in [("--where", options.where),
                                               ("--half-life", options.half_life),
                                               ("--batch-size", args.batch_size)] if given is not None]
        if unsupported:
            raise ConfigError(f"{', '.join(unsupported)} need --index (filters, recency and batches "
                              "run through the index).")
        recs = model.recommend(events, users=args.users, k=options.k, exclude_seen=options.exclude_seen)
    else:
        if model is not None and not isinstance(model, TwoTower):
            raise ConfigError(f"--index serves a two-tower model's user vectors; {type(model).__name__} "
                              "ranks its own items: drop --index.")
        if args.batch_size is not None:
            from mmrec.ranking.batch import EventsByUser

            grouped = EventsByUser.from_interactions(index, events)
            del events  # the grouped arrays are all the batches read: the log's table is freed
            return _recommend_in_batches(args, index, grouped, options=options, model=model)
        recs = recommend(index, events, users=args.users, model=model, options=options)
    titles = _titles(args.catalog)
    if args.explain:
        if not isinstance(model, TwoTower):
            raise ConfigError("--explain needs a two-tower --model (explanations come from the trained "
                              "fusion).")
        from mmrec import ItemVectors
        from mmrec.ranking.explain import explain_recommendations

        items = ItemVectors.load(args.items) if args.items else None
        labels = titles.to_dict() if titles is not None else None
        explained = explain_recommendations(model, items, events, recs[recs["source"] == "model"],
                                            labels=labels)
        recs = recs.merge(explained[["user", "rank", "modalities", "because"]], on=["user", "rank"],
                          how="left").fillna({"modalities": "", "because": ""})
    if args.out:
        with atomic_path(args.out) as tmp:
            recs.to_csv(tmp, index=False)
        print(f"wrote {len(recs)} recommendations for {recs['user'].nunique()} users to {args.out}")
    if not args.out or args.users:
        print_recommendations(recs, titles)
    return 0


def _recommend_in_batches(args: argparse.Namespace, index, grouped, *, options, model) -> int:
    """``--batch-size``: every user's (or ``--users``') recommendations streamed to ``--out`` one
    batch at a time, from the log grouped once (memory stays that of one batch)."""
    from mmrec.ranking.batch import recommend_batches, write_recommendations

    rows, users = write_recommendations(
        recommend_batches(index, grouped, users=args.users, batch_size=args.batch_size, model=model,
                          options=options), args.out)
    print(f"wrote {rows} recommendations for {users} users to {args.out}")
    return 0


def _parse_where(terms: list[str] | None) -> dict[str, list[str]] | None:
    if not terms:
        return None
    where = {}
    for term in terms:
        column, sep, values = term.partition("=")
        if not sep or not column:
            raise MmrecError(f"--where expects COLUMN=VALUE[,VALUE], got {term!r}.")
        where[column] = values.split(",")
    return where


def cmd_encoders(args: argparse.Namespace) -> int:
    from mmrec.encoders import get_preset, list_encoders

    for name in list_encoders(args.modality):
        preset = get_preset(name)
        print(f"{name:<28} {preset.modality:<6} {preset.encoder:<16} {preset.description}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import mmrec
    from mmrec.datasets.demo import make_demo, topic_hit_rate

    timings = {}
    start = time.perf_counter()
    demo = make_demo(args.out, n_items=args.items, n_users=args.users, seed=args.seed)
    timings["generate"] = time.perf_counter() - start
    print(f"demo catalog and behaviour log written to {demo.root}/")

    start = time.perf_counter()
    catalog = mmrec.Catalog.from_path(demo.catalog)
    events = mmrec.Interactions.from_path(demo.events)
    print(catalog)
    print(events)
    items = mmrec.encode_items(catalog, device=args.device)
    items.save(demo.root / "item_vectors")
    timings["encode"] = time.perf_counter() - start
    print(items)
    print("encode report:")
    print(items.report)

    start = time.perf_counter()
    index = mmrec.build_index(items)
    index.save(demo.root / "index")
    timings["index"] = time.perf_counter() - start
    print(index)

    start = time.perf_counter()
    recs = mmrec.recommend(index, events, k=args.k)
    with atomic_path(demo.root / "recommendations.csv") as tmp:
        recs.to_csv(tmp, index=False)
    timings["recommend"] = time.perf_counter() - start

    truth = pd.read_csv(demo.users).set_index("user_id")["topics"]
    titles = pd.read_csv(demo.catalog).set_index("item_id")
    labelled = titles["title"] + "  [" + titles["category"] + "]"
    shown = recs[recs["user"].isin(truth.index[: args.show_users])]
    print(f"\ntop-{args.k} recommendations (seen items excluded), with each user's true topics:")
    print_recommendations(shown, labelled, extra="likes " + truth.str.replace("|", " and "))
    hit = topic_hit_rate(recs, demo)
    print(f"\ntopic hit rate over all {recs['user'].nunique()} users: {hit:.3f} (chance: 0.250)")
    if args.epochs > 0:
        start = time.perf_counter()
        _demo_training(mmrec, items, events, index, demo.root, args)
        timings["train"] = time.perf_counter() - start
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    print(f"artifacts: {demo.root / 'item_vectors'}, {demo.root / 'index'}, "
          f"{demo.root / 'recommendations.csv'}" + (f", {demo.root / 'model'}" if args.epochs > 0 else ""))
    return 0


def _demo_training(mmrec, items, events, index, root: Path, args: argparse.Namespace) -> None:
    """Train a two-tower model on the demo and compare it with the content mean on held-out events."""
    from mmrec.evaluation import evaluate_recommendations

    split = mmrec.leave_last_out(events)
    history = split.history
    model = mmrec.TwoTower(fusion="gated", user_tower="transformer", dim=32, max_len=50, n_layers=1,
                           epochs=args.epochs, device=args.device or "auto")
    print(f"\ntraining {model} on {len(split.train)} events ({args.epochs} epochs at most) ...")
    model.fit(items, split.train, valid=split.valid)
    model.save(root / "model")
    baseline = mmrec.recommend(index, history, users=list(split.test.users), k=10)
    before = evaluate_recommendations(baseline, split.test, ks=(10,))
    after = model.evaluate(history, split.test, ks=(10,))
    epoch = model.history_.best_epoch
    print(f"held-out last event of {after['users']} users, hit rate @10: content mean "
          f"{before['hit@10']:.3f}, trained two-tower {after['hit@10']:.3f} (best epoch {epoch}"
          f"{', the untrained model' if epoch == 0 else ''})")
    weights = model.modality_weights(items).mean()
    print("mean modality weights of the learned fusion: "
          + ", ".join(f"{name} {share:.2f}" for name, share in weights.items()))


def cmd_train(args: argparse.Namespace) -> int:
    from mmrec.jobs.train import load_train_job, run_train_job

    training = {k: v for k, v in (("epochs", args.epochs), ("device", args.device)) if v is not None}
    job = load_train_job(args.config, out=args.out, training=training)
    summary = run_train_job(job)
    if summary["rank"] != 0:  # one of several torchrun processes: rank 0 reports
        return 0
    for name, value in summary["test"].items():
        print(f"{name:>10}: {value:.4f}" if isinstance(value, float) else f"{name:>10}: {value}")
    best = summary["training"]["best_epoch"]
    print(f"best epoch {best}; model, item vectors and metrics.json saved in {job.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mmrec.jobs.evaluate import load_evaluate_job, run_evaluate_job

    evaluation: dict[str, Any] = {"sampled_negatives": args.sampled} if args.sampled is not None else {}
    if args.diversify is not None:
        try:
            evaluation["diversify"] = [float(v) for v in args.diversify.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--diversify takes numbers in [0, 1] separated by commas, got "
                              f"{args.diversify!r}.") from None
    if args.rerank is not None:
        evaluation["rerank"] = args.rerank
    job = load_evaluate_job(args.config, out=args.out, evaluation=evaluation)
    report = run_evaluate_job(job)
    print(report.to_markdown())
    extra = ", tradeoff.png" if report.has_tradeoff else ""
    print(f"\nmetrics.csv, metrics.json, metrics.md, metrics.png{extra} saved in {job.out}")
    return 0


def _add_job_options(p: argparse.ArgumentParser, doc: str) -> None:
    """The options of every command driven by a job file."""
    p.add_argument("--config", required=True, help=f"YAML or TOML job file (see {doc})")
    p.add_argument("--out", default=None, help="output folder (overrides the config's out)")


def add_demo_parser(sub: Any) -> None:
    """``mmrec demo``."""
    p = sub.add_parser("demo", help="generate the demo catalog and run encode → index → recommend",
                       description="Generate a deterministic multimodal demo (text, images, sounds, "
                       "behaviour log) and run the whole pipeline on it.")
    p.add_argument("--out", default="mmrec-demo", help="output folder (default: mmrec-demo)")
    p.add_argument("--items", type=int, default=240, help="number of items (default: 240)")
    p.add_argument("--users", type=int, default=120, help="number of users (default: 120)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--k", type=int, default=5, help="recommendations per user (default: 5)")
    p.add_argument("--show-users", type=int, default=3, help="users to print (default: 3)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--epochs", type=int, default=10,
                   help="epochs of the two-tower model trained at the end (0: skip; default: 10)")
    p.set_defaults(func=cmd_demo)


def add_encode_parser(sub: Any) -> None:
    """``mmrec encode``."""
    p = sub.add_parser("encode", help="encode a catalog's items into per-modality vectors",
                       description="Read a catalog (.parquet, .csv, .tsv, .jsonl), encode text, "
                       "images and audio, save ItemVectors to a folder.")
    p.add_argument("catalog", help="catalog file")
    p.add_argument("--out", required=True, help="output folder for the item vectors")
    for modality in ("text", "image", "audio"):
        p.add_argument(f"--{modality}", default=None, metavar="PRESET",
                       help=f"{modality} encoder preset (see `mmrec encoders`), or 'none' to skip")
    p.add_argument("--batch-size", type=int, default=32, help="items per batch (default: 32)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="content-hash cache folder: unchanged items are not re-encoded, "
                   "interrupted runs resume")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the models (default: torch's own choice)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes decoding images/audio ahead of the model (default: auto)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (this process, default) or ray (Ray Data actor pools; "
                   "pip install 'mmrec[ray]'; --out becomes Parquet shards)")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to join with --engine ray (default: start a local Ray)")
    p.add_argument("--ray-workers", type=int, default=None,
                   help="actors per modality with --engine ray (default: 2)")
    p.set_defaults(func=cmd_encode)


def add_index_parser(sub: Any) -> None:
    """``mmrec index``."""
    p = sub.add_parser("index", help="build a FAISS index over encoded items",
                       description="Build a FAISS inner-product index over the fused item vectors.")
    p.add_argument("items", help="item-vectors folder written by `mmrec encode`")
    p.add_argument("--out", required=True, help="output folder for the index")
    p.add_argument("--spec", default=None,
                   help="FAISS factory string, e.g. Flat, HNSW32, IVF1024,Flat (default: by size)")
    p.add_argument("--seed", type=int, default=0, help="k-means seed (default: 0)")
    p.add_argument("--target-recall", type=float, default=None,
                   help="tune nprobe/efSearch to the cheapest setting reaching this recall@k")
    p.add_argument("--k", type=int, default=10, help="k of the recall target (default: 10)")
    p.add_argument("--memory-gb", type=float, default=None,
                   help="memory budget that steers the automatic index choice (default: half of RAM)")
    p.add_argument("--catalog", default=None,
                   help="catalog file whose categorical/numeric columns become filterable attributes")
    p.add_argument("--shards", type=int, default=None,
                   help="split the items into this many shards, one index each, built one at a time")
    p.set_defaults(func=cmd_index)


def add_recommend_parser(sub: Any) -> None:
    """``mmrec recommend``."""
    p = sub.add_parser("recommend", help="top-k items per user from their history",
                       description="Recommend unseen items to users from their behaviour log.")
    p.add_argument("--index", default=None,
                   help="index folder written by `mmrec index` (also with --shards: a sharded index); "
                   "without it, --model ranks its own items exactly")
    p.add_argument("--shard-at-a-time", action="store_true",
                   help="with a sharded index: load one shard at a time (memory of one shard) instead "
                   "of keeping all shards loaded")
    p.add_argument("--events", required=True, help="behaviour log (user, item, timestamp, event, value)")
    p.add_argument("--users", nargs="+", default=None, help="user ids (default: every user in the log)")
    p.add_argument("--k", type=int, default=10, help="recommendations per user (default: 10)")
    p.add_argument("--include-seen", action="store_true", help="do not exclude seen items")
    p.add_argument("--model", default=None,
                   help="a saved model folder, any kind (`mmrec train`'s two-tower, or model.save() of "
                   "EASE, ItemKNN, LightGCN …). With --index (two-tower: built from the run's "
                   "item_vectors) its user tower makes the user vectors; without, the model scores "
                   "all its items")
    p.add_argument("--explain", action="store_true",
                   help="with --model: print each recommendation's modality shares and the history "
                   "items that drove it")
    p.add_argument("--items", default=None,
                   help="with --explain: the run's item_vectors folder (per-modality content)")
    p.add_argument("--half-life", type=float, default=None,
                   help="recency decay half-life in seconds (default: none)")
    p.add_argument("--catalog", default=None, help="catalog file, to print titles")
    p.add_argument("--where", nargs="+", default=None, metavar="COLUMN=VALUE[,VALUE]",
                   help="keep only items whose attribute matches (index built with --catalog)")
    p.add_argument("--out", default=None,
                   help="write recommendations to this file (.csv; with --batch-size also .parquet)")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="recommend N users at a time and stream them to --out: memory stays that of "
                   "one batch, for millions of users (default: all users at once)")
    p.set_defaults(func=cmd_recommend)


def add_train_parser(sub: Any) -> None:
    """``mmrec train``."""
    p = sub.add_parser("train", help="train a two-tower model (learned fusion + user tower)",
                       description="Split a behaviour log by time, train a TwoTower model with "
                       "early stopping and checkpoints, report full-ranking test metrics, save the "
                       "model and its learned item vectors (ready for `mmrec index`).")
    _add_job_options(p, "docs/training.md")
    p.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.set_defaults(func=cmd_train)


def add_evaluate_parser(sub: Any) -> None:
    """``mmrec evaluate``."""
    p = sub.add_parser("evaluate", help="compare models and baselines on one split (full ranking)",
                       description="Fit every model of a config (baselines, two-tower models) on the "
                       "same split and score them the same way: full ranking over the whole catalog, "
                       "seen items masked. Prints one table; writes CSV, JSON, markdown and a plot.")
    _add_job_options(p, "docs/evaluation.md")
    p.add_argument("--sampled", type=int, default=None,
                   help="rank targets among N sampled items instead of the whole catalog (labelled)")
    p.add_argument("--diversify", default=None, metavar="L1,L2,...",
                   help="re-rank every model's lists for variety at each λ in [0, 1] (e.g. "
                   "0,0.1,0.2,0.3,0.5): one row per λ with accuracy and beyond-accuracy metrics, and an "
                   "accuracy–diversity plot (tradeoff.png)")
    p.add_argument("--rerank", choices=["mmr", "dpp", "exposure"], default=None,
                   help="re-ranker for --diversify (default: mmr)")
    p.set_defaults(func=cmd_evaluate)


def add_encoders_parser(sub: Any) -> None:
    """``mmrec encoders``."""
    p = sub.add_parser("encoders", help="list encoder presets",
                       description="List the encoder presets mmrec knows.")
    p.add_argument("--modality", choices=["text", "image", "audio"], default=None)
    p.set_defaults(func=cmd_encoders)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmrec", description="Multimodal recommendation: encode items, index them, recommend.")
    parser.add_argument("--version", action="version", version=f"mmrec {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_demo_parser(sub)
    add_encode_parser(sub)
    add_index_parser(sub)
    add_recommend_parser(sub)
    add_train_parser(sub)
    add_evaluate_parser(sub)
    add_serve_parser(sub)
    add_forget_parser(sub)
    add_encoders_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmrec`` command."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mmrec").setLevel(level)
    logging.getLogger("faiss").setLevel(max(level, logging.WARNING))  # its loader chatters at INFO
    try:
        return args.func(args)
    except MmrecError as exc:
        print(f"mmrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {args.command}; re-run the same command to resume from "
              f"{_resume_point(args)}.", file=sys.stderr)
        return 130


def _resume_point(args: argparse.Namespace) -> str:
    """Where a re-run of an interrupted command picks up (its committed state; never a half-written
    artifact, since every save is atomic)."""
    try:
        if args.command == "encode" and args.cache:
            from mmrec.encode.cache import EncodeCache

            with EncodeCache(args.cache) as cache:
                return (f"the encode cache {args.cache} ({len(cache)} vectors committed; only the rest "
                        "is encoded)")
        if args.command == "encode":
            return "the start (pass --cache DIR to keep finished batches across runs)"
        if args.command == "train":
            return _train_resume_point(args)
    except (MmrecError, OSError, ValueError) as exc:
        return f"the last committed state (it could not be inspected: {exc})"
    return "the start (finished outputs were saved atomically and are complete)"


def _train_resume_point(args: argparse.Namespace) -> str:
    import json

    from mmrec.jobs.train import load_train_job
    from mmrec.utils.io import MANIFEST

    folder = Path(load_train_job(args.config, out=args.out).out) / "checkpoint"
    if not (folder / MANIFEST).is_file():
        return f"the first epoch (no checkpoint in {folder} yet)"
    epochs = len(json.loads((folder / "progress.json").read_text("utf-8")).get("epochs", []))
    return f"the checkpoint after epoch {epochs} in {folder}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
