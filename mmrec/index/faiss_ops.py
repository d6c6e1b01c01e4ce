"""Thin FAISS helpers: search with selectors and tuned parameters, add/remove by label, placement,
I/O. FAISS is imported lazily, in one place."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import ConfigError, MissingDependencyError
from mmrec.index.scann_backend import ZIP_MAGIC, ScannIndex

logger = logging.getLogger(__name__)

# Search-time parameters this module applies, by FAISS ParameterSpace name (``k_factor_rf``: how
# many candidates per result a refine stage re-scores exactly).
SEARCH_PARAMS = ("nprobe", "efSearch", "k_factor_rf")


# Distributions that install the `faiss` package (only one may be present).
FAISS_DISTRIBUTIONS = ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu12-cuvs",
                       "faiss-gpu-cu13", "faiss-gpu-cu13-cuvs")


def installed_faiss_distributions() -> list[str]:
    """``name==version`` of every installed distribution that ships the ``faiss`` package (each
    looked up by name: scanning every installed distribution's metadata cost ~0.25 s a process)."""
    found = set()
    for name in FAISS_DISTRIBUTIONS:
        try:
            found.add(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return sorted(found)


@functools.cache
def faiss() -> Any:
    """The ``faiss`` module; a clear error naming the extras when it is missing, and a warning when
    two FAISS distributions share the environment (each overwrites the other's files)."""
    try:
        import faiss as _faiss
    except ImportError as exc:
        raise MissingDependencyError(
            "FAISS is not installed. Install exactly one build: pip install 'mmrec[cpu]' (faiss-cpu) "
            f"or 'mmrec[gpu]' (faiss-gpu-cu12). ({exc})") from None
    found = installed_faiss_distributions()
    if len(found) > 1:
        logger.warning("%d FAISS distributions are installed (%s); they overwrite each other's `faiss` "
                       "package. Keep one: pip uninstall -y %s, then pip install --force-reinstall "
                       "'mmrec[cpu]' or 'mmrec[gpu]'.", len(found), ", ".join(found),
                       " ".join(name.split("==")[0] for name in found))
    return _faiss


@contextmanager
def threads(count: int) -> Iterator[None]:
    """FAISS searches inside run on ``count`` OpenMP threads (ScaNN's follow FAISS's setting); the
    process's setting comes back after."""
    f = faiss()
    before = f.omp_get_max_threads()
    f.omp_set_num_threads(int(count))
    try:
        yield
    finally:
        f.omp_set_num_threads(before)


def ivf_of(index: Any) -> Any | None:
    """The IVF part of an index (also inside IDMap / GPU wrappers), or None."""
    if isinstance(index, ScannIndex):
        return None
    try:
        return faiss().extract_index_ivf(index)
    except RuntimeError:
        return None


def hnsw_of(index: Any) -> Any | None:
    f = faiss()
    base = f.downcast_index(index.index) if isinstance(index, f.IndexIDMap) else index
    return base if isinstance(base, f.IndexHNSW) else None


def refine_of(index: Any) -> Any | None:
    """The refine wrapper (``...,RFlat``: codes re-scored by exact vectors), or None."""
    f = faiss()
    base = f.downcast_index(index.index) if isinstance(index, f.IndexIDMap) else index
    return base if isinstance(base, f.IndexRefine) else None


def numbers_rows_itself(index: Any) -> bool:
    """HNSW and refine indices take rows in order (no ``add_with_ids``, no physical removal)."""
    f = faiss()
    return not isinstance(index, f.IndexIDMap) and (hnsw_of(index) is not None
                                                    or refine_of(index) is not None)


def needs_id_map(spec: str) -> bool:
    """Flat and PQ indices renumber on removal, so they are wrapped in IDMap2; IVF stores ids
    itself; HNSW cannot remove (removed items are filtered at search time instead)."""
    return "IVF" not in spec and "HNSW" not in spec


@dataclass
class BitmapSelector:
    """A FAISS IDSelectorBitmap over labels, holding the bitmap it points to."""

    bits: np.ndarray
    selector: Any


def bitmap_selector(mask: np.ndarray) -> BitmapSelector:
    bits = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
    return BitmapSelector(bits, faiss().IDSelectorBitmap(len(mask), faiss().swig_ptr(bits)))


def ivf_lists_of(index: Any) -> int:
    """Number of IVF lists (0 for other index types)."""
    ivf = ivf_of(index)
    return 0 if ivf is None else int(ivf.nlist)


def search(index: Any, queries: np.ndarray, k: int, *, selector: BitmapSelector | None,
           params: dict[str, Any], overrides: dict[str, Any] | None = None,
           ) -> tuple[np.ndarray, np.ndarray]:
    """``index.search``; with a selector or per-call ``overrides`` (e.g. a larger nprobe), through
    the right SearchParameters (carrying nprobe / efSearch, which such an object would reset).
    A ScaNN index has no search-time filter: it returns unfiltered results, which the caller
    filters by its mask (over-fetching as it does for exclusions)."""
    if isinstance(index, ScannIndex):
        return index.search(queries, k, (overrides or {}).get("leaves_to_search"),
                            threads=faiss().omp_get_max_threads())
    if selector is None and not overrides:
        return index.search(queries, k)
    f = faiss()
    values = dict(params) | dict(overrides or {})
    sel = None if selector is None else selector.selector
    if ivf_of(index) is not None:
        search_params = f.SearchParametersIVF(sel=sel, nprobe=int(values.get("nprobe", 1)))
    elif hnsw_of(index) is not None:
        search_params = f.SearchParametersHNSW(sel=sel, efSearch=int(values.get("efSearch", 16)))
    else:
        search_params = f.SearchParameters(sel=sel)
    if refine_of(index) is not None:  # the refine stage takes its own parameters around the base's
        search_params = f.IndexRefineSearchParameters(
            k_factor=float(values.get("k_factor_rf", 1)), base_index_params=search_params, sel=sel)
    return index.search(queries, k, params=search_params)


def add(index: Any, vectors: np.ndarray, labels: np.ndarray) -> None:
    """Add rows with their labels (HNSW and refine indices number rows themselves; labels are
    appended in order)."""
    if numbers_rows_itself(index):
        if index.ntotal != labels[0]:
            raise ConfigError("index labels out of step with the index; rebuild it.")
        index.add(vectors)
    else:
        index.add_with_ids(vectors, labels)


def remove(index: Any, labels: np.ndarray) -> None:
    """Physically remove labels where the index type allows it (HNSW and refine indices do not; the
    caller's alive mask keeps removed items out of every result either way)."""
    if isinstance(index, ScannIndex):
        index.remove(np.asarray(labels, dtype=np.int64))
        return
    if numbers_rows_itself(index):
        return
    try:
        index.remove_ids(faiss().IDSelectorBatch(np.asarray(labels, dtype=np.int64)))
    except RuntimeError as exc:  # e.g. a GPU index
        logger.info("remove_ids unsupported here (%s); items are filtered at search time", exc)


def apply_params(index: Any, params: dict[str, Any]) -> None:
    """Set nprobe / efSearch (ScaNN: leaves_to_search) on the index from ``params``."""
    if isinstance(index, ScannIndex):
        index.set_params(params)
        return
    space = faiss().ParameterSpace()
    for name in SEARCH_PARAMS:
        if name in params:
            space.set_index_parameter(index, name, params[name])


def ivf_residual(index: Any, vectors: np.ndarray) -> float:
    """Mean ``1 - similarity`` of unit vectors to their nearest IVF centroid."""
    ivf = ivf_of(index)
    if ivf is None or len(vectors) == 0:
        return 0.0
    similarity, _ = ivf.quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
    return float(np.mean(1.0 - similarity[:, 0]))


def place(index: Any, use_gpu: bool | None) -> tuple[Any, str]:
    """Move to the GPU(s) when asked or when FAISS sees one (sharded across several)."""
    f = faiss()
    if isinstance(index, ScannIndex):
        if use_gpu:
            raise ConfigError("use_gpu=True: a ScaNN index runs on the CPU; build a FAISS one (spec=...).")
        return index, "cpu"
    gpus = f.get_num_gpus() if hasattr(f, "get_num_gpus") else 0
    if use_gpu and gpus == 0:
        raise ConfigError("use_gpu=True but FAISS sees no GPU; install the 'gpu' extra (faiss-gpu-cu12).")
    if use_gpu or (use_gpu is None and gpus > 0):
        try:
            options = f.GpuMultipleClonerOptions()
            options.shard = gpus > 1
            return f.index_cpu_to_all_gpus(index, co=options), "gpu"
        except (RuntimeError, AttributeError) as exc:  # e.g. HNSW has no GPU implementation
            logger.info("index stays on CPU (%s)", exc)
    return index, "cpu"


def write(index: Any, path: Path) -> None:
    if isinstance(index, ScannIndex):
        index.write(path)
        return
    f = faiss()
    if hasattr(f, "index_gpu_to_cpu"):
        try:
            index = f.index_gpu_to_cpu(index)
        except (RuntimeError, AttributeError):
            pass  # already a CPU index
    f.write_index(index, str(path))


def read(path: Path) -> Any:
    with open(path, "rb") as handle:
        if handle.read(4) == ZIP_MAGIC:  # a ScaNN index (FAISS files start otherwise)
            return ScannIndex.read(path)
    return faiss().read_index(str(path))


def index_bytes(index: Any) -> int:
    """Bytes of the index's serialised form (a GPU index: its CPU copy; ScaNN: its estimate)."""
    if isinstance(index, ScannIndex):
        return index.nbytes
    f = faiss()
    try:
        return int(f.serialize_index(index).nbytes)
    except (RuntimeError, AttributeError):
        return int(f.serialize_index(f.index_gpu_to_cpu(index)).nbytes)


def rebuild_due(index: Any) -> bool:
    """Whether the index asks to be rebuilt (a ScaNN index whose table of added rows grew)."""
    return isinstance(index, ScannIndex) and index.rebuild_due
