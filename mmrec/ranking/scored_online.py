"""Serve any fitted recommender live by its scores (:class:`ScoredOnline`): each request scores
the model's items for the user's current history — or, past ``INDEX_ABOVE_ITEMS`` items, a model
whose scores are inner products takes its candidates from an index and scores only those."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.data.matrix import distinct_user_counts
from mmrec.errors import ConfigError, SchemaError
from mmrec.index import ItemIndex, build_index
from mmrec.index.arrays import inner_product_items, inner_product_queries
from mmrec.index.item_index import attribute_mask
from mmrec.ranking.online import LiveHistory, check_event_numbers, live_options
from mmrec.ranking.options import RankingOptions
from mmrec.ranking.rerank import candidate_count

__all__ = ["ScoredOnline", "INDEX_ABOVE_ITEMS", "top_positions", "popularity_of"]

INDEX_ABOVE_ITEMS = 50_000  # past this, vector models serve candidates from an index


class ScoredOnline(LiveHistory):
    """Serve any fitted recommender live (EASE, ItemKNN, BPR, LightGCN, popularity, a two-tower
    model scored exactly …): each request scores the model's items for the user's current history —
    the initial log plus the events observed since — so feedback moves recommendations at once,
    with no retraining. Users without a known event get the live log's most popular items.

    Parameters
    ----------
    model : Recommender
        Fitted: ``item_ids_`` and ``score_items(events, users=...)``.
    history : Interactions, optional
        Behaviour so far.
    attributes : DataFrame, optional
        Item attributes indexed by item id, for ``where`` filters.
    max_events_per_user : int
        Observed events kept per user (the newest).
    index_above : int
        Above this many items, a model whose scores are inner products of user and item vectors
        (``user_item_vectors``: BPR, LightGCN, the content mean) takes a request's candidates from
        an index over its item vectors (built here, tuned to recall@10 0.95) and scores only those,
        exactly; below it, or for other models, every item is scored.
    """

    def __init__(self, model: Any, *, history: Interactions | None = None,
                 attributes: pd.DataFrame | None = None, max_events_per_user: int = 1000,
                 index_above: int = INDEX_ABOVE_ITEMS) -> None:
        if getattr(model, "item_ids_", None) is None:
            raise ConfigError(f"{type(model).__name__} is not fitted; fit or load it first.")
        if max_events_per_user < 1:
            raise ConfigError(f"max_events_per_user must be >= 1, got {max_events_per_user}.")
        self.model, self.item_ids = model, pd.Index(model.item_ids_)
        self._item_array = self.item_ids.to_numpy(dtype=object)  # ids by position, made once
        self.attributes = (attributes.reindex(self.item_ids) if attributes is not None else None)
        super().__init__(history, max_events_per_user)
        self._popularity: np.ndarray | None = None  # recounted after a change, when asked for
        self.index: ItemIndex | None = None  # candidates of vector models past index_above items
        if len(self.item_ids) > index_above and hasattr(model, "user_item_vectors"):
            _, vectors = model.user_item_vectors(self.history, users=[])
            self.index = build_index(inner_product_items(vectors), ids=list(map(str, self.item_ids)),
                                     target_recall=0.95)

    def contains(self, item_ids: Sequence[str]) -> np.ndarray:
        """Per id, whether the model knows the item (bool array): looked up in the item index's own
        hash table, built once (``isin`` against it hashed the whole catalog on every call)."""
        return self.item_ids.get_indexer(pd.Index(list(map(str, item_ids)), dtype=object)) >= 0

    def observe(self, user: str, item: str, event: str = "click", value: float = 1.0,
                timestamp: float | None = None) -> None:
        """Add one event to ``user``'s live history."""
        user, item = str(user), str(item)
        check_event_numbers(user, item, event, value, timestamp)
        if not self.contains([item])[0]:
            raise SchemaError(f"observe: item {item!r} is not one of the model's items.")
        last = self._observed.get(user)
        now = float(timestamp) if timestamp is not None else (last[-1][2] + 1.0 if last else 0.0)
        if self._keep(user, item, now, event, value):
            self._popularity = None

    def observe_many(self, events: Sequence[Mapping[str, Any]], *,
                     unlocked: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        """:meth:`observe` each event (``user, item`` and optional ``event, value, timestamp``) in
        order (a score-only model reads histories when asked: nothing to run per batch)."""
        for e in events:
            self.observe(e["user"], e["item"], e.get("event", "click"), e.get("value", 1.0),
                         e.get("timestamp"))

    def ranked(self, user: str, k: int | None = None, *, segment: Mapping[str, Any] | None = None,
               options: RankingOptions | None = None,
               **overrides: Any) -> tuple[np.ndarray, np.ndarray, str]:
        """Item ids, scores (float64) and the source (``"model"`` or ``"popularity"``) of the
        user's top ``k``, ranked by ``options`` and the keyword ``overrides`` of its fields (see
        :meth:`OnlineRecommender.recommend`). ``diversify`` needs item vectors, which a score-only
        model lacks, and ``segment`` user attributes: both are refused (the fallback is the live
        log's popularity)."""
        options = live_options(options, k, overrides, caller=f"{type(self).__name__}.ranked")
        if options.diversify > 0:
            raise ConfigError(f"diversify re-ranks by item vectors; {type(self.model).__name__} has "
                              "none (serve a two-tower model, or use diversify=0).")
        if segment is not None:
            raise ConfigError("ScoredOnline ranks users without events by the live log's popularity, "
                              "not per segment; drop segment= (OnlineRecommender has segments).")
        k, where = options.k, options.where
        user = str(user)
        touched = self.item_ids.get_indexer(sorted(self._items_of.get(user, ())))  # -1: not the model's
        seen = touched >= 0
        excluded = touched[seen] if options.exclude_seen else np.empty(0, dtype=np.int64)
        if where and self.attributes is None:
            raise ConfigError("this recommender has no item attributes to filter on; give "
                              "attributes= (the catalog's columns).")
        allowed = attribute_mask(self.attributes, where) if where else None
        if seen.any() and self.index is not None:
            positions, scores = self._indexed(user, k, excluded, allowed)
            return self._item_array[positions], scores, "model"
        if seen.any():
            scores = np.asarray(self.model.score_items(self.events_of(user), users=[user])[0],
                                dtype=np.float64)
            source = "model"
        else:
            if self._popularity is None:
                self._popularity = popularity_of(self.history, self.item_ids)
            scores, source = self._popularity.copy(), "popularity"
        scores = np.where(np.isfinite(scores), scores, -np.inf)
        scores[excluded] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        order = top_positions(scores, k)
        return self._item_array[order], scores[order], source

    def _indexed(self, user: str, k: int, excluded: np.ndarray, allowed: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The user's top ``k`` among the index's candidates, scored exactly (positions, float64)."""
        assert self.index is not None
        queries, vectors = self.model.user_item_vectors(self.events_of(user), users=[user])
        width = candidate_count(k, len(self.item_ids))
        _, labels = self.index.search(inner_product_queries(queries, self.index.dim), width,
                                      exclude_idx=[excluded], allowed=allowed)
        candidates = labels[0][labels[0] >= 0]  # labels are positions: built from item_ids in order
        scores = np.asarray(vectors[candidates], np.float64) @ np.asarray(queries[0], np.float64)
        order = np.lexsort((candidates, -scores))[:k]  # best first, ties by lower position
        return candidates[order], scores[order]

    def forget(self, user: str) -> int:
        """Remove every event of ``user``; returns how many were removed."""
        removed, _ = self._drop(str(user))
        self._popularity = None
        return removed

    def users(self) -> Sequence[str]:
        """Users with events."""
        return sorted(self._items_of)


def top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest finite ``scores``, best first, ties by lower position: a
    partial selection, then a sort of those alone."""
    positions = np.flatnonzero(np.isfinite(scores))
    if len(positions) > k:  # keep every position tied with the k-th score: the sort breaks the ties
        kth = np.partition(scores[positions], len(positions) - k)[len(positions) - k]
        positions = positions[scores[positions] >= kth]
    return positions[np.lexsort((positions, -scores[positions]))][:k]


def popularity_of(events: Interactions, item_ids: pd.Index) -> np.ndarray:
    """Distinct users per item of ``item_ids`` (float64), over ``events``."""
    frame = events.frame
    columns = item_ids.get_indexer(frame["item"].to_numpy(dtype=object))
    users = pd.factorize(frame["user"].to_numpy(dtype=object))[0]
    known = columns >= 0
    return distinct_user_counts(users[known], columns[known], len(item_ids))
