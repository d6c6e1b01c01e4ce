"""Two-tower training throughput: per device (CPU, CUDA) and per number of data-parallel processes.

Every configuration runs the real ``mmrec train`` command, under ``torchrun --standalone
--nproc_per_node N`` (N = 1 included, so every row pays the same start-up), on the same log and the
same *global* batch, and reads the epoch time that ``metrics.json`` records (training steps only,
not validation or the final test). Prints seconds per epoch, targets per second, seconds per step
and the speed-up over the first row.

    python benchmarks/train_throughput.py --dataset ml-1m --layouts 1x2,2x1 --epochs 1
    python benchmarks/train_throughput.py --dataset ml-1m --devices cpu,cuda --layouts 1x16

A layout ``PxT`` is P processes of T torch threads each (gloo on CPU; nccl on CUDA, one GPU per
process, so P can not exceed the GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mmrec.datasets import load_movielens


def _config(folder: Path, events_csv: Path, args: argparse.Namespace, device: str, name: str) -> Path:
    model = {"user_tower": args.tower, "fusion": "gated", "dim": args.dim, "max_len": args.max_len,
             "n_layers": 2, "dropout": 0.1}
    training = {"epochs": args.epochs, "batch_size": args.batch_size, "device": device,
                "max_valid_users": 500, "patience": args.epochs, "loss": "sampled"}
    config = folder / f"{name}.yaml"
    config.write_text(f"events: {events_csv}\nout: {name}\nsplit: {{kind: leave_last_out}}\n"
                      f"model: {json.dumps(model)}\ntraining: {json.dumps(training)}\nks: [20]\n")
    return config


def _run(config: Path, processes: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", "-m", "mmrec.cli", "-q", "train", "--config", str(config)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    metrics = json.loads((config.parent / config.stem / "metrics.json").read_text())
    return {**metrics, "wall": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-1m", choices=["ml-1m", "ml-100k"])
    parser.add_argument("--movielens-path", default=None, help="folder with <name>.inter and <name>.item")
    parser.add_argument("--devices", default="cpu", help="comma list: cpu, cuda")
    parser.add_argument("--layouts", default="1x2,2x1", help="comma list of PROCESSESxTHREADS")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (history windows)")
    parser.add_argument("--max-len", type=int, default=100)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--tower", default="transformer")
    args = parser.parse_args()

    events = load_movielens(args.dataset, path=args.movielens_path).events
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        events_csv = folder / "events.csv"
        events.frame.to_csv(events_csv, index=False)
        for device in args.devices.split(","):
            for layout in args.layouts.split(","):
                processes, threads = (int(x) for x in layout.split("x"))
                name = f"{device}-{processes}x{threads}"
                result = _run(_config(folder, events_csv, args, device, name), processes, threads)
                epochs = result["training"]["epochs"]
                seconds = sum(e["seconds"] for e in epochs) / len(epochs)
                targets = sum(e["targets_per_s"] * e["seconds"] for e in epochs) / len(epochs)
                rows.append({"device": device, "processes": processes, "threads": threads,
                             "s_per_epoch": seconds, "targets_per_s": targets / seconds,
                             "loss": epochs[-1]["loss"], "recall@20": result["test"].get("recall@20"),
                             "wall": result["wall"]})
    first = rows[0]["s_per_epoch"]
    print(f"\n{args.dataset}: {len(events):,} events, global batch {args.batch_size} windows, "
          f"max_len {args.max_len}, {args.tower} tower, dim {args.dim}, {args.epochs} epoch(s)")
    print("| device | processes x threads | s / epoch | targets / s | speed-up | last loss | "
          "test Recall@20 | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['device']} | {row['processes']} x {row['threads']} | {row['s_per_epoch']:.1f} | "
              f"{row['targets_per_s']:,.0f} | {first / row['s_per_epoch']:.2f}x | {row['loss']:.4f} | "
              f"{row['recall@20']:.4f} | {row['wall']:.0f} |")


if __name__ == "__main__":
    main()
