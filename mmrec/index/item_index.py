"""ItemIndex: a FAISS index over item vectors with catalog ids, incremental updates and filters."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mmrec.index.faiss_ops as faiss_ops
from mmrec.data.validation import positions_of, positive_int
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.index.arrays import as_matrix, l2_normalize
from mmrec.index.fill import train_and_fill
from mmrec.utils.io import atomic_directory, load_npy, read_manifest, write_manifest

__all__ = ["ItemIndex", "attribute_mask"]

logger = logging.getLogger(__name__)

ARTIFACT_KIND = "item_index"
FORMAT_VERSION = 1  # bump when the folder layout changes; load reads 1..FORMAT_VERSION
# Filters that leave at most this many items (or this share of them) are searched exactly.
EXACT_FILTER_ITEMS = 20_000
EXACT_FILTER_SHARE = 0.02
# IVF lists are retrained when vectors added since training sit this much farther from their
# centroids than the training data did (and make up at least DRIFT_MIN_SHARE of the index).
DRIFT_RATIO = 1.5
DRIFT_MIN_SHARE = 0.1


def search_arguments(queries: np.ndarray, k: int, exclude_idx: Sequence[Sequence[int] | np.ndarray] | None,
                     allowed: np.ndarray | None, *, dim: int, n_labels: int
                     ) -> tuple[np.ndarray, int, list[np.ndarray], np.ndarray | None]:
    """A search's arguments checked: float32 ``(m, dim)`` queries, ``k`` capped at the labels (no
    result can fill a column beyond them), each query's excluded labels sorted, unique and within
    ``[0, n_labels)``, and ``allowed`` as a bool mask of the labels (or None)."""
    queries = as_matrix(queries, name="queries")
    if queries.shape[1] != dim:
        raise SchemaError(f"queries have dim {queries.shape[1]}, the index has {dim}.")
    m, n = len(queries), n_labels
    k = min(positive_int(k, name="k"), n)
    if exclude_idx is None:  # nothing to check (a row loop here was ~7 % of a fast IVF search)
        excluded = [np.empty(0, dtype=np.int64)] * m
    else:
        excluded = [_sorted_unique(e) for e in exclude_idx]
        if len(excluded) != m:
            raise SchemaError(f"exclude_idx has {len(excluded)} rows for {m} queries.")
        for row, labels in enumerate(excluded):
            if labels.size and (labels[0] < 0 or labels[-1] >= n):
                raise SchemaError(f"exclude_idx row {row} holds positions outside [0, {n}).")
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (n,):
            raise SchemaError(f"allowed must be a bool mask of {n} labels, got {allowed.shape}.")
    return queries, k, excluded, allowed


def attribute_mask(attributes: pd.DataFrame, where: Mapping[str, Any]) -> np.ndarray:
    """Rows of ``attributes`` matching ``where``: each column equals the value or is one of the list
    (``{"category": ["shoes", "bags"], "available": True}``), as a bool array."""
    keep = np.ones(len(attributes), dtype=bool)
    for column, wanted in where.items():
        if column not in attributes.columns:
            raise SchemaError(f"filter column {column!r} is not an index attribute; "
                              f"attributes: {list(attributes.columns)}.")
        values = attributes[column]
        allowed = list(wanted) if isinstance(wanted, list | tuple | set) else [wanted]
        try:
            matches = values.isin(allowed).to_numpy(dtype=bool)
        except (TypeError, ValueError, OverflowError):  # e.g. an int beyond int64, a dict
            matches = np.fromiter((any(_same(v, a) for a in allowed) for v in values.tolist()),
                                  dtype=bool, count=len(values))
        keep &= matches
    return keep


class ItemIndex:
    """A FAISS inner-product index over unit item vectors, with the catalog ids beside it.

    Build with :func:`mmrec.build_index`. Internally every vector has a *label* (its row in
    ``vectors`` and ``ids``, append-only); removed items keep their row but are never returned.
    :meth:`search` returns ``(scores, labels)`` like FAISS (higher is better, ``-1`` pads);
    ``index.ids[labels]`` gives catalog ids. :meth:`add`, :meth:`update` and :meth:`remove` change
    the catalog without a rebuild.
    """

    def __init__(
        self,
        faiss_index: Any,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        spec: str,
        params: dict[str, Any],
        alive: np.ndarray | None = None,
        attributes: pd.DataFrame | None = None,
    ) -> None:
        self.faiss_index = faiss_index
        self.ids = np.asarray(ids, dtype=object)
        self.vectors = vectors
        self.spec = spec
        self.params = dict(params)
        self.alive = np.ones(len(self.ids), bool) if alive is None else np.asarray(alive, bool).copy()
        self.attributes = attributes
        self._lookup: pd.Index | None = None

    # ----------------------------------------------------------------------------- basics
    def __len__(self) -> int:
        return int(self.alive.sum())

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.params.items() if k != "tuning"}
        return f"ItemIndex({len(self)} items, dim={self.dim}, spec={self.spec!r}, params={shown})"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def n_labels(self) -> int:
        """Rows ever added (alive or removed)."""
        return len(self.ids)

    @property
    def item_ids(self) -> np.ndarray:
        """Ids of the items currently in the index."""
        return self.ids[self.alive]

    def _id_lookup(self) -> pd.Index:
        if self._lookup is None:
            labels = np.flatnonzero(self.alive)
            self._lookup = pd.Index(self.ids[labels], dtype=object)
            self._lookup_labels = labels.astype(np.int64)
        return self._lookup

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Labels (int64) of catalog ids in the index; unknown or removed ids are a SchemaError."""
        found = positions_of(self._id_lookup(), item_ids, what="index")  # builds _lookup_labels
        return self._lookup_labels[found]

    def contains(self, item_ids: Sequence[str]) -> np.ndarray:
        """Bool per id: is it in the index now."""
        return self._id_lookup().get_indexer(pd.Index([str(i) for i in item_ids], dtype=object)) >= 0

    def weighted_sum(self, weights: Any) -> np.ndarray:
        """``weights @ vectors``: per row of a (m, ``n_labels``) scipy sparse weight matrix, the
        weighted sum of item vectors, shape (m, ``dim``) — the user profiles of recommend."""
        if weights.shape[1] != self.n_labels:
            raise SchemaError(f"weights have {weights.shape[1]} columns, the index {self.n_labels} labels.")
        return weights @ self.vectors

    # ----------------------------------------------------------------------------- filters
    def mask(self, where: Mapping[str, Any]) -> np.ndarray:
        """Labels whose attributes match ``where`` (``{"category": ["shoes", "bags"],
        "available": True}``: each column equals the value or is one of the list), as a bool array."""
        if self.attributes is None:
            raise ConfigError("this index has no attributes; build it with attributes=catalog "
                              "(or a DataFrame with an id column) to filter on them.")
        return self.alive & attribute_mask(self.attributes, where)

    # ----------------------------------------------------------------------------- search
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude_idx: Sequence[Sequence[int] | np.ndarray] | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` labels per query row, skipping each row's ``exclude_idx`` and keeping only
        ``allowed`` labels (a bool mask, e.g. from :meth:`mask`); k is honoured while enough items
        remain.

        Returns
        -------
        scores : ndarray, float32, shape (m, min(k, n_labels))
            Inner products, descending; ``-inf`` where fewer than ``k`` items remain.
        labels : ndarray, int64, shape (m, min(k, n_labels))
            ``-1`` pads. Ties are broken by lower label.
        """
        queries, k, excluded, allowed = search_arguments(queries, k, exclude_idx, allowed,
                                                         dim=self.dim, n_labels=self.n_labels)
        m, n = len(queries), self.n_labels
        usable = self.alive if allowed is None else (self.alive & allowed)
        n_usable = int(usable.sum())
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        labels = np.full((m, k), -1, dtype=np.int64)
        if n_usable == 0 or m == 0:
            return scores, labels
        if allowed is not None and n_usable <= max(EXACT_FILTER_ITEMS, EXACT_FILTER_SHARE * n):
            self._exact(queries, np.arange(m), k, excluded, usable, scores, labels)
            return scores, labels
        rows = np.arange(m)
        if exclude_idx is None and n_usable == n and int(self.params.get("rerank", 1)) == 1:
            # plain queries: one FAISS call; only rows it could not fill take the general path
            raw_scores, raw_labels = faiss_ops.search(self.faiss_index, queries, min(k, n),
                                                      selector=None, params=self.params)
            # results come sorted; only rows with ties (or pads) are re-sorted, ties to the lower label
            messy = np.flatnonzero((raw_scores[:, 1:] >= raw_scores[:, :-1]).any(axis=1))
            if messy.size:
                part_scores, part_labels = raw_scores[messy], raw_labels[messy]
                order = np.lexsort((np.where(part_labels >= 0, part_labels, n), -part_scores), axis=-1)
                raw_scores[messy] = np.take_along_axis(part_scores, order, 1)
                raw_labels[messy] = np.take_along_axis(part_labels, order, 1)
            missing = raw_labels < 0
            raw_scores[missing] = -np.inf
            width = raw_scores.shape[1]
            if width == k:  # FAISS's own arrays are the result
                scores, labels = raw_scores, raw_labels
            else:
                scores[:, :width], labels[:, :width] = raw_scores, raw_labels
            rows = np.flatnonzero(missing[:, : min(k, n_usable)].any(axis=1))
            if rows.size == 0:
                return scores, labels
        selector = None if n_usable == n else faiss_ops.bitmap_selector(usable)
        # Rows are bucketed by how far they must over-fetch (k + their exclusions, rounded up to a
        # power of two), so one user with a long history does not make every query fetch more.
        n_excluded = np.fromiter((len(e) for e in excluded), dtype=np.int64, count=m)
        buckets = np.ceil(np.log2(np.minimum(n_usable, k + n_excluded))).astype(np.int64)
        short: list[int] = []
        for bucket in np.unique(buckets[rows]):
            group = rows[buckets[rows] == bucket]
            fetch = int(min(n, k + n_excluded[group].max()))
            short += self._search_rows(queries, group, k, excluded, n_excluded, usable, n_usable,
                                       selector, scores, labels, fetch=fetch)
        if short:  # the ANN index ran dry (e.g. a graph under a filter): finish those rows exactly
            self._exact(queries, np.asarray(short), k, excluded, usable, scores, labels)
        return scores, labels

    def _search_rows(
        self, queries: np.ndarray, rows: np.ndarray, k: int, excluded: list[np.ndarray],
        n_excluded: np.ndarray, usable: np.ndarray, n_usable: int, selector: Any,
        scores: np.ndarray, labels: np.ndarray, *, fetch: int,
    ) -> list[int]:
        """Fill ``rows``; returns the rows FAISS could not fill (left for the exact fallback).

        A row short of k because exclusions ate its results is searched again with twice the
        ``fetch``; a row for which FAISS itself ran dry (fewer hits than asked: too few IVF lists
        probed) is searched again with twice the ``nprobe``.
        """
        n = self.n_labels
        rerank = int(self.params.get("rerank", 1))
        nlist = faiss_ops.ivf_lists_of(self.faiss_index)
        nprobe = int(self.params.get("nprobe", 1))
        groups = [(rows, fetch, nprobe)]
        short: list[int] = []
        while groups:
            pending, fetch, probe = groups.pop()
            wanted = min(n, fetch * rerank)
            overrides = {"nprobe": probe} if nlist and probe != nprobe else None
            raw_scores, raw_labels = faiss_ops.search(self.faiss_index, queries[pending], wanted,
                                                      selector=selector, params=self.params,
                                                      overrides=overrides)
            if rerank > 1:
                raw_scores = self.exact_scores(queries[pending], raw_labels)
            returned = (raw_labels >= 0).sum(axis=1)
            excluded_keys = np.concatenate([q * n + excluded[q] for q in pending])
            valid = (raw_labels >= 0) & ~np.isin(pending[:, None] * n + raw_labels, excluded_keys)
            valid[valid] &= usable[raw_labels[valid]]
            order = np.lexsort((np.where(valid, raw_labels, n),
                                -np.where(valid, raw_scores, -np.inf)), axis=-1)[:, :k]
            width = order.shape[1]
            got = np.take_along_axis(valid, order, 1)
            needed = np.minimum(k, n_usable - n_excluded[pending])
            enough = valid.sum(axis=1) >= needed
            dry = ~enough & (returned < np.minimum(wanted, n_usable))
            can_probe = bool(nlist) and probe < nlist
            widen = ~enough & ~dry & (fetch < n)
            deeper = dry & can_probe
            done = ~(widen | deeper)
            finished = pending[done]
            scores[finished, :width] = np.where(
                got[done], np.take_along_axis(raw_scores, order, 1)[done], -np.inf)
            labels[finished, :width] = np.where(
                got[done], np.take_along_axis(raw_labels, order, 1)[done], -1)
            short += pending[done & ~enough].tolist()
            if widen.any():
                groups.append((pending[widen], min(n, fetch * 2), probe))
            if deeper.any():
                groups.append((pending[deeper], fetch, min(nlist, probe * 2)))
        return short

    def exact_scores(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Exact inner products of each query with its candidate labels (-inf for -1)."""
        safe = np.where(candidates >= 0, candidates, 0)
        exact = np.einsum("qd,qcd->qc", queries, np.asarray(self.vectors[safe.ravel()]).reshape(
            *safe.shape, self.dim)).astype(np.float32)
        return np.where(candidates >= 0, exact, -np.inf).astype(np.float32)

    def _exact(self, queries: np.ndarray, rows: np.ndarray, k: int, excluded: list[np.ndarray],
               usable: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        """Brute force over the usable labels (for narrow filters and as a fallback)."""
        candidates = np.flatnonzero(usable)
        block = np.asarray(self.vectors[candidates], dtype=np.float32)
        for start in range(0, len(rows), 256):
            chunk = rows[start : start + 256]
            sims = queries[chunk] @ block.T
            for j, q in enumerate(chunk):
                row = sims[j]
                if excluded[q].size:
                    row = np.where(np.isin(candidates, excluded[q]), -np.inf, row)
                order = np.lexsort((candidates, -row))[:k]
                order = order[np.isfinite(row[order])]
                scores[q] = -np.inf
                labels[q] = -1
                scores[q, : len(order)] = row[order]
                labels[q, : len(order)] = candidates[order]

    # ----------------------------------------------------------------------------- updates
    def add(self, item_ids: Sequence[str], vectors: np.ndarray, *,
            attributes: pd.DataFrame | None = None) -> np.ndarray:
        """Add new items (ids not in the index); returns their labels. No rebuild: IVF lists are
        retrained only when the added data has drifted away from the trained centroids."""
        ids, matrix = self._checked_rows(item_ids, vectors)
        present = self.contains(ids)
        if present.any():
            raise SchemaError(f"add: item {ids[int(np.flatnonzero(present)[0])]!r} is already in the "
                              "index; use update() to replace its vector.")
        labels = np.arange(self.n_labels, self.n_labels + len(ids), dtype=np.int64)
        faiss_ops.add(self.faiss_index, matrix, labels)
        self.vectors = np.concatenate([np.asarray(self.vectors), matrix])
        self.ids = np.concatenate([self.ids, ids])
        self.alive = np.concatenate([self.alive, np.ones(len(ids), bool)])
        if self.attributes is not None:
            extra = pd.DataFrame(index=range(len(ids)), columns=self.attributes.columns)
            if attributes is not None:
                extra = attributes.reset_index(drop=True).reindex(columns=self.attributes.columns)
            self.attributes = pd.concat([self.attributes, extra], ignore_index=True)
        self._lookup = None
        if faiss_ops.rebuild_due(self.faiss_index):  # e.g. ScaNN's table of added rows grew
            self.retrain()
        else:
            self._track_drift(matrix)
        return labels

    def _checked_rows(self, item_ids: Sequence[str], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ids as ``str`` and unit float32 vectors, checked: one finite row of the index's dim per
        unique id."""
        ids = np.asarray([str(i) for i in item_ids], dtype=object)
        matrix = l2_normalize(as_matrix(vectors, name="vectors"))
        if len(ids) != len(matrix):
            raise SchemaError(f"{len(ids)} ids for {len(matrix)} vectors.")
        if matrix.shape[1] != self.dim:
            raise SchemaError(f"vectors have dim {matrix.shape[1]}, the index has {self.dim}.")
        if len(set(ids.tolist())) != len(ids):
            raise SchemaError("add: item ids must be unique.")
        return ids, matrix

    def remove(self, item_ids: Sequence[str]) -> None:
        """Remove items by id (physically where FAISS supports it, else never returned again)."""
        labels = self.positions(item_ids)
        faiss_ops.remove(self.faiss_index, labels)
        self.alive[labels] = False
        self._lookup = None

    def update(self, item_ids: Sequence[str], vectors: np.ndarray, *,
               attributes: pd.DataFrame | None = None) -> np.ndarray:
        """Replace the vectors of existing items; returns their new labels. Checked before anything
        changes: bad vectors leave the old ones in place."""
        self._checked_rows(item_ids, vectors)
        old = self.positions(item_ids)
        if attributes is None and self.attributes is not None:
            attributes = self.attributes.iloc[old]
        self.remove(item_ids)
        return self.add(item_ids, vectors, attributes=attributes)

    def _track_drift(self, added: np.ndarray) -> None:
        baseline = self.params.get("train_residual")
        if baseline is None:
            return
        residual = faiss_ops.ivf_residual(self.faiss_index, added)
        count = self.params.get("added_since_training", 0) + len(added)
        total = self.params.get("added_residual_sum", 0.0) + residual * len(added)
        self.params["added_since_training"], self.params["added_residual_sum"] = count, total
        drifted = total / count > DRIFT_RATIO * baseline
        if drifted and count >= DRIFT_MIN_SHARE * len(self):
            logger.info("added vectors drifted (residual %.3f vs %.3f at training): retraining IVF",
                        total / count, baseline)
            self.retrain()

    def retrain(self) -> None:
        """Retrain the IVF quantizer on the current items and re-add them (labels are kept; indices
        that number rows themselves get every label back, removed ones masked as before)."""
        labels = (np.arange(self.n_labels, dtype=np.int64) if faiss_ops.numbers_rows_itself(self.faiss_index)
                  else np.flatnonzero(self.alive))
        self.faiss_index, trained = train_and_fill(self.spec, self.dim, self.vectors, labels,
                                                   seed=int(self.params.get("seed", 0)))
        self.params.update(trained)
        self.params["retrains"] = int(self.params.get("retrains", 0)) + 1
        self.params.pop("added_since_training", None)
        self.params.pop("added_residual_sum", None)

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``index.faiss``, vectors (``.npy``), ids, alive mask, attributes and a manifest."""
        path = Path(path)
        with atomic_directory(path) as tmp:
            faiss_ops.write(self.faiss_index, tmp / "index.faiss")
            np.save(tmp / "vectors.npy", np.asarray(self.vectors), allow_pickle=False)
            np.save(tmp / "alive.npy", self.alive, allow_pickle=False)
            (tmp / "ids.json").write_text(json.dumps(self.ids.tolist()), "utf-8")
            files = ["index.faiss", "vectors.npy", "alive.npy", "ids.json"]
            if self.attributes is not None:
                self.attributes.to_parquet(tmp / "attributes.parquet", index=False)
                files.append("attributes.parquet")
            write_manifest(tmp, ARTIFACT_KIND, version=FORMAT_VERSION, payload={
                "spec": self.spec, "metric": "inner_product", "n_items": len(self),
                "n_labels": self.n_labels, "dim": self.dim,
                "params": {k: v for k, v in self.params.items() if k != "device"},
            }, files=files)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, use_gpu: bool | None = None,
             mmap: bool = False, verify: bool = True) -> ItemIndex:
        """Load a folder written by :meth:`save`, every file checked against the manifest first (a
        missing, truncated or modified file is an :class:`ArtifactError`). ``mmap=True`` leaves the
        exact vectors on disk (memory-mapped); ``verify=False`` skips the SHA-256 checksums (file
        sizes are still checked) for multi-GB indexes you trust."""
        path = Path(path)
        manifest, ids, alive = cls._checked_labels(path, verify)
        faiss_index = faiss_ops.read(path / "index.faiss")
        vectors = load_npy(path / "vectors.npy", mmap=mmap)
        if vectors.shape != (len(ids), manifest["dim"]):
            raise ArtifactError(f"{path}: vectors, ids and alive mask disagree in size.")
        attributes = (pd.read_parquet(path / "attributes.parquet")
                      if "attributes.parquet" in manifest["files"] else None)
        faiss_index, device = faiss_ops.place(faiss_index, use_gpu)
        params = dict(manifest["params"]) | {"device": device}
        faiss_ops.apply_params(faiss_index, params)
        return cls(faiss_index, ids, vectors, spec=manifest["spec"], params=params, alive=alive,
                   attributes=attributes)


    @staticmethod
    def read_labels(path: str | os.PathLike[str], *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The item ids and alive mask of a folder written by :meth:`save`, after the same manifest
        check as :meth:`load`, without reading the FAISS index or the vectors."""
        _, ids, alive = ItemIndex._checked_labels(Path(path), verify)
        return ids, alive

    @staticmethod
    def _checked_labels(path: Path, verify: bool) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        manifest = read_manifest(path, ARTIFACT_KIND, version=FORMAT_VERSION, verify=verify,
                                 require=["index.faiss", "vectors.npy", "alive.npy", "ids.json"])
        alive = load_npy(path / "alive.npy")
        ids = np.asarray(json.loads((path / "ids.json").read_text("utf-8")), dtype=object)
        if alive.shape != (len(ids),):
            raise ArtifactError(f"{path}: vectors, ids and alive mask disagree in size.")
        return manifest, ids, alive


def _same(value: Any, wanted: Any) -> bool:
    """``value == wanted`` as a bool, False where the two cannot be compared."""
    try:
        return bool(value == wanted)
    except (TypeError, ValueError):
        return False


def _sorted_unique(positions: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(positions, dtype=np.int64).ravel()
    if array.size < 2 or bool(np.all(array[1:] > array[:-1])):
        return array
    return np.unique(array)
