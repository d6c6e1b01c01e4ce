"""Write a registered dataset as files the CLI reads: ``catalog.csv`` and ``events.csv``.

    python -m mmrec.datasets ml-1m --out data/ml-1m
    mmrec encode data/ml-1m/catalog.csv --text text-minilm-l6 --out run/vectors
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmrec.datasets import DATASETS, load_dataset
from mmrec.utils.io import atomic_directory


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mmrec.datasets", description=__doc__.split("\n")[0])
    parser.add_argument("name", help=f"dataset ({', '.join(DATASETS.names())})")
    parser.add_argument("--out", required=True, help="folder for catalog.csv and events.csv")
    args = parser.parse_args(argv)
    data = load_dataset(args.name)
    with atomic_directory(Path(args.out)) as folder:
        data.catalog.frame.to_csv(folder / "catalog.csv", index=False)
        data.events.frame.to_csv(folder / "events.csv", index=False)
    print(f"{args.name}: {len(data.catalog.frame):,} items, {len(data.events):,} events -> {args.out}")


if __name__ == "__main__":
    main()
