"""Which FAISS index to build: by catalog size, dimension and memory budget."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

__all__ = ["IndexPlan", "plan_index", "choose_index_spec", "FLAT_MAX_ITEMS", "HNSW_MAX_ITEMS"]

# Exact search up to this many items (a brute-force scan is fast and recall is 1).
FLAT_MAX_ITEMS = 50_000
# HNSW up to this many items (its build is the slowest; beyond it IVF trains and adds faster).
HNSW_MAX_ITEMS = 500_000
# Shortlist factor when compressed (PQ) codes are re-ranked by exact inner product.
PQ_RERANK = 4


@dataclass(frozen=True)
class IndexPlan:
    """A FAISS factory string, the re-ranking factor (1 = none) and why it was chosen."""

    spec: str
    rerank: int = 1
    reason: str = ""


def default_memory_budget() -> int:
    """Half of this machine's physical memory, in bytes."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2)
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def ivf_lists(n_items: int) -> int:
    """Number of IVF lists: the power of two nearest 4·sqrt(n), between 64 and 65,536."""
    return int(min(65_536, max(64, 1 << int(round(math.log2(4 * math.sqrt(max(n_items, 1))))))))


def pq_subquantizers(dim: int) -> int:
    """PQ sub-quantizers: the largest divisor of ``dim`` giving at least 2 dims per code byte."""
    return next(m for m in (64, 48, 32, 24, 16, 12, 8, 4, 2, 1) if dim % m == 0 and dim // m >= 2)


def plan_index(n_items: int, dim: int, *, memory_budget: int | None = None) -> IndexPlan:
    """Flat for small catalogs; HNSW or IVF-Flat in the middle; IVF-PQ with exact re-ranking of the
    shortlist when full vectors would not fit the memory budget (they are then read from disk)."""
    budget = memory_budget or default_memory_budget()
    vector_bytes = n_items * dim * 4
    if n_items <= FLAT_MAX_ITEMS:
        return IndexPlan("Flat", reason=f"{n_items} <= {FLAT_MAX_ITEMS} items: exact search")
    if n_items <= HNSW_MAX_ITEMS and vector_bytes * 1.5 <= budget:
        return IndexPlan("HNSW32", reason=f"{n_items} items: graph index, vectors fit in memory")
    nlist = ivf_lists(n_items)
    if vector_bytes * 1.2 <= budget:
        return IndexPlan(f"IVF{nlist},Flat", reason=f"{n_items} items: inverted lists, vectors fit")
    m = pq_subquantizers(dim)
    return IndexPlan(f"IVF{nlist},PQ{m}", rerank=PQ_RERANK,
                     reason=f"{vector_bytes / 2**30:.1f} GiB of vectors exceed the "
                            f"{budget / 2**30:.1f} GiB budget: PQ codes, shortlist re-ranked exactly")


def choose_index_spec(n_items: int, dim: int, *, memory_budget: int | None = None) -> str:
    """The FAISS factory string :func:`plan_index` picks."""
    return plan_index(n_items, dim, memory_budget=memory_budget).spec
