"""Content-based recommendation: user vector = weighted mean of history item vectors → index top-k."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.interactions import EventWeights, Interactions, as_interactions
from mmrec.data.validation import id_list
from mmrec.errors import ConfigError, SchemaError
from mmrec.index import ItemIndex, ServingIndex, l2_normalize
from mmrec.index.sharded import ShardedIndex
from mmrec.ranking.options import RankingOptions, check_half_life, reject_options, resolve_options
from mmrec.ranking.popularity import popular_order
from mmrec.ranking.prior import label_log_popularity, search_with_prior
from mmrec.ranking.rerank import NEEDS_VECTORS, ExposureLedger, candidate_count, rerank_candidates
from mmrec.vectors.user_vectors import UserVectors

__all__ = ["recommend", "recommend_known", "check_serving_index", "user_vectors", "check_model_fits",
           "check_model_options", "top_unseen", "diversified"]

logger = logging.getLogger(__name__)


def user_vectors(
    index: ServingIndex,
    events: Interactions,
    *,
    users: Sequence[str] | None = None,
    event_weights: EventWeights | None = None,
    half_life: float | None = None,
) -> UserVectors:
    """Weighted mean of the user's history item vectors (event weights × optional recency decay).

    Parameters
    ----------
    index : ItemIndex or ShardedIndex
        Supplies item vectors (:meth:`~mmrec.index.ServingIndex.weighted_sum`) and the id map;
        events on items not in it are dropped (and logged).
    events : Interactions
    users : sequence of str, optional
        Users to compute (default: every user in ``events``); users without events get zeros.
    event_weights : EventWeights, optional
    half_life : float, optional
        Recency decay: an event ``half_life`` seconds older than the user's latest counts half.
    """
    events = as_interactions(events, caller="user_vectors")
    check_half_life(half_life)
    # every user of the log has a row, also one whose items are all unknown to the index (zeros)
    user_ids = (pd.unique(np.asarray(id_list(users, name="users"), dtype=object)) if users is not None
                else events.users)  # a user asked for twice is computed once
    events = events.restrict_to_items(index.item_ids)
    frame = events.frame
    row_of = {u: i for i, u in enumerate(user_ids.tolist())}
    rows = frame["user"].map(row_of)
    keep = rows.notna().to_numpy()
    weights = events.weights(event_weights)[keep]
    events.require_values(event_weights)
    user_rows = rows[keep].to_numpy(dtype=np.int64)
    item_idx = index.positions(frame.loc[keep, "item"].tolist())
    if half_life is not None:
        times = frame.loc[keep, "timestamp"].to_numpy(np.float64)
        latest = pd.Series(times).groupby(user_rows).transform("max").to_numpy()
        age = np.where(np.isnan(times), 0.0, latest - times)
        weights = weights * np.power(0.5, age / half_life)
    # scaled per user to a largest |weight| of 1: the direction is the same, and neither huge values
    # (1e308 plays overflow float32) nor tiny ones (1e-30 look like "no signal") distort it
    scale = pd.Series(np.abs(weights)).groupby(user_rows).transform("max").to_numpy()
    weights = np.divide(weights, scale, out=np.zeros_like(weights), where=scale > 0)
    from scipy.sparse import csr_matrix

    # (users × items) weight matrix times item vectors: no (events × dim) temporary
    history = csr_matrix((weights.astype(np.float32), (user_rows, item_idx)),
                         shape=(len(user_ids), index.n_labels), dtype=np.float32)
    summed = np.asarray(index.weighted_sum(history), dtype=np.float64)
    norms = np.linalg.norm(summed, axis=1)
    has_signal = norms > 1e-9
    return UserVectors(user_ids, l2_normalize(summed), has_signal)


def check_model_fits(index: ServingIndex, model: Any) -> None:
    """A :class:`ConfigError` unless ``model`` (if any) makes vectors of the index's width."""
    width = None if model is None else getattr(model, "vector_dim", model.config.dim)
    if width is not None and width != index.dim:
        raise ConfigError(f"the model's vectors have {width} dimensions but the index "
                          f"{index.dim}; build the index from model.encode_items(...).")


def check_model_options(index: ServingIndex, model: Any, options: RankingOptions, *, caller: str) -> None:
    """:func:`check_model_fits`, and with a model no content-profile option: its user tower reads
    the history with the model's own event weights and without a recency decay."""
    check_model_fits(index, model)
    if model is not None:
        reject_options(options, ("event_weights", "half_life"), caller=caller,
                       why="the model's user tower weighs the history itself (TwoTower(event_weights=...)) "
                       "and has no recency decay")


def top_unseen(order: np.ndarray, seen: set[int], k: int) -> list[int]:
    """The first ``k`` labels of ``order`` that are not in ``seen``."""
    return [int(i) for i in order[: k + len(seen)] if i not in seen][:k]


def recommend(
    index: ServingIndex,
    events: Interactions | pd.DataFrame,
    *,
    users: Sequence[str] | None = None,
    model: Any = None,
    options: RankingOptions | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Top-``k`` items for each user, from the user's history.

    The user's vector is the weighted mean of their history's item vectors (content-based), or,
    with a trained ``model`` (:class:`mmrec.TwoTower`, whose ``encode_items`` built the index), the
    model's user tower applied to the history (and to the user's attributes, which also serve
    users with no event). A model with a fading popularity prior (``model.prior_``) ranks a user
    with ``n`` events by ``cosine + weight(n) · log-popularity`` (see :mod:`mmrec.ranking.prior`).

    Users with no usable history (unknown, or whose weights cancel out) get the most popular items
    they have not seen; the ``source`` column says which. Seen items are excluded and ``k`` is still
    honoured while enough unseen items exist; so is ``where``, the filter on the index's item
    attributes. ``index`` is an :class:`~mmrec.ItemIndex` or a :class:`~mmrec.ShardedIndex` (same
    results; profiles and search go shard by shard).

    Parameters
    ----------
    index : ItemIndex or ShardedIndex
    events : Interactions or DataFrame
        The behaviour log; events on items not in the index are dropped (and logged).
    users : sequence of str, optional
        Users to serve, in this order (default: every user of the log).
    model : TwoTower, optional
        Makes the user vectors instead of the content profile; it weighs events its own way, so
        ``event_weights`` and ``half_life`` are refused with it.
    options : RankingOptions, optional
        ``k``, ``exclude_seen``, ``where``, ``diversify``, ``rerank``, ``event_weights``,
        ``half_life`` (see :class:`mmrec.RankingOptions`; default: its defaults, ``k=10``).
    **overrides
        Fields of :class:`mmrec.RankingOptions` replacing those of ``options``
        (``recommend(index, events, k=20, where={"category": ["shoes"]})``); another keyword is a
        :class:`ConfigError` naming the valid ones.

    Returns
    -------
    DataFrame
        Columns ``user, rank, item, score, source``; ``rank`` starts at 1.
    """
    check_serving_index(index, "recommend")
    options = resolve_options(options, overrides, caller="recommend")
    check_model_options(index, model, options, caller="recommend")
    events = as_interactions(events, caller="recommend")
    if users is None:  # users whose items are all unknown to the index still get popular items
        users = events.users
    known = events.restrict_to_items(index.item_ids)
    allowed = index.mask(options.where) if options.where else None
    return recommend_known(index, known, users=users, options=options, allowed=allowed, model=model,
                           popular=lambda: popular_order(index, known, allowed))


def check_serving_index(index: Any, caller: str) -> None:
    """A :class:`SchemaError` unless ``index`` is an :class:`ItemIndex` or a :class:`ShardedIndex`."""
    if not isinstance(index, ItemIndex | ShardedIndex):
        raise SchemaError(f"{caller} expects an ItemIndex (mmrec.build_index) or a ShardedIndex "
                          f"(mmrec.build_sharded_index), got {type(index).__name__}.")


def recommend_known(
    index: ServingIndex,
    known: Interactions,
    *,
    users: Sequence[str] | None,
    options: RankingOptions,
    allowed: np.ndarray | None,
    model: Any,
    popular: Callable[[], tuple[np.ndarray, np.ndarray]],
    ledger: ExposureLedger | None = None,
) -> pd.DataFrame:
    """:func:`recommend` after its checks: ``known`` holds only events on indexed items (at least
    those of ``users``), ``allowed`` is the mask of ``options.where``, and ``popular()`` gives the
    fallback's popularity per label and order (:func:`popular_order`), asked for only when a user
    is cold. ``ledger``: the exposure of ``rerank="exposure"`` carried across calls (batches)."""
    k, diversify = options.k, options.diversify
    if model is not None:
        profile = model.encode_users(known, users=users)
    else:
        profile = user_vectors(index, known, users=users, event_weights=options.event_weights,
                               half_life=options.half_life)
    seen_lists = _seen_positions(index, known, profile.user_ids) if options.exclude_seen else (
        [np.empty(0, dtype=np.int64)] * len(profile.user_ids))
    width = candidate_count(k, index.n_labels, options.rerank) if diversify > 0 else k
    prior = getattr(model, "prior_", None)
    if prior is not None:  # a trained model's fading popularity prior: strong for short histories
        weights = prior.weight(model.history_lengths(known, users=profile.user_ids)) * profile.has_signal
        log_pop = label_log_popularity(index, prior, model.prior_segments(profile.user_ids))
        scores, item_idx = search_with_prior(index, profile.vectors, weights, log_pop, width,
                                             exclude_idx=seen_lists, allowed=allowed)
    else:
        scores, item_idx = index.search(profile.vectors, width, exclude_idx=seen_lists, allowed=allowed)
    source = np.where(profile.has_signal, "model" if model is not None else "content", "popularity")
    cold = np.flatnonzero(~profile.has_signal)
    if cold.size:
        logger.info("%d user(s) without usable history get popular items", cold.size)
        pop, order = popular()
        for row in cold:
            picks = top_unseen(order, set(seen_lists[row].tolist()), width)
            scores[row], item_idx[row] = -np.inf, -1
            scores[row, : len(picks)] = pop[picks]
            item_idx[row, : len(picks)] = picks
    if diversify > 0:
        item_idx, scores = diversified(index, scores, item_idx, k, diversify=diversify,
                                       method=options.rerank, ledger=ledger)
    rows, ranks = np.nonzero(item_idx >= 0)  # row-major: users in order, ranks ascending
    short = int((item_idx < 0).any(axis=1).sum())
    if short:
        reason = "unseen items" if allowed is None else "unseen items pass the where filter"
        logger.warning("%d user(s) got fewer than k=%d items: not enough %s", short, k, reason)
    return pd.DataFrame({
        "user": profile.user_ids[rows],
        "rank": ranks + 1,
        "item": index.ids[item_idx[rows, ranks]],
        "score": scores[rows, ranks].astype(np.float64),
        "source": source[rows],
    })


def diversified(index: ServingIndex, scores: np.ndarray, labels: np.ndarray, k: int, *,
                diversify: float, method: str, ledger: ExposureLedger | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's candidate ``labels`` (with their ``scores``) re-ranked to ``k`` for variety, by
    the candidates' vectors in the index (or, for ``"exposure"``, by ``ledger``)."""
    from scipy.sparse import csr_matrix

    if method not in NEEDS_VECTORS:
        return rerank_candidates(scores, labels, None, k, diversify=diversify, method=method, ledger=ledger)
    valid = labels >= 0
    picked = labels[valid]
    one_hot = csr_matrix((np.ones(len(picked), np.float32), (np.arange(len(picked)), picked)),
                         shape=(len(picked), index.n_labels))
    vectors = np.zeros((*labels.shape, index.dim), dtype=np.float32)
    vectors[valid] = np.asarray(index.weighted_sum(one_hot), dtype=np.float32)
    return rerank_candidates(scores, labels, vectors, k, diversify=diversify, method=method)


def _seen_positions(index: ServingIndex, events: Interactions, user_ids: np.ndarray) -> list[np.ndarray]:
    """Per user (in ``user_ids`` order), the sorted unique positions of the items they touched."""
    frame = events.frame
    rows = pd.Index(user_ids).get_indexer(frame["user"])
    items = index.positions(frame["item"].tolist()) if len(frame) else np.empty(0, np.int64)
    keep = (rows >= 0) & (items >= 0)
    n_items = index.n_labels
    keys = np.unique(rows[keep].astype(np.int64) * n_items + items[keep])
    bounds = np.searchsorted(keys, np.arange(len(user_ids) + 1, dtype=np.int64) * n_items)
    positions = keys % n_items
    return [positions[bounds[r] : bounds[r + 1]] for r in range(len(user_ids))]
