"""Sharded indexes: one FAISS index per shard of items, built and searched shard by shard, top-k merged.

A catalog larger than one machine's RAM is indexed one shard at a time (only that shard's vectors in
memory: rows are read from memory-mapped ``.npy`` or Parquet-sharded ItemVectors on demand) and
searched either with every shard resident or loading one shard at a time. Each shard is an
:class:`~mmrec.index.ItemIndex` (so filters, exclusions and re-ranking work per shard); the per-shard
top-k lists are merged by score, ties by lower label, exactly as one index over all items orders them.
A :class:`ShardedIndex` serves :func:`mmrec.recommend` like one index (:class:`~mmrec.index.ServingIndex`):
user profiles are summed shard by shard (:meth:`ShardedIndex.weighted_sum`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.validation import positions_of
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.index.build import _attribute_table, build_index
from mmrec.index.item_index import ItemIndex, search_arguments
from mmrec.utils.io import MANIFEST, atomic_directory, read_manifest, require_files, write_manifest
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["ShardedIndex", "build_sharded_index", "load_serving_index", "merge_topk"]

logger = logging.getLogger(__name__)

ARTIFACT_KIND = "sharded_index"


def merge_topk(scores: np.ndarray, labels: np.ndarray, k: int, *, higher_is_better: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard top-k lists concatenated along axis 1 into one top-``k`` per row.

    ``labels`` are global (``-1`` pads, dropped); ties are broken by lower label. With
    ``higher_is_better=False`` (distances, e.g. FAISS L2) the smallest scores win. Returns
    ``(scores, labels)`` of shape ``(m, k)`` padded with ``-inf`` / ``+inf`` and ``-1``.
    """
    scores = np.asarray(scores, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    worst = -np.inf if higher_is_better else np.inf
    key = np.where(labels >= 0, -scores if higher_is_better else scores, np.inf)
    tie = np.where(labels >= 0, labels, np.iinfo(np.int64).max)
    order = np.lexsort((tie, key), axis=-1)[:, :k]
    top_scores = np.take_along_axis(scores, order, 1)
    top_labels = np.take_along_axis(labels, order, 1)
    top_scores = np.where(top_labels >= 0, top_scores, worst).astype(np.float32)
    width = order.shape[1]
    out_scores = np.full((len(scores), k), worst, dtype=np.float32)
    out_labels = np.full((len(scores), k), -1, dtype=np.int64)
    out_scores[:, :width], out_labels[:, :width] = top_scores, top_labels
    return out_scores, out_labels


def _shard_bounds(n: int, n_shards: int | None, shard_size: int | None) -> list[tuple[int, int]]:
    if (n_shards is None) == (shard_size is None):
        raise ConfigError("give exactly one of n_shards= and shard_size=.")
    if n_shards is not None:
        if not 1 <= n_shards <= n:
            raise ConfigError(f"n_shards must be between 1 and the {n} items, got {n_shards}.")
        edges = np.linspace(0, n, n_shards + 1).round().astype(int)
    else:
        if shard_size < 1:
            raise ConfigError(f"shard_size must be >= 1, got {shard_size}.")
        edges = np.append(np.arange(0, n, shard_size), n)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def build_sharded_index(
    items: ItemVectors | np.ndarray | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    ids: Sequence[str] | None = None,
    n_shards: int | None = None,
    shard_size: int | None = None,
    spec: str | None = "Flat",
    attributes: Any = None,
    seed: int = 0,
    use_gpu: bool | None = False,
) -> ShardedIndex:
    """Build one index per consecutive shard of items, shard by shard, into the folder ``out``.

    Parameters
    ----------
    items : ItemVectors, ndarray (n, d) or path
        The fused vectors (an ItemVectors folder is opened memory-mapped / lazily); only one shard's
        rows are read at a time.
    out : path
        Folder of the result (``shard-00000/`` ... each an ItemIndex folder, and a manifest);
        written atomically.
    n_shards, shard_size : int
        Exactly one: how many shards, or how many items per shard.
    spec : str, optional
        FAISS factory string of every shard (``None``: each shard's own automatic choice).
    attributes : Catalog or DataFrame, optional
        Item attributes to filter on (``ShardedIndex.mask``), as :func:`mmrec.build_index` takes
        them; aligned with the ids once, each shard stores its rows.
    use_gpu : bool, optional
        Passed to each shard's :func:`mmrec.build_index` (default False: shards are saved anyway).
    """
    if isinstance(items, str | os.PathLike):
        items = ItemVectors.load(items, mmap=True)
    if isinstance(items, ItemVectors):
        if ids is not None:
            raise ConfigError("ids come from the ItemVectors; do not pass ids= with them.")
        vectors, all_ids = items.fused, items.ids
    else:
        vectors = items
        if not hasattr(vectors, "shape") or len(vectors.shape) != 2:
            raise SchemaError(f"item vectors must have shape (n, d); got {getattr(vectors, 'shape', None)}.")
        names = ids if ids is not None else range(len(vectors))
        all_ids = np.asarray([str(i) for i in names], dtype=object)
    n, dim = int(vectors.shape[0]), int(vectors.shape[1])
    if len(all_ids) != n or len(set(all_ids.tolist())) != n:
        raise SchemaError(f"ids must be {n} unique values, one per row.")
    bounds = _shard_bounds(n, n_shards, shard_size)
    table = _attribute_table(attributes, all_ids)
    shards = []
    with atomic_directory(out) as folder:
        for number, (start, stop) in enumerate(bounds):
            block = np.asarray(vectors[start:stop], dtype=np.float32)  # this shard only
            index = build_index(block, ids=all_ids[start:stop].tolist(), spec=spec, seed=seed,
                                use_gpu=use_gpu)
            if table is not None:
                index.attributes = table.iloc[start:stop].reset_index(drop=True)
            name = f"shard-{number:05d}"
            index.save(folder / name)
            shards.append({"dir": name, "start": start, "stop": stop, "spec": index.spec})
            logger.info("shard %d/%d: items %d..%d, %s", number + 1, len(bounds), start, stop, index.spec)
            del block, index
        manifest_files = [f"{s['dir']}/manifest.json" for s in shards]
        write_manifest(folder, ARTIFACT_KIND, {"n_items": n, "dim": dim, "shards": shards,
                                                    "attributes": table is not None}, manifest_files)
    return ShardedIndex.load(out)


class ShardedIndex:
    """Shards of an index searched as one: same ``search`` contract as :class:`ItemIndex`.

    ``resident=True`` keeps every shard's index loaded; ``resident=False`` loads one shard at a time
    per search (exact vectors memory-mapped), so memory holds one shard, whatever the catalog size.
    ``loads`` counts shard loads. Read-only: rebuild to change items. It serves
    :func:`mmrec.recommend` and :func:`mmrec.recommend_batches` as one index would; with
    ``resident=False`` each of :meth:`mask`, :meth:`weighted_sum` and :meth:`search` loads the shards
    it needs one at a time.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], *, resident: bool, use_gpu: bool | None,
                 verify: bool) -> None:
        self.path = path
        self.shards: list[dict[str, Any]] = list(manifest["shards"])
        self.dim = int(manifest["dim"])
        self.resident = resident
        self.use_gpu = use_gpu
        self.verify = verify
        self.loads = 0
        self.has_attributes = bool(manifest.get("attributes", False))
        ids, alive = [], []
        self._loaded = [self._load(i) for i in range(len(self.shards))] if resident else None
        for number, shard in enumerate(self.shards):  # ids and alive masks (small), checked first
            folder, rows = path / shard["dir"], shard["stop"] - shard["start"]
            shard_ids, shard_alive = ((self._loaded[number].ids, self._loaded[number].alive)
                                      if self._loaded is not None
                                      else ItemIndex.read_labels(folder, verify=verify))
            if len(shard_ids) != rows or shard_alive.shape != (rows,):
                raise ArtifactError(f"{folder}: {len(shard_ids)} ids and {shard_alive.shape} alive flags "
                                    f"for {rows} rows; rebuild the sharded index.")
            ids.extend(shard_ids)
            alive.append(shard_alive.astype(bool))
        self.ids = np.asarray(ids, dtype=object)
        self.alive = np.concatenate(alive)
        labels = np.flatnonzero(self.alive)
        self._lookup, self._lookup_labels = pd.Index(self.ids[labels], dtype=object), labels.astype(np.int64)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, resident: bool = True, use_gpu: bool | None = False,
             verify: bool = True) -> ShardedIndex:
        """Open a folder written by :func:`build_sharded_index` (shards loaded now if ``resident``)."""
        path = Path(path)
        manifest = read_manifest(path, ARTIFACT_KIND, verify=verify)
        require_files(path, manifest, [f"{s['dir']}/manifest.json" for s in manifest["shards"]])
        return cls(path, manifest, resident=resident, use_gpu=use_gpu, verify=verify)

    def _load(self, number: int) -> ItemIndex:
        self.loads += 1
        return ItemIndex.load(self.path / self.shards[number]["dir"], use_gpu=self.use_gpu, mmap=True,
                              verify=self.verify)

    def shard(self, number: int) -> ItemIndex:
        """Shard ``number`` (loaded now unless resident)."""
        return self._loaded[number] if self._loaded is not None else self._load(number)

    def __len__(self) -> int:
        return int(self.alive.sum())

    def __repr__(self) -> str:
        mode = "resident" if self.resident else "one shard at a time"
        return f"ShardedIndex({len(self)} items, {len(self.shards)} shards, dim={self.dim}, {mode})"

    @property
    def n_labels(self) -> int:
        """Labels over all shards (global label = shard start + the shard's own label)."""
        return len(self.ids)

    @property
    def item_ids(self) -> np.ndarray:
        """Ids of the items in the index (alive in their shard)."""
        return self.ids[self.alive]

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Global labels (int64) of ``item_ids``; an unknown id is a :class:`SchemaError`."""
        return self._lookup_labels[positions_of(self._lookup, item_ids, what="sharded index")]

    def _bounds(self) -> list[tuple[int, int, int]]:
        return [(number, int(s["start"]), int(s["stop"])) for number, s in enumerate(self.shards)]

    def mask(self, where: Mapping[str, Any]) -> np.ndarray:
        """Global labels whose attributes match ``where`` (as :meth:`ItemIndex.mask`), shard by shard."""
        if not self.has_attributes:
            raise ConfigError(f"{self.path}: this sharded index has no attributes; rebuild it with "
                              "build_sharded_index(..., attributes=catalog) (or `mmrec index --shards N "
                              "--catalog FILE`) to filter on them.")
        # one shard loaded at a time unless resident
        return np.concatenate([self.shard(number).mask(where) for number, _, _ in self._bounds()])

    def weighted_sum(self, weights: Any) -> np.ndarray:
        """``weights @ vectors`` without one matrix of all vectors: per shard, the weights' columns
        of that shard times its vectors (only the rows with a weight are read; a shard no weight
        touches is not loaded), summed in float64. ``weights``: scipy sparse (m, ``n_labels``)."""
        from scipy.sparse import csc_matrix

        if weights.shape[1] != self.n_labels:
            raise SchemaError(f"weights have {weights.shape[1]} columns, the index {self.n_labels} labels.")
        weights = csc_matrix(weights)
        total = np.zeros((weights.shape[0], self.dim), dtype=np.float64)
        for number, start, stop in self._bounds():
            part = weights[:, start:stop]
            columns = np.flatnonzero(np.diff(part.indptr))  # local labels with a weight
            if columns.size:
                rows = np.asarray(self.shard(number).vectors[columns], dtype=np.float32)
                total += np.asarray(part[:, columns] @ rows, dtype=np.float64)
        return total

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude_idx: Sequence[Sequence[int] | np.ndarray] | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` global labels per query, as :meth:`ItemIndex.search` (``exclude_idx`` and
        ``allowed`` in global labels): each shard's top-k under its part of the filters, merged."""
        queries, k, excluded, allowed = search_arguments(queries, k, exclude_idx, allowed,
                                                         dim=self.dim, n_labels=self.n_labels)
        all_scores, all_labels = [], []
        for number, start, stop in self._bounds():
            local_excluded = None if exclude_idx is None else [
                e[(e >= start) & (e < stop)] - start for e in excluded]
            index = self.shard(number)
            scores, labels = index.search(queries, k, exclude_idx=local_excluded,
                                          allowed=None if allowed is None else allowed[start:stop])
            all_scores.append(scores)
            all_labels.append(np.where(labels >= 0, labels + start, -1))
            del index
        return merge_topk(np.concatenate(all_scores, axis=1), np.concatenate(all_labels, axis=1), k)


def load_serving_index(path: str | os.PathLike[str], *, resident: bool = True) -> ItemIndex | ShardedIndex:
    """Open an index folder for serving: a :class:`ShardedIndex` when its manifest's format says
    ``sharded_index`` (``resident`` as in :meth:`ShardedIndex.load`), else an :class:`ItemIndex`."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):  # missing or unreadable: ItemIndex.load says what is wrong
        manifest = None
    if isinstance(manifest, dict) and manifest.get("format") == ARTIFACT_KIND:
        return ShardedIndex.load(path, resident=resident)
    return ItemIndex.load(path)
