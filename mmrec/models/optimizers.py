"""The training optimizer: AdamW over the network, and — past a catalog size — lazy (sparse) Adam
over the per-item embedding tables.

A step touches the rows of the items in its batch and its sampled negatives: a few thousand of a
catalog's rows. Dense AdamW still walks the whole id embedding every step (its zero-filled
gradient, its two moments and the weights: ~1 GB of memory traffic per step at 1M items x 64
dims), so past ``SPARSE_ID_ITEMS`` items the step's cost grows with the catalog. Large-catalog
trainers (TensorFlow Recommenders' LazyAdam, TorchRec's fused row-wise optimizers) update only the
touched rows instead: the id embedding and the per-item rating bias produce sparse gradients
(``nn.Embedding(sparse=True)``) and :class:`torch.optim.SparseAdam` updates those rows' moments
and weights — the Adam rule for the rows a step touches, untouched rows' moments not decayed.
Below the threshold, with weight decay, or across several processes (sparse all-reduce is not
what DDP's buckets carry) the dense AdamW of before runs, unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["TrainOptimizer", "SPARSE_ID_ITEMS", "sparse_tables", "clip_grad_norm"]

SPARSE_ID_ITEMS = 50_000  # past this many items the per-item tables are updated lazily (auto)


def sparse_tables(net: nn.Module) -> list[nn.Embedding]:
    """The per-item embedding tables of ``net`` a sparse update applies to (id embedding, rating bias)."""
    return [module for name in ("id_embedding", "rating_bias")
            if isinstance(module := getattr(net, name, None), nn.Embedding)]


class TrainOptimizer:
    """AdamW (fused) over the dense parameters and, with ``sparse``, SparseAdam over the tables of
    :func:`sparse_tables` (which make sparse gradients inside :meth:`sparse_gradients`).
    ``state_dict`` / ``load_state_dict`` use one optimizer's layout — the sparse optimizer's
    parameters numbered after the dense ones — so checkpoints keep their format."""

    def __init__(self, net: nn.Module, *, lr: float, weight_decay: float, sparse: bool) -> None:
        self.lr = lr
        self.tables = sparse_tables(net) if sparse else []
        sparse_ids = {id(table.weight) for table in self.tables}
        dense = [p for p in net.parameters() if id(p) not in sparse_ids]
        self.dense = torch.optim.AdamW(dense, lr=lr, weight_decay=weight_decay, fused=True)
        self.sparse = torch.optim.SparseAdam([t.weight for t in self.tables], lr=lr) if self.tables else None

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.dense] + ([self.sparse] if self.sparse is not None else [])

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def scale_lr(self, factor: float) -> None:
        """Every group's learning rate set to ``factor`` x the configured one (a schedule's step)."""
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr * factor

    @contextmanager
    def sparse_gradients(self) -> Iterator[None]:
        """The tables make sparse gradients for the steps run inside; after, whatever happened,
        dense ones again (validation, inference and later fits see the usual modules)."""
        for table in self.tables:
            table.sparse = True
        try:
            yield
        finally:
            for table in self.tables:
                table.sparse = False

    def state_dict(self) -> dict[str, Any]:
        merged: dict[str, Any] = {"state": {}, "param_groups": []}
        offset = 0
        for optimizer in self.optimizers:
            state = optimizer.state_dict()
            merged["state"].update({offset + int(k): v for k, v in state["state"].items()})
            for group in state["param_groups"]:
                merged["param_groups"].append({**group, "params": [offset + p for p in group["params"]]})
            offset += sum(len(group["params"]) for group in state["param_groups"])
        return merged

    def load_state_dict(self, state: dict[str, Any]) -> None:
        offset, groups = 0, list(state["param_groups"])
        for optimizer in self.optimizers:
            own = [groups.pop(0) for _ in optimizer.param_groups]
            count = sum(len(group["params"]) for group in own)
            optimizer.load_state_dict({
                "state": {int(k) - offset: v for k, v in state["state"].items()
                          if offset <= int(k) < offset + count},
                "param_groups": [{**group, "params": [p - offset for p in group["params"]]}
                                 for group in own]})
            offset += count


def clip_grad_norm(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """:func:`torch.nn.utils.clip_grad_norm_` that also reads sparse gradients (their coalesced
    values): the same total 2-norm, every gradient scaled by the same factor when it is above."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not any(g.is_sparse for g in grads):  # the dense case: torch's own, exactly as before
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    squares = [(g.coalesce().values() if g.is_sparse else g).detach().float().pow(2).sum() for g in grads]
    total = torch.stack(squares).sum().sqrt()
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for grad in grads:
            grad.mul_(scale.to(grad.dtype))
    return total
