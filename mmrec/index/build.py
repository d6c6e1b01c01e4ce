"""``build_index``: train (when needed) and fill a FAISS index in chunks, then tune it to a recall."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

import mmrec.index.faiss_ops as faiss_ops
from mmrec.errors import ConfigError, SchemaError
from mmrec.index.arrays import as_matrix, l2_normalize
from mmrec.index.choice import PQ_RERANK, plan_index
from mmrec.index.chooser import MEASURE_MIN_ITEMS, choose_by_measurement
from mmrec.index.fill import train_and_fill
from mmrec.index.item_index import ItemIndex
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["build_index"]

logger = logging.getLogger(__name__)


def _looks_normalised(vectors: np.ndarray, seed: int) -> bool:
    rows = np.random.default_rng(seed).choice(len(vectors), size=min(len(vectors), 1000), replace=False)
    with np.errstate(over="ignore", under="ignore"):  # an overflowing norm is inf: not normalised
        norms = np.linalg.norm(np.asarray(vectors[np.sort(rows)], dtype=np.float32), axis=1)
    return bool(np.all((np.abs(norms - 1) < 1e-3) | (norms < 1e-6)))


def _attribute_table(attributes: Any, ids: np.ndarray) -> pd.DataFrame | None:
    """Attributes aligned with ``ids`` from a Catalog or a DataFrame with an id column / index."""
    if attributes is None:
        return None
    from mmrec.data.catalog import Catalog

    if isinstance(attributes, Catalog):
        schema = attributes.schema
        frame = attributes.frame.set_index(schema.id)[[*schema.categorical, *schema.numeric]]
    elif isinstance(attributes, pd.DataFrame):
        frame = attributes
        id_column = next((c for c in ("item_id", "id", "item") if c in frame.columns), None)
        if id_column is not None:
            frame = frame.set_index(id_column)
        frame.index = frame.index.map(str)
    else:
        raise SchemaError(f"attributes must be a Catalog or a DataFrame, got {type(attributes).__name__}.")
    missing = ~pd.Index(ids).isin(frame.index)
    if missing.any():
        raise SchemaError(f"attributes lack item {ids[int(np.flatnonzero(missing)[0])]!r}.")
    return frame.loc[list(ids)].reset_index(drop=True)


def build_index(
    items: ItemVectors | np.ndarray,
    *,
    ids: Sequence[str] | None = None,
    spec: str | None = None,
    target_recall: float | None = None,
    k: int = 10,
    memory_budget: int | None = None,
    attributes: Any = None,
    use_gpu: bool | None = None,
    build_budget: float | None = None,
    seed: int = 0,
) -> ItemIndex:
    """Build a FAISS inner-product index over L2-normalised item vectors.

    Parameters
    ----------
    items : ItemVectors or ndarray of shape (n, d)
        ``ItemVectors`` (its fused vectors and ids are used) or a matrix with ``ids``; either may be
        memory-mapped: rows are normalised and added in chunks.
    ids : sequence of str, optional
        Item ids for a matrix (default ``"0"..."n-1"``).
    spec : str, optional
        FAISS factory string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,Flat"``, ``"IVF1024,PQ16"``,
        ``"IVF1024,PQ32x4fs,RFlat"``). By default, with ``target_recall``, the index is chosen by
        measurement (:mod:`mmrec.index.chooser`: candidate families built, each tuned to the target
        and timed; the fastest that reaches it is kept); without it, or when the vectors do not fit
        the memory budget, :func:`mmrec.index.plan_index` picks by size, dimension and
        ``memory_budget``.
    target_recall : float, optional
        Tune ``nprobe`` / ``efSearch`` (and the re-scoring depth of compressed codes) to the
        cheapest setting whose recall@``k`` against exact search, on held-out item queries, reaches
        it; the achieved recall, the parameters and (when chosen by measurement) every candidate's
        numbers are stored in ``index.params`` and logged.
    k : int
        The k of that recall.
    memory_budget : int, optional
        Bytes the index may use (default: half the machine's memory).
    attributes : Catalog or DataFrame, optional
        Item attributes to filter on at query time (``index.mask(where=...)``).
    use_gpu : bool, optional
        Default: on the GPU(s) when ``faiss.get_num_gpus() > 0`` and the index type supports it.
    build_budget : float, optional
        Seconds the measured choice may spend building candidates (default: the IVF candidates,
        and HNSW only when its estimated build costs at most half the time they took — twice it
        when the best IVF must probe ≥ 2 % of its lists).
    seed : int
        Seed of k-means, of the training sample and of the tuning queries.
    """
    if isinstance(items, ItemVectors):
        if ids is not None:
            raise ConfigError("ids come from the ItemVectors; do not pass ids= with them.")
        vectors, ids_array = items.fused, items.ids
    else:
        if not hasattr(items, "shape") or len(items.shape) != 2:
            raise SchemaError(f"item vectors must have shape (n, d); got {getattr(items, 'shape', None)}.")
        vectors = items
        ids_array = np.asarray([str(i) for i in (ids if ids is not None else range(len(items)))],
                               dtype=object)
        if len(ids_array) != len(items) or len(set(ids_array.tolist())) != len(ids_array):
            raise SchemaError(f"ids must be {len(items)} unique values, one per row.")
    if len(vectors) == 0:
        raise SchemaError("cannot build an index over zero items.")
    if not isinstance(vectors, np.memmap):  # checked (numbers, finite) before anything reads them
        vectors = as_matrix(vectors, name="item vectors")
    n, dim = vectors.shape
    if not _looks_normalised(vectors, seed):
        vectors = l2_normalize(as_matrix(np.asarray(vectors), name="item vectors"))
    plan = plan_index(n, dim, memory_budget=memory_budget)
    measured = spec is None and target_recall is not None and n >= MEASURE_MIN_ITEMS and plan.rerank == 1
    if measured:  # every candidate is built and timed; the fastest reaching the target is kept
        if not 0 < target_recall <= 1:
            raise ConfigError(f"target_recall must be in (0, 1], got {target_recall}.")
        index = choose_by_measurement(vectors, ids_array, target_recall=target_recall, k=k, seed=seed,
                                      build_budget=build_budget, use_gpu=use_gpu,
                                      memory_budget=memory_budget)
        index.attributes = _attribute_table(attributes, ids_array)
        logger.info("built %r over %d items (dim %d): %s", index.spec, n, dim, index.params["choice"])
        return index
    chosen = spec or plan.spec
    faiss_index, params = train_and_fill(chosen, dim, vectors, np.arange(n, dtype=np.int64), seed=seed)
    # compressed codes (PQ) get their shortlist re-ranked by exact inner product by default
    params["rerank"] = plan.rerank if spec is None else (PQ_RERANK if "PQ" in chosen else 1)
    if spec is None:
        params["choice"] = plan.reason
    faiss_index, device = faiss_ops.place(faiss_index, use_gpu)
    index = ItemIndex(faiss_index, ids_array, vectors, spec=chosen, params=params | {"device": device},
                      attributes=_attribute_table(attributes, ids_array))
    if target_recall is not None:
        from mmrec.index.tuning import tune

        tune(index, target_recall=target_recall, k=k, seed=seed)
    logger.info("built %r over %d items (dim %d) on %s: %s", chosen, n, dim, device,
                {key: v for key, v in index.params.items() if key != "tuning"})
    return index
