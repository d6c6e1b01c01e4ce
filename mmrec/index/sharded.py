"""Sharded indexes: one FAISS index per shard of items, built and searched shard by shard, top-k merged.

A catalog larger than one machine's RAM is indexed one shard at a time (only that shard's vectors in
memory: rows are read from memory-mapped ``.npy`` or Parquet-sharded ItemVectors on demand) and
searched either with every shard resident or loading one shard at a time. Each shard is an
:class:`~mmrec.index.ItemIndex` (so filters, exclusions and re-ranking work per shard); the per-shard
top-k lists are merged by score, ties by lower label, exactly as one index over all items orders them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.validation import positions_of
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.index.build import build_index
from mmrec.index.item_index import ItemIndex, as_matrix
from mmrec.item_vectors import ItemVectors
from mmrec.utils.io import atomic_directory, read_manifest, require_files, write_manifest

__all__ = ["ShardedIndex", "build_sharded_index", "merge_topk"]

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
    shards = []
    with atomic_directory(out) as folder:
        for number, (start, stop) in enumerate(bounds):
            block = np.asarray(vectors[start:stop], dtype=np.float32)  # this shard only
            index = build_index(block, ids=all_ids[start:stop].tolist(), spec=spec, seed=seed,
                                use_gpu=use_gpu)
            name = f"shard-{number:05d}"
            index.save(folder / name)
            shards.append({"dir": name, "start": start, "stop": stop, "spec": index.spec})
            logger.info("shard %d/%d: items %d..%d, %s", number + 1, len(bounds), start, stop, index.spec)
            del block, index
        manifest_files = [f"{s['dir']}/manifest.json" for s in shards]
        write_manifest(folder, ARTIFACT_KIND, {"n_items": n, "dim": dim, "shards": shards}, manifest_files)
    return ShardedIndex.load(out)


class ShardedIndex:
    """Shards of an index searched as one: same ``search`` contract as :class:`ItemIndex`.

    ``resident=True`` keeps every shard's index loaded; ``resident=False`` loads one shard at a time
    per search (exact vectors memory-mapped), so memory holds one shard, whatever the catalog size.
    ``loads`` counts shard loads. Read-only: rebuild to change items.
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
        self._starts = np.asarray([s["start"] for s in self.shards] + [int(manifest["n_items"])], np.int64)
        ids = []
        for shard in self.shards:
            shard_ids = json.loads((path / shard["dir"] / "ids.json").read_text("utf-8"))
            if len(shard_ids) != shard["stop"] - shard["start"]:
                raise ArtifactError(f"{path / shard['dir']}: {len(shard_ids)} ids for "
                                    f"{shard['stop'] - shard['start']} rows; rebuild the sharded index.")
            ids.extend(shard_ids)
        self.ids = np.asarray(ids, dtype=object)
        self._lookup = pd.Index(self.ids)
        self._loaded = [self._load(i) for i in range(len(self.shards))] if resident else None

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
        return len(self.ids)

    def __repr__(self) -> str:
        mode = "resident" if self.resident else "one shard at a time"
        return f"ShardedIndex({len(self)} items, {len(self.shards)} shards, dim={self.dim}, {mode})"

    @property
    def n_labels(self) -> int:
        return len(self.ids)

    @property
    def item_ids(self) -> np.ndarray:
        return self.ids

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Global labels (int64) of ``item_ids``; an unknown id is a :class:`SchemaError`."""
        return positions_of(self._lookup, item_ids, what="sharded index")

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
        queries = as_matrix(queries, name="queries")
        if queries.shape[1] != self.dim:
            raise SchemaError(f"queries have dim {queries.shape[1]}, the index has {self.dim}.")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}.")
        m, n = len(queries), self.n_labels
        if exclude_idx is not None and len(exclude_idx) != m:
            raise SchemaError(f"exclude_idx has {len(exclude_idx)} rows for {m} queries.")
        excluded = (None if exclude_idx is None
                    else [np.asarray(e, dtype=np.int64).ravel() for e in exclude_idx])
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (n,):
                raise SchemaError(f"allowed must be a bool mask of {n} labels, got {allowed.shape}.")
        all_scores, all_labels = [], []
        for number, shard in enumerate(self.shards):
            start, stop = int(shard["start"]), int(shard["stop"])
            local_excluded = None if excluded is None else [
                e[(e >= start) & (e < stop)] - start for e in excluded]
            index = self.shard(number)
            scores, labels = index.search(queries, k, exclude_idx=local_excluded,
                                          allowed=None if allowed is None else allowed[start:stop])
            all_scores.append(scores)
            all_labels.append(np.where(labels >= 0, labels + start, -1))
            del index
        return merge_topk(np.concatenate(all_scores, axis=1), np.concatenate(all_labels, axis=1), k)
