"""One harness for every model: same split, same item universe, same masking, same metrics.

Each model is fitted on ``split.train`` (validation events for early stopping), then every test
user's history (``split.history``: train + validation + given events) is scored against **every**
item of the universe (the catalog, or every item with an event or vectors), the user's history
items are masked, and the held-out test items are looked for in the top K. Sampled ranking (the
targets among N random unseen items) is only used when asked for and is labelled in every row.
Models whose scores are inner products of vectors (``user_item_vectors``) are also evaluated
through a FAISS index, so the recall lost to approximate search is measured, not assumed.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmrec.data.interactions import EventWeights, Interactions
from mmrec.data.matrix import distinct_user_counts, interaction_matrix
from mmrec.data.splits import Split
from mmrec.errors import ConfigError, SchemaError
from mmrec.evaluation.metrics import (
    RANKING_METRICS,
    catalog_coverage,
    gini_index,
    intra_list_diversity,
    miscalibration,
    novelty,
    ranking_metrics,
    rating_metrics,
    tail_share,
    targets_per_user,
)
from mmrec.evaluation.protocol import RatingPredictor, Recommender
from mmrec.evaluation.report import EvaluationReport
from mmrec.ranking.rerank import NEEDS_VECTORS, candidate_count, check_diversify, rerank_candidates
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["EvalConfig", "evaluate_model", "evaluate_models", "item_universe"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """How models are scored.

    ``sampled_negatives`` None means full ranking (the default and the only protocol comparable
    across papers that rank the whole catalog); an int ranks each user's targets among that many
    random unseen items. ``ann_spec`` ("auto" or a FAISS factory string) adds the same metrics
    through an index for vector models. ``max_users`` evaluates a seeded sample of test users.
    """

    ks: tuple[int, ...] = (10, 20)
    metrics: tuple[str, ...] = ("precision", "recall", "f1", "hit", "ndcg", "mrr", "map")
    exclude_seen: bool = True
    sampled_negatives: int | None = None
    ann_spec: str | None = None
    max_users: int | None = None
    user_chunk: int = 1024
    seed: int = 0
    event_weights: EventWeights = field(default_factory=EventWeights)
    diversify: tuple[float, ...] = (0.0,)
    rerank: str = "mmr"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"EvalConfig: ks must be positive integers, got {self.ks}.")
        unknown = sorted(set(self.metrics) - set(RANKING_METRICS))
        if unknown:
            raise ConfigError(f"EvalConfig: unknown metric(s) {unknown}; choose from "
                              f"{sorted(RANKING_METRICS)}.")
        if self.sampled_negatives is not None and self.sampled_negatives < 1:
            raise ConfigError("EvalConfig: sampled_negatives must be >= 1 or None, got "
                              f"{self.sampled_negatives}.")
        if self.user_chunk < 1:
            raise ConfigError(f"EvalConfig: user_chunk must be >= 1, got {self.user_chunk}.")
        values = (self.diversify,) if isinstance(self.diversify, int | float) else self.diversify
        object.__setattr__(self, "diversify", tuple(check_diversify(v, self.rerank) for v in values))
        if not self.diversify:
            raise ConfigError("EvalConfig: diversify needs at least one λ (0: the model's ranking).")

    @property
    def protocol(self) -> str:
        """``full`` or ``sampled-N``: printed next to every number."""
        return "full" if self.sampled_negatives is None else f"sampled-{self.sampled_negatives}"


def item_universe(split: Split, items: ItemVectors | None = None,
                  catalog_ids: Sequence[str] | None = None) -> pd.Index:
    """The items every model ranks: ``catalog_ids`` if given, else every item with an event in the
    split or with vectors."""
    if catalog_ids is not None:
        return pd.Index(pd.unique(np.asarray([str(i) for i in catalog_ids], dtype=object)))
    parts = [split.train.frame["item"], split.valid.frame["item"], split.test.frame["item"]]
    if split.given is not None:
        parts.append(split.given.frame["item"])
    ids = pd.unique(pd.concat(parts, ignore_index=True).to_numpy(dtype=object))
    if items is not None:
        ids = pd.unique(np.concatenate([ids, np.asarray(items.ids, dtype=object)]))
    return pd.Index(ids)


@dataclass
class _Context:
    """What every model's evaluation shares: users, their histories and targets, popularity."""

    universe: pd.Index
    users: np.ndarray
    history: Interactions
    seen: Any  # csr (users × universe)
    targets: list[np.ndarray]
    popularity: np.ndarray
    n_train_users: int
    test: Interactions
    features: np.ndarray | None = None  # (universe, d) content vectors: diversity and re-ranking
    categories: np.ndarray | None = None  # (universe, n_categories) multi-hot

    @classmethod
    def build(cls, split: Split, universe: pd.Index, config: EvalConfig, *,
              items: ItemVectors | None = None, categories: Mapping[str, Any] | None = None) -> _Context:
        test = split.test
        if not len(test):
            raise SchemaError(f"{split.kind}: the test part is empty; nothing to evaluate.")
        users = pd.unique(test.frame["user"].to_numpy(dtype=object))
        if config.max_users is not None and len(users) > config.max_users:
            picked = np.random.default_rng(config.seed).choice(len(users), config.max_users, replace=False)
            users = users[np.sort(picked)]
            test = test.for_users(users)
        history = split.history
        seen = interaction_matrix(history, users, universe)
        row = pd.Index(users).get_indexer(test.frame["user"].to_numpy(dtype=object))
        col = universe.get_indexer(test.frame["item"].to_numpy(dtype=object))
        unknown = int((col < 0).sum())
        if unknown:
            logger.warning("%d test event(s) are on items outside the universe; they count as misses",
                           unknown)
        targets = targets_per_user(row, col, len(users))
        train = split.train.frame
        columns = universe.get_indexer(train["item"].to_numpy(dtype=object))
        codes = pd.factorize(train["user"].to_numpy(dtype=object))[0]
        popularity = distinct_user_counts(codes[columns >= 0], columns[columns >= 0], len(universe))
        return cls(universe, users, history, seen, targets, popularity, len(split.train.users), test,
                   features=_content_features(items, universe),
                   categories=category_matrix(categories, universe))


def _content_features(items: ItemVectors | None, universe: pd.Index) -> np.ndarray | None:
    """The universe's content as one vector per item: each modality's own vectors L2-normalised and
    concatenated (zeros where a modality is missing), so a cosine is the mean of the per-modality
    cosines. Unlike the fused vector (z-scored per dimension, which makes most pairs near
    orthogonal) this keeps the encoders' similarity scale, which diversity is measured on."""
    if items is None:
        return None
    rows = pd.Index(items.ids).get_indexer(universe)
    parts = []
    for modality in items.modalities:
        matrix = np.zeros((len(universe), items.vectors[modality].shape[1]), dtype=np.float32)
        present = (rows >= 0) & np.asarray(items.masks[modality])[np.maximum(rows, 0)]
        matrix[present] = np.asarray(items.vectors[modality], dtype=np.float32)[rows[present]]
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        parts.append(np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0))
    return np.concatenate(parts, axis=1)


def category_matrix(categories: Mapping[str, Any] | None, universe: pd.Index,
                    separator: str = "|") -> np.ndarray | None:
    """Multi-hot ``(len(universe), n_categories)`` float32 from item id → category label(s): a
    list, or a string (``"Action|Comedy"`` is two categories); items without one get a zero row."""
    if categories is None:
        return None
    labels = pd.Series(categories).astype(object)
    labels.index = labels.index.map(str)
    per_item = labels.reindex(universe).map(
        lambda v: list(map(str, v)) if isinstance(v, list | tuple | set) else
        [] if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).split(separator))
    names = sorted({name for names in per_item for name in names})
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(universe), len(names)), dtype=np.float32)
    for row, names_of in enumerate(per_item):
        matrix[row, [column[n] for n in names_of]] = 1.0
    return matrix


def _columns(model: Recommender, universe: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Model columns that are in the universe and the universe positions they go to."""
    if model.item_ids_ is None:
        raise ConfigError(f"{type(model).__name__} has no item_ids_: fit it first.")
    where = universe.get_indexer(model.item_ids_)
    keep = np.flatnonzero(where >= 0)
    return keep, where[keep]


def _rank_full(scores: torch.Tensor, k: int) -> np.ndarray:
    return _top_with_scores(scores, k)[0]


def _top_with_scores(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, scores.shape[1])
    value, index = scores.topk(k, dim=1)
    index[~torch.isfinite(value)] = -1
    return index.numpy(), value.numpy().astype(np.float64)


def _rank_sampled(scores: torch.Tensor, targets: list[np.ndarray], n_negatives: int, k: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Each user's targets among ``n_negatives`` random unmasked non-target items; ties rank the
    target below the negatives (a constant scorer gets no credit)."""
    top = np.full((len(targets), k), -1, dtype=np.int64)
    values = scores.numpy()
    for row, wanted in enumerate(targets):
        wanted = wanted[wanted >= 0]
        allowed = np.isfinite(values[row])
        allowed[wanted] = False
        pool = np.flatnonzero(allowed)
        negatives = rng.choice(pool, min(n_negatives, len(pool)), replace=False) if len(pool) else pool
        candidates = np.concatenate([negatives, wanted])
        is_target = np.concatenate([np.zeros(len(negatives)), np.ones(len(wanted))])
        order = np.lexsort((is_target, -values[row, candidates]))[:k]
        top[row, : len(order)] = candidates[order]
    return top


def _rank_model(model: Recommender, context: _Context, config: EvalConfig, *, width: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each test user's top ``width`` (default the largest K) universe positions and their scores."""
    keep, where = _columns(model, context.universe)
    k = width or max(config.ks)
    rng = np.random.default_rng(config.seed)
    tops, values = [], []
    for start in range(0, len(context.users), config.user_chunk):
        chunk = context.users[start : start + config.user_chunk]
        scores = np.asarray(model.score_items(context.history, users=list(chunk)), dtype=np.float32)
        if scores.shape != (len(chunk), len(model.item_ids_)):
            raise SchemaError(f"{type(model).__name__}.score_items returned {scores.shape}, expected "
                              f"({len(chunk)}, {len(model.item_ids_)}).")
        full = torch.full((len(chunk), len(context.universe)), -torch.inf)
        full[:, torch.from_numpy(where)] = torch.from_numpy(np.nan_to_num(scores[:, keep], nan=-np.inf))
        if config.exclude_seen:
            seen = context.seen[start : start + len(chunk)].tocoo()
            full[torch.from_numpy(seen.row.astype(np.int64)),
                 torch.from_numpy(seen.col.astype(np.int64))] = -torch.inf
        if config.sampled_negatives is None:
            top, value = _top_with_scores(full, k)
        else:
            top = _rank_sampled(full, context.targets[start : start + len(chunk)],
                                config.sampled_negatives, k, rng)
            value = np.take_along_axis(full.numpy(), np.maximum(top, 0), axis=1).astype(np.float64)
        tops.append(top)
        values.append(np.where(top >= 0, value, -np.inf))
    top, value = np.concatenate(tops), np.concatenate(values)
    if top.shape[1] < k:
        top = np.pad(top, ((0, 0), (0, k - top.shape[1])), constant_values=-1)
        value = np.pad(value, ((0, 0), (0, k - value.shape[1])), constant_values=-np.inf)
    return top, value


def _beyond_accuracy(top: np.ndarray, context: _Context, ks: Sequence[int]) -> dict[str, float]:
    """Coverage, novelty, exposure Gini and tail share at each K; intra-list diversity on the
    content vectors and on the categories, and miscalibration, where those are given."""
    results: dict[str, float] = {}
    for k in ks:
        results[f"coverage@{k}"] = catalog_coverage(top, len(context.universe), k)
        results[f"novelty@{k}"] = novelty(top, context.popularity, context.n_train_users, k)
        results[f"gini@{k}"] = gini_index(top, len(context.universe), k)
        results[f"tail@{k}"] = tail_share(top, context.popularity, k)
        if context.features is not None:
            results[f"ild@{k}"] = intra_list_diversity(top, context.features, k)
        if context.categories is not None:
            results[f"ild_category@{k}"] = intra_list_diversity(top, context.categories, k)
            results[f"miscalibration@{k}"] = miscalibration(top, context.seen, context.categories, k)
    return results


def _diversity_vectors(model: Any, context: _Context) -> np.ndarray:
    """What re-ranking compares items by: the content vectors, else the model's item vectors, else
    the categories."""
    if context.features is not None:
        return context.features
    if hasattr(model, "user_item_vectors"):
        keep, where = _columns(model, context.universe)
        _, vectors = model.user_item_vectors(context.history, users=list(context.users[:1]))
        out = np.zeros((len(context.universe), vectors.shape[1]), dtype=np.float32)
        out[where] = vectors[keep]
        return out
    if context.categories is not None:
        return context.categories
    raise ConfigError("diversify needs item vectors to compare items: pass items= (content vectors) or "
                      "categories=, or evaluate a vector model.")


def _diversified_rows(model: Any, context: _Context, config: EvalConfig, row: dict[str, Any],
                      name: str) -> list[dict[str, Any]]:
    """One row per λ of ``config.diversify``: the model's top candidates re-ranked for variety."""
    k = max(config.ks)
    width = candidate_count(k, len(context.universe), config.rerank)
    started = time.perf_counter()
    candidates, scores = _rank_model(model, context, config, width=width)
    vectors = _diversity_vectors(model, context) if config.rerank in NEEDS_VECTORS else None
    rows = []
    for diversify in config.diversify:  # exposure: counted over this λ's lists of every test user
        picked, _ = rerank_candidates(scores, candidates,
                                      None if vectors is None else vectors[np.maximum(candidates, 0)], k,
                                      diversify=diversify, method=config.rerank)
        entry = {**row, "model": name if diversify == 0 else f"{name} (diversify={diversify:g})",
                 "diversify": diversify, "rerank": config.rerank,
                 "score_s": row["score_s"] + time.perf_counter() - started}
        entry.update(ranking_metrics(picked, context.targets, config.ks, config.metrics))
        entry.update(_beyond_accuracy(picked, context, config.ks))
        rows.append(entry)
    return rows


def _ann_metrics(model: Any, context: _Context, config: EvalConfig) -> dict[str, float]:
    """Recall through a FAISS index over the model's item vectors vs exact scoring of the same
    vectors (``ann_recall_loss@K`` = exact − ANN)."""
    from mmrec.index import build_index
    from mmrec.index.arrays import inner_product_items, inner_product_queries

    queries, vectors = model.user_item_vectors(context.history, users=list(context.users))
    keep, where = _columns(model, context.universe)
    # factor models' scores are inner products of vectors of any length: searched as cosines on
    # vectors that keep each query's order (unit vectors are left as they are)
    index = build_index(inner_product_items(vectors[keep]), ids=[str(i) for i in context.universe[where]],
                        spec=None if config.ann_spec == "auto" else config.ann_spec, seed=config.seed)
    label_to_universe = context.universe.get_indexer(index.ids)
    universe_to_label = np.full(len(context.universe), -1, dtype=np.int64)
    universe_to_label[label_to_universe] = np.arange(len(label_to_universe))
    k = max(config.ks)
    excluded = []
    for row in range(len(context.users)):
        seen = context.seen.indices[context.seen.indptr[row] : context.seen.indptr[row + 1]]
        labels = universe_to_label[seen]
        excluded.append(labels[labels >= 0] if config.exclude_seen else np.empty(0, dtype=np.int64))
    queries = inner_product_queries(queries, index.dim)
    _, labels = index.search(queries, k, exclude_idx=excluded)
    ann_top = np.where(labels >= 0, label_to_universe[np.maximum(labels, 0)], -1)
    # the same vectors scored by brute force: the reference for the loss
    exact_scores = torch.from_numpy(np.asarray(queries @ np.asarray(index.vectors).T, dtype=np.float32))
    for row, labels_row in enumerate(excluded):
        exact_scores[row, torch.from_numpy(labels_row)] = -torch.inf
    exact_labels = _rank_full(exact_scores, k)
    exact_top = np.where(exact_labels >= 0, label_to_universe[np.maximum(exact_labels, 0)], -1)
    results: dict[str, float] = {"ann_index": index.spec}
    ann = ranking_metrics(ann_top, context.targets, config.ks, ("recall",))
    ref = ranking_metrics(exact_top, context.targets, config.ks, ("recall",))
    for k_ in config.ks:
        results[f"ann_recall@{k_}"] = ann[f"recall@{k_}"]
        results[f"ann_recall_loss@{k_}"] = ref[f"recall@{k_}"] - ann[f"recall@{k_}"]
    return results


def _rating_metrics(model: RatingPredictor, context: _Context, config: EvalConfig) -> dict[str, float]:
    frame = context.test.frame
    explicit = (frame["event"].isin(config.event_weights.explicit).to_numpy()
                & frame["value"].notna().to_numpy())
    if not explicit.any():
        return {}
    pairs = frame.loc[explicit, ["user", "item", "value"]].reset_index(drop=True)
    predicted = model.predict_ratings(context.history, pairs)
    known = np.isfinite(predicted)
    results = rating_metrics(predicted[known], pairs["value"].to_numpy(np.float64)[known])
    results["ratings_unpredicted"] = int((~known).sum())
    return results


def evaluate_model(model: Recommender, split: Split, *, name: str | None = None,
                   items: ItemVectors | None = None, config: EvalConfig | None = None,
                   catalog_ids: Sequence[str] | None = None, fit: bool = True,
                   categories: Mapping[str, Any] | None = None,
                   users: pd.DataFrame | None = None) -> dict[str, Any]:
    """Fit ``model`` on ``split.train`` (unless ``fit=False``) and return one row of metrics
    (:func:`evaluate_models` gives one row per λ when ``config.diversify`` has several);
    ``users`` (a user attribute table) goes to a ``fit`` that takes a ``users`` keyword."""
    config = config or EvalConfig()
    if len(config.diversify) > 1:
        raise ConfigError("evaluate_model gives one row; with several diversify values use evaluate_models.")
    context = _Context.build(split, item_universe(split, items, catalog_ids), config, items=items,
                             categories=categories)
    return _evaluate(model, split, name or type(model).__name__, items, config, fit, context, users)[0]


def _fit_options(model: Recommender, users: pd.DataFrame | None) -> dict[str, Any]:
    """``{"users": users}`` for a ``fit`` with a ``users`` keyword, else nothing (logged)."""
    if users is None:
        return {}
    try:
        accepts = "users" in inspect.signature(model.fit).parameters
    except (TypeError, ValueError):  # a fit without a readable signature (a C extension)
        accepts = False
    if not accepts:
        logger.info("%s.fit takes no users=; fitted without the user attributes", type(model).__name__)
    return {"users": users} if accepts else {}


def _evaluate(model: Recommender, split: Split, name: str, items: ItemVectors | None, config: EvalConfig,
              fit: bool, context: _Context, users: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Fit and score one model: a row per λ of ``config.diversify``."""
    row: dict[str, Any] = {"model": name, "protocol": config.protocol, "split": split.kind}
    started = time.perf_counter()
    if fit:
        model.fit(items, split.train, valid=split.valid if len(split.valid) else None,
                  **_fit_options(model, users))
    row["fit_s"] = time.perf_counter() - started
    started = time.perf_counter()
    top, _ = _rank_model(model, context, config)
    row["score_s"] = time.perf_counter() - started
    row.update(ranking_metrics(top, context.targets, config.ks, config.metrics))
    row.update(_beyond_accuracy(top, context, config.ks))
    if config.ann_spec is not None and hasattr(model, "user_item_vectors"):
        row.update(_ann_metrics(model, context, config))
    if isinstance(model, RatingPredictor):
        row.update(_rating_metrics(model, context, config))
    logger.info("%s: %s", row["model"], {k: v for k, v in row.items() if k.startswith("recall@")})
    if config.diversify == (0.0,):
        return [row]
    return _diversified_rows(model, context, config, row, name)


def evaluate_models(models: Mapping[str, Recommender], split: Split, *,
                    items: ItemVectors | None = None, config: EvalConfig | None = None,
                    catalog_ids: Sequence[str] | None = None, fit: bool = True,
                    categories: Mapping[str, Any] | None = None,
                    users: pd.DataFrame | None = None) -> EvaluationReport:
    """Every model fitted and scored the same way on the same split and universe: one table.

    ``categories`` (item id → label, ``"A|B"`` for several) adds category diversity and
    miscalibration; ``items`` adds content diversity. ``users`` (a user attribute table: a
    ``user`` column or index) is given to every model whose ``fit`` takes a ``users`` keyword
    (``fit(items, train, valid=..., users=users)``); the others are fitted as before. With
    ``config.diversify`` = several λ each model gets one row per λ: its top candidates re-ranked
    for variety (``config.rerank``)."""
    config = config or EvalConfig()
    context = _Context.build(split, item_universe(split, items, catalog_ids), config, items=items,
                             categories=categories)
    rows = [row for name, model in models.items()
            for row in _evaluate(model, split, name, items, config, fit, context, users)]
    return EvaluationReport(rows, ks=config.ks, metrics=config.metrics, protocol=config.protocol,
                            split=split.kind, n_users=len(context.users), n_items=len(context.universe))
