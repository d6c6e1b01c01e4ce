"""The library path at production sizes: seconds, throughput and peak memory per stage, and how they grow.

    python benchmarks/scale.py --sizes S            # 10k items, 20k users, 500k events
    python benchmarks/scale.py --sizes S,M,L --train-budget 1800

Each size runs in a child process of its own (a fresh heap), on a world from
:func:`mmrec.datasets.simulate.simulate_world` (seeded: topic titles, topic-loyal users with
heavy-tailed history lengths, Zipf popularity inside topics). The stages are what a user runs:

1. ``Interactions.from_frame`` on the generated log (bytes per event of the result);
2. ``encode_items`` with TF-IDF + SVD over the titles (``text-tfidf-svd``);
3. ``TwoTower(fusion="gated", user_tower="transformer", dim=64).fit(items, events, epochs=1)``
   (``--train-budget`` seconds caps the epoch count, never a started epoch; ``--length-buckets``
   sets ``TrainConfig.length_buckets``; the row says the epoch's targets/s and what the parts
   after training cost);
4. ``model.encode_items`` and ``model.encode_users`` for every user;
5. ``build_index(target_recall=0.95)``;
6. ``recommend_batches(index, events, model=model)`` for every user, consumed;
7. peer: ``implicit``'s ALS on the same events, fitted, and top-10 for every user (when installed).

Per stage: seconds, throughput in the stage's own unit (events, items or users per second) and the
peak RSS during the stage (the kernel's high-water mark, reset at the stage's start). With more than
one size, the growth exponent from each size to the next (``log(t2/t1) / log(n2/n1)`` in the
stage's unit; 1 = linear). The serving path at traffic is ``benchmarks/serve_load.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

SIZES = {  # items, users, events
    "XS": (2_500, 5_000, 125_000),
    "S": (10_000, 20_000, 500_000),
    "M": (100_000, 200_000, 5_000_000),
    "L": (1_000_000, 1_000_000, 20_000_000),
}
UNITS = {"from_frame": "events", "encode_items": "items", "fit": "events", "model.encode_items": "items",
         "model.encode_users": "users", "build_index": "items", "recommend_batches": "users",
         "implicit ALS fit": "events", "implicit ALS recommend": "users"}


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    """The kernel's peak RSS (VmHWM) back to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass


class PeakWatch(logging.Handler):
    """Where a stage's memory peaks: samples the RSS every half second and keeps the highest, with
    the seconds into the stage and the last ``mmrec`` log line before it (e.g. which part of
    ``fit`` was running)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.reset()
        logging.getLogger("mmrec").setLevel(logging.INFO)
        logging.getLogger("mmrec").addHandler(self)
        threading.Thread(target=self._sample, daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        self.last_log = f"{record.name}: {record.getMessage()}"[:160]

    def reset(self) -> None:
        self.started, self.peak, self.at, self.last_log = time.perf_counter(), 0, (0.0, ""), ""

    def _sample(self) -> None:
        while True:
            rss = _status_kib("VmRSS")
            if rss > self.peak:
                self.peak, self.at = rss, (round(time.perf_counter() - self.started, 1), self.last_log)
            time.sleep(0.5)


class Stages:
    """Times each stage and records its peak RSS (and, sampled, when and after which log line)."""

    def __init__(self, sizes: dict[str, int],
                 save: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.sizes, self.rows, self.save = sizes, [], save
        self.watch = PeakWatch()

    @contextmanager
    def stage(self, name: str, **extra: Any):
        gc.collect()
        _reset_peak()
        self.watch.reset()
        started = time.perf_counter()
        row: dict[str, Any] = {"stage": name, **extra}  # what the caller notes, also after the block
        yield row
        seconds = time.perf_counter() - started
        row["peak_sampled"] = {"gb": round(self.watch.peak / 2**20, 2), "seconds_in": self.watch.at[0],
                               "after_log": self.watch.at[1]}
        count = row.pop("count", None) or self.sizes[UNITS[name]]  # a stage run on a sample says so
        row.update(seconds=seconds, unit=UNITS[name], count=count,
                   per_s=count / seconds if seconds else math.inf, peak_rss_gb=_status_kib("VmHWM") / 2**20)
        self.rows.append(row)
        if self.save:  # after every stage: a run stopped part-way keeps the stages it finished
            self.save(self.rows)
        print(f"  {name}: {seconds:.1f} s, {count / seconds:,.0f} {UNITS[name]}/s, "
              f"peak RSS {row['peak_rss_gb']:.2f} GB", flush=True)


def run_size(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every stage at one size, in this process."""
    import torch

    import mmrec
    from mmrec.datasets.simulate import simulate_world
    from mmrec.ranking.batch import EventsByUser, recommend_batches

    torch.set_num_threads(args.threads)
    n_items, n_users, n_events = (int(round(v * args.scale)) for v in SIZES[name])
    started = time.perf_counter()
    world = simulate_world(n_items, n_users, n_events, seed=args.seed)
    print(f"{name}: {n_items:,} items, {n_users:,} users, {n_events:,} events "
          f"(generated in {time.perf_counter() - started:.1f} s)", flush=True)
    frame, catalog = world.events.frame, world.catalog
    del world
    result = {"size": name, "items": n_items, "users": n_users, "events": n_events, "stages": []}
    meter = Stages({"events": n_events, "items": n_items, "users": n_users},
                   save=lambda rows: _write_json(args.json, {**result, "stages": rows, "partial": True})
                   if args.json else None)
    with meter.stage("from_frame") as note:
        events = mmrec.Interactions.from_frame(frame)
    note["bytes_per_event"] = round(events.nbytes / len(events), 1)  # codes + distinct strings once
    del frame
    with meter.stage("encode_items"):
        items = mmrec.encode_items(catalog, encoders={"text": "text-tfidf-svd", "image": None, "audio": None},
                                   show_progress=False)
    model = mmrec.TwoTower(fusion="gated", user_tower="transformer", dim=64, seed=args.seed,
                           time_budget_s=args.train_budget, length_buckets=args.length_buckets)
    with meter.stage("fit") as note:
        model.fit(items, events, epochs=args.epochs, show_progress=False)
    epochs = model.history_.epochs
    note.update(epochs=len(epochs), epoch_targets_per_s=[round(e["targets_per_s"]) for e in epochs],
                epoch_seconds=[round(e["seconds"], 1) for e in epochs],
                after_training_s=round(meter.rows[-1]["seconds"] - sum(e["seconds"] for e in epochs), 1),
                prior=model.prior_ is not None, blend=model.blend_ is not None)
    print(f"    epochs {note['epochs']}, targets/s {note['epoch_targets_per_s']}, "
          f"everything but the epochs {note['after_training_s']} s", flush=True)
    with meter.stage("model.encode_items"):
        vectors = model.encode_items(items)
    with meter.stage("model.encode_users"):
        model.encode_users(events)
    with meter.stage("build_index") as note:
        index = mmrec.build_index(vectors, target_recall=0.95)
    note["spec"] = getattr(index, "spec", None)
    note["candidates"] = [f"{t['spec']}: {t['build_seconds']:.1f} s build, {t['status']}"
                          for t in index.params.get("candidates", [])]
    with meter.stage("recommend_batches") as note:
        grouped = EventsByUser.from_interactions(index, events)
        rows = sum(len(batch) for batch in recommend_batches(index, grouped, model=model, k=10))
    note["rows"] = rows
    _implicit_rows(meter, events, args)
    return {**result, "stages": meter.rows}


def _write_json(path: str | Path, payload: Any) -> None:
    """``payload`` to ``path`` atomically (a reader never sees half a file)."""
    path = Path(path)
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(payload))
    partial.replace(path)


def _implicit_rows(meter: Stages, events: Any, args: argparse.Namespace) -> None:
    """The peer a user at this size would otherwise pick: implicit's ALS on the same events."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:
        print("  implicit is not installed (pip install implicit): no peer row", flush=True)
        return
    from scipy.sparse import csr_matrix

    users, user_ids = events.codes("user")
    items, item_ids = events.codes("item")
    matrix = csr_matrix((np.ones(len(events), np.float32), (users, items)),
                        shape=(len(user_ids), len(item_ids)))
    matrix.sum_duplicates()
    als = AlternatingLeastSquares(factors=64, iterations=args.als_iterations, random_state=args.seed,
                                  num_threads=args.threads)
    with meter.stage("implicit ALS fit") as note:
        als.fit(matrix, show_progress=False)
    note["iterations"] = args.als_iterations
    sampled = matrix.shape[0] if args.peer_users is None else min(args.peer_users, matrix.shape[0])
    with meter.stage("implicit ALS recommend", count=sampled) as note:
        for start in range(0, sampled, 10_000):
            rows = np.arange(start, min(start + 10_000, sampled))
            als.recommend(rows, matrix[rows], N=10, filter_already_liked_items=True)
    if sampled < matrix.shape[0]:
        note["sampled_users"] = sampled


def _whole(result: dict[str, Any], row: dict[str, Any]) -> tuple[float, int]:
    """A stage's seconds and size for the whole of its unit at that size (a stage timed on a
    sample, e.g. the peer's top-10 for N users, scaled up: seconds × size / sample)."""
    size = int(result[row["unit"]])
    return row["seconds"] * size / row["count"], size


def _exponents(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Growth exponent per stage between consecutive sizes (of :func:`_whole` seconds)."""
    out = []
    for small, large in zip(results, results[1:], strict=False):
        by_stage = {row["stage"]: row for row in small["stages"]}
        for row in large["stages"]:
            before = by_stage.get(row["stage"])
            if not before or before["seconds"] <= 0:
                continue
            (t_small, n_small), (t_large, n_large) = _whole(small, before), _whole(large, row)
            if n_large != n_small:
                out.append({"stage": row["stage"], "from": small["size"], "to": large["size"],
                            "exponent": math.log(t_large / t_small) / math.log(n_large / n_small)})
    return out


def _table(results: list[dict[str, Any]], exponents: list[dict[str, Any]]) -> str:
    sizes = [r["size"] for r in results]
    lines = ["| stage | unit | " + " | ".join(f"{s}: s / per s / peak GB" for s in sizes) + " | exponent |",
             "|---|---|" + "---:|" * (len(sizes) + 1)]
    stages = list(dict.fromkeys(row["stage"] for r in results for row in r["stages"]))
    for stage in stages:
        cells, unit = [], ""
        for r in results:
            row = next((x for x in r["stages"] if x["stage"] == stage), None)
            unit = row["unit"] if row else unit
            cells.append(f"{row['seconds']:.1f} / {row['per_s']:,.0f} / {row['peak_rss_gb']:.2f}"
                         if row else "—")
        grow = [f"{e['exponent']:.2f} ({e['from']}→{e['to']})" for e in exponents if e["stage"] == stage]
        lines.append(f"| {stage} | {unit} | " + " | ".join(cells) + f" | {', '.join(grow) or '—'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="S", help=f"comma-separated, of {list(SIZES)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size (quick runs)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-budget", type=float, default=None,
                        help="seconds (TrainConfig.time_budget_s)")
    parser.add_argument("--length-buckets", type=int, default=0,
                        help="TrainConfig.length_buckets (0: the default full-width batches)")
    parser.add_argument("--als-iterations", type=int, default=15)
    parser.add_argument("--peer-users", type=int, default=None,
                        help="ALS top-10 for the first N users only (users/s is the measure; default all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a child: this size, JSON to --json
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None,
                        help="results JSON (default benchmarks/results/scale-<sizes>.json)")
    parser.add_argument("--merge", default=None,
                        help="comma-separated results JSONs of earlier runs: their sizes join the table "
                             "and the exponents (sizes run at different times); with --sizes '' nothing runs")
    parser.add_argument("--plot", default=None, help="a log-log PNG of seconds against size per stage")
    args = parser.parse_args()
    if args.one:
        _write_json(args.json, run_size(args.one, args))
        return
    results = [r for path in (args.merge.split(",") if args.merge else [])
               for r in json.loads(Path(path).read_text())["results"]]
    for name in filter(None, args.sizes.split(",")):
        child_json = Path(tempfile.gettempdir()) / f"mmrec-scale-{name}-{os.getpid()}.json"
        print(f"size {name}: stages are saved to {child_json} as they finish", flush=True)
        command = [sys.executable, __file__, "--one", name, "--json", str(child_json),
                   *(a for a in sys.argv[1:] if not a.startswith("--sizes") and a != args.sizes)]
        finished = subprocess.run(command, check=False)
        if not child_json.exists():
            raise SystemExit(f"size {name}: the child stopped (exit {finished.returncode}) before any stage")
        results.append(json.loads(child_json.read_text()))
        if finished.returncode:
            print(f"size {name}: the child stopped (exit {finished.returncode}); "
                  f"the {len(results[-1]['stages'])} stages it finished are kept", flush=True)
        child_json.unlink()
    results.sort(key=lambda r: r["events"])
    exponents = _exponents(results)
    print(_table(results, exponents))
    out = Path(args.out or f"benchmarks/results/scale-{'-'.join(r['size'] for r in results)}.json")
    out.write_text(json.dumps({"argv": sys.argv[1:], "results": results, "exponents": exponents}, indent=1))
    print(f"saved {out}")
    if args.plot:
        _plot(results, Path(args.plot))
        print(f"saved {args.plot}")


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    """Seconds per stage against its size in its own unit, log-log, one line per stage across the
    sizes (:func:`_whole`, as for the exponents); a dotted
    line of slope 1 from each stage's smallest point shows linear growth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5.5))
    stages = list(dict.fromkeys(row["stage"] for result in results for row in result["stages"]))
    for number, stage in enumerate(stages):
        points = sorted(_whole(result, row)[::-1]
                        for result in results for row in result["stages"] if row["stage"] == stage)
        if len(points) < 2:
            continue
        sizes, seconds = zip(*points, strict=True)
        line, = axis.plot(sizes, seconds, "o-" if "implicit" not in stage else "s--", label=stage,
                          color=plt.cm.tab10(number % 10))
        axis.plot([sizes[0], sizes[-1]], [seconds[0], seconds[0] * sizes[-1] / sizes[0]], ":",
                  color=line.get_color(), alpha=0.5)
    axis.set(xscale="log", yscale="log", xlabel="size in the stage's unit (events, items or users)",
             ylabel="seconds", title="mmrec at S, M and L (dotted: linear growth from S)")
    axis.legend(fontsize=8)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
