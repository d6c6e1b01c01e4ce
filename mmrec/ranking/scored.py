"""Top-k from a model's full score matrix, with the same fallback and columns as :func:`mmrec.recommend`.

Every recommender's ``recommend`` (the baselines, LightGCN, :class:`mmrec.TwoTower`) runs through
:func:`recommend_by_scores`: the model scores all of its items for the users that have a known
event (``model.score_items``), seen items are excluded, and users without one get the most popular
unseen items of the log, marked ``source="popularity"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from mmrec.data.interactions import Interactions, as_interactions
from mmrec.data.matrix import distinct_user_counts
from mmrec.data.validation import id_list, positive_int
from mmrec.errors import NotFittedError
from mmrec.ranking.popularity import descending
from mmrec.ranking.topk import top_unseen

__all__ = ["recommend_by_scores", "COLUMNS"]

COLUMNS = ["user", "rank", "item", "score", "source"]
USERS_PER_CHUNK = 1024  # rows of the (users × items) score matrix held at once


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns of the ``k`` highest finite scores (best first, ties by column) and
    those scores; ``-1`` / ``-inf`` where a row has fewer."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else (
        np.broadcast_to(np.arange(scores.shape[1]), scores.shape))
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    best = np.take_along_axis(picked, order, axis=1)
    top = np.where(np.isfinite(best), top, -1)
    return top, best


def recommend_by_scores(model: Any, events: Interactions | pd.DataFrame, *,
                        users: Sequence[str] | None = None, k: int = 10,
                        exclude_seen: bool = True) -> pd.DataFrame:
    """Top-``k`` of ``model``'s items for each user of ``events`` (or ``users``).

    ``model`` needs ``item_ids_`` (a ``pd.Index``) and ``score_items(events, users=...)`` returning
    ``(len(users), len(item_ids_))`` scores. Returns columns ``user, rank, item, score, source``
    (``"model"`` or ``"popularity"``), ranks from 1, users in the order asked for.
    """
    items = getattr(model, "item_ids_", None)
    if items is None:
        raise NotFittedError(f"{type(model).__name__} is not fitted; call fit(items, events) first.")
    events = as_interactions(events, caller=f"{type(model).__name__}.recommend")
    k = positive_int(k, name="k")
    wanted = (pd.unique(np.asarray(id_list(users, name="users"), dtype=object)) if users is not None
              else events.users)
    frame = events.frame
    columns = items.get_indexer(frame["item"].to_numpy(dtype=object))
    on_items = columns >= 0
    every_user = pd.factorize(frame["user"].to_numpy(dtype=object))[0]
    popularity = distinct_user_counts(every_user[on_items], columns[on_items], len(items))
    popular = descending(popularity, np.ones(len(items), dtype=bool))
    rows = pd.Index(wanted).get_indexer(frame["user"].to_numpy(dtype=object))
    known = (rows >= 0) & on_items
    seen = csr_matrix((np.ones(int(known.sum()), dtype=np.float32), (rows[known], columns[known])),
                      shape=(len(wanted), len(items)))
    seen.sum_duplicates()
    has_signal = np.bincount(rows[known], minlength=len(wanted)) > 0
    top = np.full((len(wanted), min(k, len(items))), -1, dtype=np.int64)
    best = np.full(top.shape, -np.inf, dtype=np.float64)
    warm = np.flatnonzero(has_signal) if top.shape[1] else np.empty(0, np.int64)
    for start in range(0, len(warm), USERS_PER_CHUNK):
        chunk = warm[start : start + USERS_PER_CHUNK]
        scores = np.asarray(model.score_items(events, users=list(wanted[chunk])), dtype=np.float64)
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        if exclude_seen:
            block = seen[chunk]
            scores[np.repeat(np.arange(len(chunk)), np.diff(block.indptr)), block.indices] = -np.inf
        top[chunk], best[chunk] = _top_k(scores, top.shape[1])
    for row in np.flatnonzero(~has_signal):
        excluded = set(seen[row].indices.tolist()) if exclude_seen else set()
        picks = top_unseen(popular, excluded, top.shape[1])
        top[row, : len(picks)] = picks
        best[row, : len(picks)] = popularity[picks]
    hit_rows, ranks = np.nonzero(top >= 0)
    return pd.DataFrame({
        "user": wanted[hit_rows],
        "rank": ranks + 1,
        "item": items.to_numpy(dtype=object)[top[hit_rows, ranks]],
        "score": best[hit_rows, ranks],
        "source": np.where(has_signal, "model", "popularity")[hit_rows],
    }, columns=COLUMNS)
