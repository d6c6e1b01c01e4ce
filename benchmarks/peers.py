"""Peer libraries wrapped in the harness contract (``fit`` / ``score_items`` / ``item_ids_``), and the
cold-item evaluation every row of the cold-start tables uses; for the benchmarks only — never a
dependency of mmrec.

**LightFM** (hybrid matrix factorisation, WARP): ``pip install --no-build-isolation lightfm``. On this
machine's setuptools that sdist's ``setup.py`` fails (it sets ``__builtins__.__LIGHTFM_SETUP__``);
install it from the sdist with that line replaced by ``version = "1.17"`` (what the benchmarks here
used: LightFM 1.17).

**Cold-item views** (:func:`cold_item_views`): for users with a cold target, Recall@k =
hits / min(|cold targets|, k), ranking only the cold items and ranking the whole catalog (history
masked), and the cold items' share of the whole-catalog top-k.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmrec.data.catalog import Catalog
from mmrec.data.interactions import Interactions
from mmrec.errors import ConfigError, SchemaError

__all__ = ["LightFMPeer", "cold_item_views", "items_per_user"]

WORD = re.compile(r"[a-z0-9']+")


def _vocabulary(rows: Iterable[Iterable[str]], min_count: int) -> pd.Index:
    """Tokens in at least ``min_count`` of ``rows``, sorted."""
    counts = pd.Series([t for row in rows for t in set(row)], dtype=object).value_counts()
    return pd.Index(sorted(counts.index[counts >= min_count]), dtype=object)


def _one_hot(rows: Sequence[Sequence[str]], vocabulary: pd.Index) -> sp.csr_matrix:
    """``(len(rows), len(vocabulary))`` float32 0/1; tokens outside the vocabulary are left out."""
    data: list[float] = []
    indices: list[int] = []
    indptr = [0]
    for row in rows:
        hits = np.unique(vocabulary.get_indexer(pd.Index(list(row), dtype=object)))
        hits = hits[hits >= 0]
        indices.extend(hits.tolist())
        data.extend([1.0] * len(hits))
        indptr.append(len(indices))
    return sp.csr_matrix((np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int32),
                          np.asarray(indptr, dtype=np.int64)), shape=(len(rows), len(vocabulary)))


def _identity(rows: np.ndarray, size: int) -> sp.csr_matrix:
    """One row per entry of ``rows``: a 1 in column ``rows[i]`` (none where it is -1)."""
    known = np.flatnonzero(rows >= 0)
    return sp.csr_matrix((np.ones(len(known), dtype=np.float32), (known, rows[known])),
                         shape=(len(rows), size))


def _normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows summing to 1 (LightFM's recommended feature scaling); empty rows stay empty."""
    sums = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(sums, 1e-12)) @ matrix, dtype=np.float32)


def _binary(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.coo_matrix:
    matrix = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=shape)
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix.tocoo()


class LightFMPeer:
    """LightFM (``loss``, ``no_components``, ``epochs``; ``random_state=seed``) on the binary matrix
    of every training event, scoring **every item of** ``catalog`` (``item_ids_``).

    - **Item features** (``item_features=True``, the standard hybrid setup): genre tokens and
      lower-cased title words of the catalog (features seen on at least ``min_count`` training
      items: an unseen one would only add its random start), plus an identity feature for each item
      with training events; a cold item is placed by its content features alone. Without item
      features: identity only, and a cold item has a zero vector and bias (it scores 0).
    - **User features** (``user_features=True`` and ``users=`` given to :meth:`fit`): an identity
      feature for each training user plus the ``user_columns`` attribute tokens (``age=25``).
      A new user (not in training) is represented by their attribute tokens alone: LightFM has no
      way to fold in the events a new user has at scoring time. Without user features a new user
      gets a zero vector, i.e. the item biases (a popularity).

    Each feature row sums to 1. ``threads=1`` keeps training deterministic (LightFM's parallel SGD
    is not).
    """

    def __init__(self, catalog: Catalog, *, epochs: int = 30, no_components: int = 64, loss: str = "warp",
                 item_features: bool = True, user_features: bool = False, threads: int = 1, seed: int = 0,
                 genre_column: str = "genres", title_column: str = "title", min_count: int = 2,
                 user_columns: Sequence[str] = ("age", "gender", "occupation")) -> None:
        if epochs < 1 or no_components < 1 or threads < 1 or min_count < 1:
            raise ConfigError(f"LightFMPeer: epochs, no_components, threads and min_count must be >= 1, "
                              f"got {epochs}, {no_components}, {threads}, {min_count}.")
        missing = [c for c in (genre_column, title_column) if item_features and c not in catalog.frame]
        if missing:
            raise SchemaError(f"LightFMPeer: the catalog has no column(s) {missing} (columns: "
                              f"{list(catalog.frame.columns)}); set genre_column= / title_column=.")
        self.catalog, self.epochs, self.no_components, self.loss = catalog, epochs, no_components, loss
        self.item_features, self.user_features, self.threads, self.seed = (item_features, user_features,
                                                                           threads, seed)
        self.genre_column, self.title_column, self.min_count = genre_column, title_column, min_count
        self.user_columns = tuple(user_columns)
        self.item_ids_: pd.Index | None = None

    # ----------------------------------------------------------------------------- items
    def _item_tokens(self, ids: pd.Index) -> list[list[str]]:
        frame = self.catalog.frame.set_index(self.catalog.schema.id)
        frame.index = frame.index.map(str)
        rows = frame.reindex(ids)
        genres = rows[self.genre_column].fillna("").astype(str)
        titles = rows[self.title_column].fillna("").astype(str)
        return [[f"genre={g}" for g in genre.split()] + [f"word={w}" for w in WORD.findall(title.lower())]
                for genre, title in zip(genres, titles, strict=True)]

    def _item_matrix(self, trained: np.ndarray) -> sp.csr_matrix:
        """Identity of the trained items (+ content tokens), one row per ``item_ids_``."""
        assert self.item_ids_ is not None
        n = len(self.item_ids_)
        identity = _identity(np.where(trained, np.arange(n), -1), n)
        if not self.item_features:
            return identity
        tokens = self._item_tokens(self.item_ids_)
        vocabulary = _vocabulary([row for row, warm in zip(tokens, trained, strict=True) if warm],
                                 self.min_count)
        return _normalised(sp.hstack([identity, _one_hot(tokens, vocabulary)]).tocsr())

    # ----------------------------------------------------------------------------- users
    def _user_tokens(self, users: pd.Index) -> list[list[str]]:
        rows = self.attributes_.reindex(users)
        return [[f"{c}={v}" for c, v in row.items() if pd.notna(v)] for row in rows.to_dict("records")]

    def _user_matrix(self, users: pd.Index) -> sp.csr_matrix | None:
        """Identity (training users) + attribute tokens, rows summing to 1; ``None`` without
        user features (LightFM's default: identity only)."""
        if self.attributes_ is None:
            return None
        identity = _identity(self.user_ids_.get_indexer(users), len(self.user_ids_))
        attributes = _one_hot(self._user_tokens(users), self.user_vocabulary_)
        return _normalised(sp.hstack([identity, attributes]).tocsr())

    def _attribute_table(self, users: pd.DataFrame | None) -> pd.DataFrame | None:
        if not self.user_features or users is None:
            return None
        table = users.set_index("user") if "user" in users.columns else users.copy()
        table.index = pd.Index([str(u) for u in table.index], dtype=object)
        absent = [c for c in self.user_columns if c not in table.columns]
        if absent:
            raise SchemaError(f"LightFMPeer: the users table has no column(s) {absent} (columns: "
                              f"{list(table.columns)}); set user_columns=.")
        return table[list(self.user_columns)]

    # ----------------------------------------------------------------------------- contract
    def fit(self, items: object, events: Interactions, *, valid: Interactions | None = None,
            users: pd.DataFrame | None = None) -> LightFMPeer:
        """Train on ``events`` (``items`` and ``valid`` are not used: features come from the
        catalog, and the number of epochs is fixed)."""
        from lightfm import LightFM

        log = events.frame
        catalog_ids = pd.Index(np.asarray(self.catalog.ids, dtype=object).astype(str))
        event_items = pd.unique(log["item"].to_numpy(dtype=object))
        self.item_ids_ = catalog_ids.append(pd.Index(event_items).difference(catalog_ids, sort=False))
        self.user_ids_ = pd.Index(pd.unique(log["user"].to_numpy(dtype=object)))
        columns = self.item_ids_.get_indexer(log["item"].to_numpy(dtype=object))
        rows = self.user_ids_.get_indexer(log["user"].to_numpy(dtype=object))
        self.item_matrix_ = self._item_matrix(self.item_ids_.isin(event_items))
        self.attributes_ = self._attribute_table(users)
        if self.attributes_ is not None:
            self.user_vocabulary_ = _vocabulary(self._user_tokens(self.user_ids_), 1)
        self.model_ = LightFM(no_components=self.no_components, loss=self.loss, random_state=self.seed)
        self.model_.fit(_binary(rows, columns, (len(self.user_ids_), len(self.item_ids_))),
                        user_features=self._user_matrix(self.user_ids_), item_features=self.item_matrix_,
                        epochs=self.epochs, num_threads=self.threads)
        return self

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        """``(len(users), len(item_ids_))`` float32: user vector · item vector + item bias (the user
        bias is left out: it does not change a user's ranking)."""
        if self.item_ids_ is None:
            raise ConfigError("LightFMPeer is not fitted; call fit(items, events) first.")
        ids = pd.Index(np.asarray([str(u) for u in (users if users is not None else events.users)],
                                  dtype=object))
        item_bias, item_vectors = self.model_.get_item_representations(self.item_matrix_)
        features = self._user_matrix(ids)
        if features is None:  # identity only: a new user is a zero vector
            _, known = self.model_.get_user_representations()
            rows = self.user_ids_.get_indexer(ids)
            vectors = np.where((rows >= 0)[:, None], known[np.maximum(rows, 0)], 0.0)
        else:
            _, vectors = self.model_.get_user_representations(features)
        return (vectors @ item_vectors.T + item_bias[None, :]).astype(np.float32)


# --------------------------------------------------------------------------------- evaluation
def items_per_user(events: Interactions | pd.DataFrame, users: Sequence[str]) -> list[np.ndarray]:
    """The item ids of each of ``users`` in ``events`` (a ``user`` / ``item`` frame), in that
    order: the ``history`` and ``targets`` of :func:`cold_item_views`."""
    frame = events.frame if isinstance(events, Interactions) else events
    grouped = frame.groupby("user", sort=False)["item"].agg(lambda s: s.to_numpy(dtype=object))
    empty = np.empty(0, dtype=object)
    return [grouped.get(str(u), empty) for u in users]


def cold_item_views(scores: np.ndarray, item_ids: Sequence[str], history: Sequence[Collection[str]],
                    targets: Sequence[Collection[str]], cold_items: Collection[str], k: int = 20,
                    chunk: int = 1024) -> dict[str, float]:
    """Cold-item Recall@k in two views, and the cold share of the whole-catalog top-k.

    ``scores`` ``(n_users, len(item_ids))``; ``history`` and ``targets`` hold each score row's item
    ids (:func:`items_per_user`). Only targets in ``cold_items`` count, and only users with one
    do. Recall = hits / min(|cold targets|, k) (a target the scores lack is a miss), averaged over
    users, ranking (a) only the cold items, (b) the whole catalog with the history masked. Ties
    rank by column order. ``cold share@k``: the cold items' share of the whole-catalog top-k."""
    scores = np.asarray(scores)
    ids = pd.Index(np.asarray([str(i) for i in item_ids], dtype=object))
    if scores.ndim != 2 or scores.shape[1] != len(ids) or not len(history) == len(targets) == len(scores):
        raise SchemaError(f"cold_item_views: scores {scores.shape} must be (users, {len(ids)} items) with "
                          f"one history ({len(history)}) and target list ({len(targets)}) per row.")
    if k < 1:
        raise ConfigError(f"cold_item_views: k must be >= 1, got {k}.")
    cold = {str(i) for i in cold_items}
    is_cold = ids.isin(list(cold))
    truth = [{str(i) for i in row} & cold for row in targets]
    rows = np.flatnonzero([len(t) > 0 for t in truth])
    hits = {"cold items": np.zeros(len(rows)), "whole catalog": np.zeros(len(rows))}
    cold_in_top = listed = 0
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        block = np.array(scores[part], dtype=np.float32)
        for j, row in enumerate(part):
            seen = ids.get_indexer(pd.Index([str(i) for i in history[row]], dtype=object))
            block[j, seen[seen >= 0]] = -np.inf
        for view, matrix in (("cold items", np.where(is_cold, block, -np.inf)), ("whole catalog", block)):
            top = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
            ranked = np.isfinite(np.take_along_axis(matrix, top, axis=1))
            for j, row in enumerate(part):
                found = set(ids[top[j][ranked[j]]]) & truth[row]
                hits[view][start + j] = len(found) / min(len(truth[row]), k)
            if view == "whole catalog":
                cold_in_top += int(is_cold[top][ranked].sum())
                listed += int(ranked.sum())
    return {f"recall@{k}, cold items": float(hits["cold items"].mean()) if len(rows) else float("nan"),
            f"recall@{k}, whole catalog": float(hits["whole catalog"].mean()) if len(rows) else float("nan"),
            f"cold share@{k}": cold_in_top / listed if listed else float("nan"),
            "users": float(len(rows))}
