"""ScaNN (tree + anisotropic 4-bit hashing + exact reordering) behind the calls :class:`ItemIndex`
makes of a FAISS index: ``search``, ``add_with_ids``, removal, search parameters, save and load.

ScaNN is an optional backend (``pip install "mmrec[scann]"``); the measured choice enters it as a
candidate when the package is installed. What it honours, and how:

- **search**: ``search_batched_parallel`` at this process's FAISS thread count (``search_batched``
  on the calling thread when that is one), ``leaves_to_search``
  tuned like ``nprobe``; scores are inner products after ScaNN's exact reordering.
- **add**: ScaNN's own updates need string document ids, whose conversion cost 45 % of a search's
  time here; added items go to an exact side table instead, searched by one matrix product and
  merged by score. Once it holds more than :data:`REBUILD_SHARE` of the tree's rows the caller
  rebuilds (:meth:`ItemIndex.retrain`).
- **remove**: rows of the side table are dropped; rows of the tree stay and are filtered out by
  the caller's alive mask (as FAISS HNSW does), like attribute filters (``allowed``), by
  over-fetching: ScaNN has no search-time filters.
- **save / load**: the searcher's folder, the label map and the side table in one zip file.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import ArtifactError, ConfigError, MissingDependencyError

__all__ = ["ScannIndex", "ScannSpec", "scann_available", "REBUILD_SHARE"]

# The side table of added items is folded into a rebuilt tree past this share of the tree's rows.
REBUILD_SHARE = 0.1
TRAINING_SAMPLE = 250_000
ZIP_MAGIC = b"PK\x03\x04"
ASSETS = "scann_assets.pbtxt"
_SPEC = re.compile(r"^ScaNN(\d+),AH(\d+),R(\d+)$")


def scann_available() -> bool:
    """Whether the ``scann`` package imports here."""
    try:
        import scann  # noqa: F401
    except ImportError:
        return False
    return True


def _scann() -> Any:
    try:
        import scann
    except ImportError as exc:
        raise MissingDependencyError(f"ScaNN is not installed: pip install 'mmrec[scann]' ({exc}).") from None
    return scann


@dataclass(frozen=True)
class ScannSpec:
    """``ScaNN{leaves},AH{dims per block},R{reorder}``: tree leaves, anisotropic hashing with that
    many dimensions per 4-bit block, and the exact reordering depth."""

    leaves: int
    dims_per_block: int = 2
    reorder: int = 100

    @classmethod
    def parse(cls, spec: str) -> ScannSpec:
        match = _SPEC.match(spec)
        if match is None:
            raise ConfigError(f"invalid ScaNN spec {spec!r}; expected e.g. 'ScaNN1024,AH2,R100'.")
        return cls(*(int(group) for group in match.groups()))

    def __str__(self) -> str:
        return f"ScaNN{self.leaves},AH{self.dims_per_block},R{self.reorder}"


def is_scann_spec(spec: str) -> bool:
    return spec.startswith("ScaNN")


class ScannIndex:
    """A ScaNN searcher over unit vectors with int64 labels, plus an exact table of added rows."""

    is_trained = True

    def __init__(self, searcher: Any, labels: np.ndarray, dim: int, spec: ScannSpec, *,
                 extra_vectors: np.ndarray | None = None, extra_labels: np.ndarray | None = None) -> None:
        self.searcher, self.spec, self.d = searcher, spec, int(dim)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.extra_vectors = (np.zeros((0, dim), np.float32) if extra_vectors is None
                              else np.asarray(extra_vectors, dtype=np.float32))
        self.extra_labels = (np.zeros(0, np.int64) if extra_labels is None
                             else np.asarray(extra_labels, dtype=np.int64))
        self.leaves_to_search = max(1, spec.leaves // 16)
        self._threads = 0  # the searcher's thread pool size, set on first search (and on change)

    @classmethod
    def build(cls, spec: str | ScannSpec, vectors: np.ndarray, labels: np.ndarray) -> ScannIndex:
        """A tree of ``spec.leaves`` leaves trained on (a sample of) ``vectors``; row i is ``labels[i]``.
        Not reproducible run to run: ScaNN seeds its k-means itself and takes no seed (two builds of
        200k vectors, one training thread or two, differ in 9 % of their top-10 entries)."""
        spec = ScannSpec.parse(spec) if isinstance(spec, str) else spec
        scann = _scann()
        data = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(data) < 2 * spec.leaves:
            raise ConfigError(f"ScaNN with {spec.leaves} leaves needs at least {2 * spec.leaves} items, "
                              f"got {len(data)}.")
        searcher = (scann.scann_ops_pybind.builder(data, 10, "dot_product")
                    .tree(num_leaves=spec.leaves, num_leaves_to_search=max(1, spec.leaves // 16),
                          training_sample_size=min(len(data), TRAINING_SAMPLE))
                    .score_ah(spec.dims_per_block, anisotropic_quantization_threshold=0.2)
                    .reorder(spec.reorder).build())
        return cls(searcher, labels, data.shape[1], spec)

    # ----------------------------------------------------------------------------- FAISS-like calls
    @property
    def ntotal(self) -> int:
        return len(self.labels) + len(self.extra_labels)

    @property
    def rebuild_due(self) -> bool:
        return len(self.extra_labels) > REBUILD_SHARE * len(self.labels)

    @property
    def nbytes(self) -> int:
        """The tree's data (vectors kept for reordering, 4-bit codes), labels and the side table."""
        n = len(self.labels)
        return int(n * self.d * 4 + n * self.d // (2 * self.spec.dims_per_block) + n * 8
                   + self.extra_vectors.nbytes + self.extra_labels.nbytes)

    def set_params(self, params: dict[str, Any]) -> None:
        if "leaves_to_search" in params:
            self.leaves_to_search = int(min(self.spec.leaves, max(1, params["leaves_to_search"])))

    def search(self, queries: np.ndarray, k: int, leaves_to_search: int | None = None, *,
               threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` ``(scores, labels)`` like FAISS (``-1`` / ``-inf`` pad), on ``threads`` threads
        (default: as many as the last search)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        m = len(queries)
        scores = np.full((m, k), -np.inf, dtype=np.float32)
        labels = np.full((m, k), -1, dtype=np.int64)
        if m == 0 or k <= 0:
            return scores, labels
        leaves = self.leaves_to_search if leaves_to_search is None else int(leaves_to_search)
        threads = int(threads or self._threads or 1)
        fetch = min(k, len(self.labels))
        knobs = {"final_num_neighbors": fetch, "pre_reorder_num_neighbors": max(self.spec.reorder, fetch),
                 "leaves_to_search": min(self.spec.leaves, max(1, leaves))}
        if threads == 1:  # on the calling thread: the pool (sized for the parallel calls) is kept
            rows, sims = self.searcher.search_batched(queries, **knobs)
        else:
            if threads != self._threads:  # (re)creating ScaNN's pool costs more than a small search
                self.searcher.set_num_threads(threads)
                self._threads = threads
            rows, sims = self.searcher.search_batched_parallel(queries, **knobs)
        rows = np.asarray(rows, dtype=np.int64)
        found = rows.shape[1]
        scores[:, :found] = np.asarray(sims, dtype=np.float32)
        labels[:, :found] = np.where(rows >= 0, self.labels[np.maximum(rows, 0)], -1)
        if len(self.extra_labels):
            scores, labels = _merge(scores, labels, queries @ self.extra_vectors.T, self.extra_labels, k)
        return scores, labels

    def add_with_ids(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        self.extra_vectors = np.concatenate([self.extra_vectors, np.asarray(vectors, dtype=np.float32)])
        self.extra_labels = np.concatenate([self.extra_labels, np.asarray(labels, dtype=np.int64)])

    def remove(self, labels: np.ndarray) -> None:
        """Drop added rows; the tree's rows stay (the caller's alive mask filters them)."""
        keep = ~np.isin(self.extra_labels, np.asarray(labels, dtype=np.int64))
        self.extra_vectors, self.extra_labels = self.extra_vectors[keep], self.extra_labels[keep]

    # ----------------------------------------------------------------------------- persistence
    def write(self, path: Path) -> None:
        """The searcher's folder, labels and side table as one zip file at ``path``."""
        with tempfile.TemporaryDirectory() as folder:
            self.searcher.serialize(folder)
            assets = Path(folder) / ASSETS
            # the asset list names absolute paths: kept as bare file names, re-rooted on read
            assets.write_text(assets.read_text("utf-8").replace(f'"{Path(folder).resolve()}/', '"')
                              .replace(f'"{folder}/', '"'), "utf-8")
            with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
                for file in sorted(Path(folder).iterdir()):
                    archive.write(file, f"searcher/{file.name}")
                for name, array in (("labels", self.labels), ("extra_vectors", self.extra_vectors),
                                    ("extra_labels", self.extra_labels)):
                    buffer = io.BytesIO()
                    np.save(buffer, array, allow_pickle=False)
                    archive.writestr(f"{name}.npy", buffer.getvalue())
                archive.writestr("spec.txt", f"{self.spec}\n{self.d}\n")

    @classmethod
    def read(cls, path: Path) -> ScannIndex:
        scann = _scann()
        try:
            with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as folder:
                spec_text, dim = archive.read("spec.txt").decode("ascii").split()
                arrays = {name: np.load(io.BytesIO(archive.read(f"{name}.npy")), allow_pickle=False)
                          for name in ("labels", "extra_vectors", "extra_labels")}
                members = [n for n in archive.namelist() if n.startswith("searcher/")]
                for name in members:
                    (Path(folder) / Path(name).name).write_bytes(archive.read(name))
                assets = Path(folder) / ASSETS
                rooted = re.sub(r'asset_path: "([^"/]+)"', lambda m: f'asset_path: "{folder}/{m[1]}"',
                                assets.read_text("utf-8"))
                assets.write_text(rooted, "utf-8")
                searcher = scann.scann_ops_pybind.load_searcher(folder)
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise ArtifactError(f"{path}: not a readable ScaNN index ({exc}).") from None
        return cls(searcher, arrays["labels"], int(dim), ScannSpec.parse(spec_text),
                   extra_vectors=arrays["extra_vectors"], extra_labels=arrays["extra_labels"])


def _merge(scores: np.ndarray, labels: np.ndarray, extra_scores: np.ndarray, extra_labels: np.ndarray,
           k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's top ``k`` of two result sets, by score (ties: lower label)."""
    all_scores = np.concatenate([scores, extra_scores.astype(np.float32)], axis=1)
    all_labels = np.concatenate([labels, np.broadcast_to(extra_labels, extra_scores.shape)], axis=1)
    order = np.lexsort((np.where(all_labels >= 0, all_labels, np.iinfo(np.int64).max), -all_scores),
                       axis=-1)[:, :k]
    return np.take_along_axis(all_scores, order, 1), np.take_along_axis(all_labels, order, 1)
