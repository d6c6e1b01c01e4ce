"""E-commerce: a shop of 950 real product "stamps" (photos, descriptions, sounds) and simulated shoppers.

    python examples/ecommerce/run.py --setup      # first run: fetches the Debian package (161 MB)
    python examples/ecommerce/run.py              # afterwards

Catalog: the Tux Paint stamps collection (Debian ``tuxpaint-stamps-default``, GPL-2): each stamp is
a product with a one-line description, a picture (PNG; SVG-only stamps have no picture here) and,
for about 135, a sound effect, in 16 departments (animals, food, vehicles, clothes, ...).
Behaviour: **simulated** — shoppers prefer one to three departments, browse in sessions (view,
add to cart, purchase) and favour popular products; see ``mmrec.datasets.simulate``. Text:
MiniLM; images: EfficientNet-Lite0; audio: MFCC statistics.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import compare_and_recommend, fetch_debian, frame_catalog, parser, require  # noqa: E402

from mmrec.datasets.simulate import BehaviourConfig, simulate_behaviour  # noqa: E402

PACKAGE = "tuxpaint-stamps-default"
STAMPS = Path("usr/share/tuxpaint/stamps")


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


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    if args.setup:
        fetch_debian(PACKAGE, args.cache)
    root = require(args.cache / PACKAGE / STAMPS, f"apt-get download {PACKAGE}")
    frame = catalog_frame(root)
    print(f"{len(frame)} products in {frame['department'].nunique()} departments; "
          f"{frame['image'].notna().sum()} with a picture, {frame['audio'].notna().sum()} with a sound")
    catalog = frame_catalog(frame, id="item_id", text=("name", "description"), image="image",
                            audio="audio", categorical=("department",))
    behaviour = BehaviourConfig(n_users=args.users, seed=args.seed, sessions=(2, 5), session_length=(3, 8),
                                events={"view": (0.75, 1, 1), "add_to_cart": (0.17, 1, 1),
                                        "purchase": (0.08, 1, 1)})
    events = simulate_behaviour(frame["item_id"], frame["department"], behaviour)
    compare_and_recommend(catalog, events, args=args, tower="gru",
                          encoders={"text": "text-minilm-l6", "image": "image-efficientnet-lite0",
                                    "audio": "audio-mfcc-stats"})


if __name__ == "__main__":
    main()
