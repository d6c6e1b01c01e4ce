"""A new FAISS index trained on a seeded sample and filled in chunks: what build and retrain share."""

from __future__ import annotations

from typing import Any

import numpy as np

import mmrec.index.faiss_ops as faiss_ops
from mmrec.errors import ConfigError
from mmrec.index.arrays import as_matrix, l2_normalize
from mmrec.index.scann_backend import ScannIndex, is_scann_spec

__all__ = ["train_and_fill", "unit_rows"]

# Rows normalised and added per FAISS call (bounded memory for memory-mapped inputs).
ADD_CHUNK_ROWS = 65_536
# Training points per IVF list (FAISS needs >= 39; more costs k-means time for little gain).
TRAIN_POINTS_PER_LIST = 64
DEFAULT_EF_SEARCH = 64
DEFAULT_NPROBE_SHARE = 1 / 16


def unit_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows as unit float32 vectors (already-unit rows pass through without a second copy)."""
    block = as_matrix(np.asarray(vectors[rows]), name="item vectors")
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))
    if np.all((np.abs(norms - 1.0) < 1e-4) | (norms == 0)):
        return block
    return l2_normalize(block)


def train_and_fill(spec: str, dim: int, vectors: np.ndarray, labels: np.ndarray, *,
                   seed: int = 0, centroids: np.ndarray | None = None) -> tuple[Any, dict[str, Any]]:
    """A new FAISS index of ``spec`` trained on a seeded sample of ``vectors[labels]`` and filled
    with them in chunks; returns it and its default search parameters. ``centroids`` (``(nlist,
    dim)``, from an IVF index trained on the same vectors) skip the coarse k-means: only the codes
    (e.g. PQ) are trained."""
    if is_scann_spec(spec):  # the optional ScaNN backend (``ScaNN{leaves},AH{d},R{reorder}``)
        scann_index = ScannIndex.build(spec, unit_rows(vectors, labels), labels)
        return scann_index, {"seed": seed, "leaves_to_search": scann_index.leaves_to_search}
    f = faiss_ops.faiss()
    try:
        index = f.index_factory(dim, spec, f.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"invalid FAISS factory string {spec!r}: {exc}") from None
    in_order = len(labels) == 0 or (labels[0] == 0 and bool(np.all(np.diff(labels) == 1)))
    if faiss_ops.needs_id_map(spec) or (faiss_ops.numbers_rows_itself(index) and not in_order):
        index = f.IndexIDMap2(index)  # labels with gaps: an index that numbers rows needs the map
    params: dict[str, Any] = {"seed": seed}
    ivf = faiss_ops.ivf_of(index)
    if centroids is not None and ivf is not None and len(centroids) == ivf.nlist:
        ivf.quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))  # FAISS skips k-means
    if not index.is_trained:
        size = len(labels) if ivf is None else min(len(labels), TRAIN_POINTS_PER_LIST * ivf.nlist)
        size = max(size, min(len(labels), 10_000))
        rng = np.random.default_rng(seed)
        sample_rows = np.sort(rng.choice(labels, size=size, replace=False)) if size < len(labels) else labels
        sample = unit_rows(vectors, sample_rows)
        if ivf is not None:
            ivf.cp.seed = seed
            ivf.cp.max_points_per_centroid = max(TRAIN_POINTS_PER_LIST, 1 + len(sample) // ivf.nlist)
        try:
            index.train(sample)
        except RuntimeError as exc:  # e.g. fewer training points than IVF lists
            raise ConfigError(
                f"cannot train index {spec!r} on {len(sample)} vectors: {exc}. Use fewer lists "
                "(e.g. 'IVF64,Flat'), or 'Flat' / 'HNSW32' for small catalogs."
            ) from None
        if ivf is not None:  # the drift baseline; a few thousand points estimate it well
            params["train_residual"] = faiss_ops.ivf_residual(index, sample[:: max(1, len(sample) // 4096)])
    if ivf is not None:
        params["nprobe"] = max(1, int(ivf.nlist * DEFAULT_NPROBE_SHARE))
    if faiss_ops.hnsw_of(index) is not None:
        params["efSearch"] = DEFAULT_EF_SEARCH
    for start in range(0, len(labels), ADD_CHUNK_ROWS):
        chunk = labels[start : start + ADD_CHUNK_ROWS]
        faiss_ops.add(index, unit_rows(vectors, chunk), chunk)
    faiss_ops.apply_params(index, params)
    return index, params
