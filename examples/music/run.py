"""Music: 143 real tracks and sound effects from two game soundtracks, and simulated listeners.

    python examples/music/run.py --setup      # first run: fetches two Debian packages (217 MB)
    python examples/music/run.py              # afterwards
    python examples/music/run.py --quick      # 16 tracks an album, 150 listeners: under two minutes

Catalog: the Battle for Wesnoth soundtrack (Debian ``wesnoth-1.16-music``, 41 tracks, GPL-2) and the
HyperRogue soundtrack and game sounds (``hyperrogue-music``, 17 tracks + 85 effects, CC-BY-SA).
Each item has its title (from the file name), its album and its audio; no cover art ships.
Behaviour: **simulated** — each item's style is its k-means cluster (within its album) over MFCC
statistics of the audio; listeners like one to three styles and play in sessions (play with the
share of the track played, or like). The models hear the audio through mmrec's sound
classifier embedding, not the MFCCs the styles came from.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import (  # noqa: E402
    compare_and_recommend,
    fetch_debian,
    frame_catalog,
    parser,
    require,
    shrink,
)

import mmrec  # noqa: E402
from mmrec.datasets.simulate import BehaviourConfig, simulate_behaviour  # noqa: E402

ALBUMS = {  # album: (Debian package, folder inside it)
    "Battle for Wesnoth soundtrack": ("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music"),
    "HyperRogue soundtrack": ("hyperrogue-music", "usr/share/hyperrogue/music"),
    "HyperRogue sound effects": ("hyperrogue-music", "usr/share/hyperrogue/sounds"),
}


def catalog_frame(cache: Path) -> pd.DataFrame:
    """One row per track: id, title, album, audio file."""
    rows = []
    for album, (package, folder) in ALBUMS.items():
        root = require(cache / package / folder, f"apt-get download {package}")
        for path in sorted(root.glob("*.ogg")):
            title = path.stem.removeprefix("hr3-").removeprefix("hr-").replace("_", " ").replace("-", " ")
            rows.append({"item_id": f"{package}/{path.stem}", "title": title, "album": album,
                         "audio": str(path)})
    return pd.DataFrame(rows)


def styles(frame: pd.DataFrame, per_album: int, seed: int) -> np.ndarray:
    """k-means clusters of MFCC statistics inside each album: the listeners' styles."""
    from sklearn.cluster import KMeans

    catalog = frame_catalog(frame, id="item_id", audio="audio")
    mfcc = mmrec.encode_items(catalog, encoders={"text": None, "image": None, "audio": "audio-mfcc-stats"},
                              show_progress=False).vectors["audio"]
    labels = np.empty(len(frame), dtype=object)
    for album, rows in frame.groupby("album").indices.items():
        k = min(per_album, len(rows))
        clusters = KMeans(k, n_init=10, random_state=seed).fit_predict(mfcc[rows])
        labels[rows] = [f"{album} / style {c}" for c in clusters]
    return labels


def main() -> None:
    args = shrink(parser(__doc__.split("\n")[0]).parse_args())
    if args.setup:
        for package in sorted({package for package, _ in ALBUMS.values()}):
            fetch_debian(package, args.cache)
    frame = catalog_frame(args.cache)
    if args.quick:  # a seeded sample of each album
        frame = frame.sample(frac=1.0, random_state=args.seed).groupby("album").head(16).sort_index()
    frame["style"] = styles(frame, 3, args.seed)
    print(f"{len(frame)} items in {frame['album'].nunique()} albums, {frame['style'].nunique()} styles")
    catalog = frame_catalog(frame.drop(columns="style"), id="item_id", text=("title", "album"),
                            audio="audio", categorical=("album",))
    behaviour = BehaviourConfig(n_users=args.users, seed=args.seed, sessions=(2, 6), session_length=(3, 8),
                                interests=(1, 3), events={"play": (0.85, 0.3, 1.0), "like": (0.15, 1, 1)})
    events = simulate_behaviour(frame["item_id"], frame["style"], behaviour)
    compare_and_recommend(catalog, events, args=args, tower="gru",
                          encoders={"text": args.text, "audio": args.audio or "audio-sound-classifier"})


if __name__ == "__main__":
    main()
