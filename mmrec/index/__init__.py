"""Retrieval: FAISS indices over item vectors, chosen by size and memory, tuned to a recall target,
updated incrementally, filtered at query time, saved atomically."""

from mmrec.index.arrays import l2_normalize
from mmrec.index.build import build_index
from mmrec.index.choice import (
    FLAT_MAX_ITEMS,
    HNSW_MAX_ITEMS,
    IndexPlan,
    choose_index_spec,
    plan_index,
)
from mmrec.index.item_index import ItemIndex
from mmrec.index.protocol import ServingIndex
from mmrec.index.tuning import recall_at_k, tune

__all__ = [
    "build_index",
    "ItemIndex",
    "ServingIndex",
    "IndexPlan",
    "plan_index",
    "choose_index_spec",
    "tune",
    "recall_at_k",
    "l2_normalize",
    "FLAT_MAX_ITEMS",
    "HNSW_MAX_ITEMS",
]
