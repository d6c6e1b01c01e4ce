"""Peer libraries wrapped in the harness contract (``fit`` / ``score_items`` / ``item_ids_``), for
the benchmarks only — never a dependency of mmrec.

**LightFM** (hybrid matrix factorisation, WARP): ``pip install --no-build-isolation lightfm``. On this
machine's setuptools that sdist's ``setup.py`` fails (it sets ``__builtins__.__LIGHTFM_SETUP__``);
install it from the sdist with that line replaced by ``version = "1.17"`` (what the benchmarks here
used: LightFM 1.17).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

WORD = re.compile(r"[a-z0-9']+")


def _vocabulary(rows: list[list[str]], min_count: int) -> pd.Index:
    counts = pd.Series([t for row in rows for t in set(row)], dtype=object).value_counts()
    return pd.Index(sorted(counts.index[counts >= min_count]), dtype=object)


def _one_hot(rows: list[list[str]], vocabulary: pd.Index) -> sp.csr_matrix:
    data, indices, indptr = [], [], [0]
    for row in rows:
        hits = np.unique(vocabulary.get_indexer(row))
        hits = hits[hits >= 0]
        indices.extend(hits.tolist())
        data.extend([1.0] * len(hits))
        indptr.append(len(indices))
    return sp.csr_matrix((np.asarray(data, np.float32), indices, indptr), shape=(len(rows), len(vocabulary)))


def _normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows summing to 1 (LightFM's recommended feature scaling)."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1e-12)) @ matrix


class LightFMPeer:
    """LightFM with item features (genre tokens + title words of ``catalog``, plus an identity
    feature for items with training events: cold items are placed by their features alone) and,
    with ``user_features``, user attribute tokens (plus identity for training users: a new user is
    their attributes). Scores every item of the catalog."""

    def __init__(self, catalog, *, epochs: int = 30, no_components: int = 64, loss: str = "warp",
                 user_features: bool = False, threads: int = 2, seed: int = 0,
                 text_columns: Sequence[str] = ("genres", "title")) -> None:
        self.catalog, self.epochs, self.no_components, self.loss = catalog, epochs, no_components, loss
        self.use_user_features, self.threads, self.seed = user_features, threads, seed
        self.text_columns = text_columns

    def fit(self, items, events, *, valid=None, users: pd.DataFrame | None = None) -> LightFMPeer:
        from lightfm import LightFM

        frame = self.catalog.frame.set_index(self.catalog.schema.id)
        frame.index = frame.index.map(str)
        self.item_ids_ = pd.Index(np.asarray(items.ids if items is not None else frame.index, dtype=object))
        log = events.frame
        trained_items = pd.Index(pd.unique(log["item"].to_numpy(dtype=object)))
        self.user_ids = pd.Index(pd.unique(log["user"].to_numpy(dtype=object)))
        words = [[f"{c}:{w}" for c in self.text_columns for w in WORD.findall(str(row.get(c, "")).lower())]
                 for row in frame.reindex(self.item_ids_).to_dict("records")]
        content = _one_hot(words, _vocabulary(words, 2))
        identity = sp.diags(self.item_ids_.isin(trained_items).astype(np.float32)).tocsr()
        self.item_features = _normalised(sp.hstack([identity, content]).tocsr())
        self.attributes = None
        if self.use_user_features and users is not None:
            table = users.set_index("user") if "user" in users.columns else users
            table.index = table.index.map(str)
            self.attributes = table
            tokens = self._user_tokens(self.user_ids)
            self.user_vocabulary = _vocabulary(tokens, 1)
        rows = self.user_ids.get_indexer(log["user"].to_numpy(dtype=object))
        cols = self.item_ids_.get_indexer(log["item"].to_numpy(dtype=object))
        keep = cols >= 0
        matrix = sp.coo_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], cols[keep])),
                               shape=(len(self.user_ids), len(self.item_ids_))).tocsr()
        matrix.data[:] = 1.0
        self.model = LightFM(no_components=self.no_components, loss=self.loss, random_state=self.seed)
        self.model.fit(matrix, user_features=self._user_features(self.user_ids),
                       item_features=self.item_features, epochs=self.epochs, num_threads=self.threads)
        return self

    def _user_tokens(self, users: pd.Index) -> list[list[str]]:
        if self.attributes is None:
            return [[] for _ in users]
        rows = self.attributes.reindex(users)
        return [[f"{c}={v}" for c, v in row.items() if pd.notna(v)] for row in rows.to_dict("records")]

    def _user_features(self, users: pd.Index) -> sp.csr_matrix | None:
        """Identity (training users) + attribute tokens, rows summing to 1; ``None`` without
        attributes (LightFM's default: identity only)."""
        if self.attributes is None:
            return None
        rows = self.user_ids.get_indexer(users)
        identity = sp.csr_matrix((np.ones(int((rows >= 0).sum()), np.float32),
                                  (np.flatnonzero(rows >= 0), rows[rows >= 0])),
                                 shape=(len(users), len(self.user_ids)))
        attributes = _one_hot(self._user_tokens(users), self.user_vocabulary)
        return _normalised(sp.hstack([identity, attributes]).tocsr())

    def score_items(self, events, *, users: Sequence[str] | None = None) -> np.ndarray:
        users = pd.Index(np.asarray(list(users) if users is not None else events.users, dtype=object))
        item_bias, item_vectors = self.model.get_item_representations(self.item_features)
        features = self._user_features(users)
        if features is None:  # identity only: new users get the item biases (a popularity)
            _, user_vectors = self.model.get_user_representations()
            rows = self.user_ids.get_indexer(users)
            vectors = np.where((rows >= 0)[:, None], user_vectors[np.maximum(rows, 0)], 0.0)
        else:
            _, vectors = self.model.get_user_representations(features)
        return (vectors @ item_vectors.T + item_bias[None, :]).astype(np.float32)
