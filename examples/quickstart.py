"""The README quickstart, runnable: generate the demo catalog, encode, index, recommend.

    python examples/quickstart.py [--out quickstart-run] [--items 240] [--users 120]
"""

from __future__ import annotations

import argparse
import logging

import mmrec
from mmrec.datasets.demo import make_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="quickstart-run")
    parser.add_argument("--items", type=int, default=240)
    parser.add_argument("--users", type=int, default=120)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    demo = make_demo(args.out, n_items=args.items, n_users=args.users)

    catalog = mmrec.Catalog.from_path(demo.catalog)       # schema inferred from column names
    events = mmrec.Interactions.from_path(demo.events)    # user, item, timestamp, event, value
    items = mmrec.encode_items(catalog)                   # text + image + audio vectors
    print(items.report)                                   # what was encoded, absent, failed
    index = mmrec.build_index(items)                      # exact Flat index at this size
    recs = mmrec.recommend(index, events, users=["user000", "user001"], k=5)
    print(recs.to_string(index=False))


if __name__ == "__main__":
    main()
