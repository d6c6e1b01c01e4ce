"""FAISS indices over item vectors: inner product on L2-normalised vectors, ids mapped back."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.validation import positions_of
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.item_vectors import ItemVectors
from mmrec.utils.io import atomic_directory, read_manifest, write_manifest

__all__ = ["ItemIndex", "build_index", "choose_index_spec", "FLAT_MAX_ITEMS", "HNSW_MAX_ITEMS"]

logger = logging.getLogger(__name__)

ARTIFACT_KIND = "item_index"
# Exact search below this many items; HNSW up to HNSW_MAX_ITEMS; IVF beyond.
FLAT_MAX_ITEMS = 50_000
HNSW_MAX_ITEMS = 2_000_000
# Search-time defaults per index family (FAISS ParameterSpace names).
DEFAULT_EF_SEARCH = 128
IVF_NPROBE_FRACTION = 1 / 16


def choose_index_spec(n_items: int, dim: int) -> str:
    """A FAISS factory string for ``n_items`` vectors of ``dim``: Flat, HNSW32 or IVF-Flat."""
    if n_items <= FLAT_MAX_ITEMS:
        return "Flat"
    if n_items <= HNSW_MAX_ITEMS:
        return "HNSW32"
    nlist = 1 << int(round(math.log2(4 * math.sqrt(n_items))))
    return f"IVF{nlist},Flat"


def _as_matrix(vectors: np.ndarray, *, name: str) -> np.ndarray:
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise SchemaError(f"{name} must have shape (n, d); got {matrix.shape}.")
    if not np.isfinite(matrix).all():
        bad = int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])
        raise SchemaError(f"{name} row {bad} holds NaN or inf; clean the vectors first.")
    return matrix


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


class ItemIndex:
    """A FAISS index over item vectors with the catalog ids beside it.

    Build with :func:`build_index`. :meth:`search` returns ``(scores, item_idx)`` like FAISS (higher
    score is better, ``-1`` pads); ``index.ids[item_idx]`` gives catalog ids.
    """

    def __init__(self, faiss_index: Any, ids: np.ndarray, vectors: np.ndarray, *, spec: str,
                 params: dict[str, Any]) -> None:
        self.faiss_index = faiss_index
        self.ids = np.asarray(ids, dtype=object)
        self.vectors = vectors
        self.spec = spec
        self.params = dict(params)
        self._id_index = pd.Index(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"ItemIndex({len(self)} items, dim={self.dim}, spec={self.spec!r}, params={self.params})"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Dense positions (int64) of catalog ids; unknown ids are a :class:`SchemaError`."""
        return positions_of(self._id_index, item_ids, what="index")

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude_idx: Sequence[Sequence[int] | np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per query row, skipping each row's ``exclude_idx`` (k is still honoured).

        Parameters
        ----------
        queries : ndarray, float32, shape (m, d)
        k : int
        exclude_idx : sequence of m int sequences, optional
            Item positions never returned for that query (e.g. already seen items).

        Returns
        -------
        scores : ndarray, float32, shape (m, k)
            Inner products, descending; ``-inf`` where fewer than ``k`` items remain.
        item_idx : ndarray, int64, shape (m, k)
            Item positions; ``-1`` pads. Ties are broken by lower position.
        """
        queries = _as_matrix(queries, name="queries")
        if queries.shape[1] != self.dim:
            raise SchemaError(f"queries have dim {queries.shape[1]}, the index has {self.dim}.")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}.")
        m, n = len(queries), len(self)
        empty = np.empty(0, dtype=np.int64)
        excluded = [empty] * m if exclude_idx is None else [_sorted_unique(e) for e in exclude_idx]
        if len(excluded) != m:
            raise SchemaError(f"exclude_idx has {len(excluded)} rows for {m} queries.")
        for row, positions in enumerate(excluded):
            if positions.size and (positions[0] < 0 or positions[-1] >= n):
                raise SchemaError(f"exclude_idx row {row} holds positions outside [0, {n}).")
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        item_idx = np.full((m, k), -1, dtype=np.int64)
        # Rows are bucketed by how far they must over-fetch (k + their exclusions, rounded up to a
        # power of two), so one user with a long history does not make every query fetch more.
        n_excluded = np.fromiter((len(e) for e in excluded), dtype=np.int64, count=m)
        buckets = np.ceil(np.log2(np.minimum(n, k + n_excluded))).astype(np.int64)
        for bucket in np.unique(buckets):
            rows = np.flatnonzero(buckets == bucket)
            self._search_rows(queries, rows, k, excluded, n_excluded, scores, item_idx,
                              fetch=min(n, 1 << int(bucket)))
        return scores, item_idx

    def _search_rows(
        self, queries: np.ndarray, rows: np.ndarray, k: int, excluded: list[np.ndarray],
        n_excluded: np.ndarray, scores: np.ndarray, item_idx: np.ndarray, *, fetch: int,
    ) -> None:
        """Fill ``scores``/``item_idx`` for ``rows``, doubling ``fetch`` for rows still short of k."""
        n = len(self)
        pending = rows
        while len(pending):
            raw_scores, raw_idx = self.faiss_index.search(queries[pending], fetch)
            excluded_keys = np.concatenate([q * n + excluded[q] for q in pending])
            valid = (raw_idx >= 0) & ~np.isin(pending[:, None] * n + raw_idx, excluded_keys)
            # order by score descending, then position ascending; invalid entries last
            order = np.lexsort((np.where(valid, raw_idx, n), -np.where(valid, raw_scores, -np.inf)),
                               axis=-1)[:, :k]
            width = order.shape[1]
            got = np.take_along_axis(valid, order, 1)
            needed = np.minimum(k, n - n_excluded[pending])
            done = (valid.sum(axis=1) >= needed) | (fetch >= n)
            finished = pending[done]
            scores[finished, :width] = np.where(
                got[done], np.take_along_axis(raw_scores, order, 1)[done], -np.inf)
            item_idx[finished, :width] = np.where(
                got[done], np.take_along_axis(raw_idx, order, 1)[done], -1)
            pending = pending[~done]
            fetch = min(n, fetch * 2)

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``index.faiss``, ids, vectors and a manifest atomically into folder ``path``."""
        import faiss
        from safetensors.numpy import save_file

        path = Path(path)
        cpu_index = self.faiss_index
        if hasattr(faiss, "index_gpu_to_cpu") and self.params.get("device") == "gpu":
            cpu_index = faiss.index_gpu_to_cpu(self.faiss_index)
        with atomic_directory(path) as tmp:
            faiss.write_index(cpu_index, str(tmp / "index.faiss"))
            save_file({"vectors": self.vectors}, str(tmp / "vectors.safetensors"))
            (tmp / "ids.json").write_text(json.dumps(self.ids.tolist()), "utf-8")
            write_manifest(tmp, ARTIFACT_KIND, {
                "spec": self.spec, "metric": "inner_product", "n_items": len(self),
                "dim": self.dim, "params": self.params,
            }, files=["index.faiss", "vectors.safetensors", "ids.json"])
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, use_gpu: bool | None = None) -> ItemIndex:
        """Load a folder written by :meth:`save` (checksums verified)."""
        import faiss
        from safetensors.numpy import load_file

        path = Path(path)
        manifest = read_manifest(path, ARTIFACT_KIND)
        faiss_index = faiss.read_index(str(path / "index.faiss"))
        vectors = load_file(str(path / "vectors.safetensors"))["vectors"]
        ids = np.asarray(json.loads((path / "ids.json").read_text("utf-8")), dtype=object)
        if faiss_index.ntotal != len(ids) or vectors.shape != (len(ids), manifest["dim"]):
            raise ArtifactError(f"{path}: index, ids and vectors disagree in size.")
        params = {k: v for k, v in manifest["params"].items() if k != "device"}
        faiss_index, device = _place(faiss_index, use_gpu)
        _apply_search_params(faiss_index, params)
        return cls(faiss_index, ids, vectors, spec=manifest["spec"], params=params | {"device": device})


def _sorted_unique(positions: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(positions, dtype=np.int64).ravel()
    if array.size < 2 or bool(np.all(array[1:] > array[:-1])):
        return array
    return np.unique(array)


def _place(faiss_index: Any, use_gpu: bool | None) -> tuple[Any, str]:
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if use_gpu and gpus == 0:
        raise ConfigError("use_gpu=True but FAISS sees no GPU; install the 'gpu' extra (faiss-gpu-cu12).")
    if (use_gpu is None and gpus > 0) or use_gpu:
        try:
            return faiss.index_cpu_to_all_gpus(faiss_index), "gpu"
        except RuntimeError as exc:  # e.g. HNSW has no GPU implementation
            logger.info("index stays on CPU (%s)", exc)
    return faiss_index, "cpu"


def _apply_search_params(faiss_index: Any, params: dict[str, Any]) -> None:
    import faiss

    space = faiss.ParameterSpace()
    for name in ("nprobe", "efSearch"):
        if name in params:
            space.set_index_parameter(faiss_index, name, params[name])


def build_index(
    items: ItemVectors | np.ndarray,
    *,
    ids: Sequence[str] | None = None,
    spec: str | None = None,
    use_gpu: bool | None = None,
    seed: int = 0,
) -> ItemIndex:
    """Build a FAISS inner-product index over L2-normalised item vectors.

    Parameters
    ----------
    items : ItemVectors or ndarray of shape (n, d)
        ``ItemVectors`` (its fused vectors and ids are used) or a matrix with ``ids``.
    ids : sequence of str, optional
        Item ids for a matrix (default ``"0"..."n-1"``).
    spec : str, optional
        FAISS factory string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,Flat"``, ``"IVF1024,PQ16"``...);
        by default :func:`choose_index_spec` picks by catalog size.
    use_gpu : bool, optional
        Default: on GPU when ``faiss.get_num_gpus() > 0`` and the index type supports it.
    seed : int
        Seed of k-means training and of the training sample.

    Returns
    -------
    ItemIndex
    """
    import faiss

    if isinstance(items, ItemVectors):
        if ids is not None:
            raise ConfigError("ids come from the ItemVectors; do not pass ids= with them.")
        matrix, ids_array = items.fused, items.ids
    else:
        matrix = _as_matrix(items, name="item vectors")
        ids_array = np.asarray([str(i) for i in (ids if ids is not None else range(len(matrix)))],
                               dtype=object)
        if len(ids_array) != len(matrix) or len(set(ids_array.tolist())) != len(ids_array):
            raise SchemaError(f"ids must be {len(matrix)} unique values, one per row.")
    if len(matrix) == 0:
        raise SchemaError("cannot build an index over zero items.")
    vectors = l2_normalize(_as_matrix(matrix, name="item vectors"))
    n, dim = vectors.shape
    spec = spec or choose_index_spec(n, dim)
    try:
        faiss_index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"invalid FAISS factory string {spec!r}: {exc}") from None
    params: dict[str, Any] = {}
    ivf = _ivf_of(faiss_index)
    if ivf is not None:
        ivf.cp.seed = seed
        params["nprobe"] = max(1, int(ivf.nlist * IVF_NPROBE_FRACTION))
    if "HNSW" in spec:
        params["efSearch"] = DEFAULT_EF_SEARCH
    if not faiss_index.is_trained:
        sample = vectors
        limit = 256 * (ivf.nlist if ivf is not None else 256)
        if n > limit:
            rng = np.random.default_rng(seed)
            sample = vectors[np.sort(rng.choice(n, size=limit, replace=False))]
        try:
            faiss_index.train(sample)
        except RuntimeError as exc:  # e.g. fewer training points than IVF lists
            raise ConfigError(
                f"cannot train index {spec!r} on {len(sample)} vectors: {exc}. Use fewer lists "
                "(e.g. 'IVF64,Flat'), or 'Flat' / 'HNSW32' for small catalogs."
            ) from None
    faiss_index.add(vectors)
    faiss_index, device = _place(faiss_index, use_gpu)
    _apply_search_params(faiss_index, params)
    logger.info("built %s index over %d items (dim %d) on %s", spec, n, dim, device)
    return ItemIndex(faiss_index, ids_array, vectors, spec=spec, params=params | {"device": device})


def _ivf_of(faiss_index: Any) -> Any | None:
    import faiss

    try:
        return faiss.extract_index_ivf(faiss_index)
    except RuntimeError:
        return None
