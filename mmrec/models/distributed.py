"""Data-parallel training across processes (``torchrun``): who this process is and what it shares.

A :class:`Collective` is what the training loop asks of the other processes: the rows of every
process's positives (so each step's sampled-softmax candidates — the in-batch negatives — are the
whole global batch's, as with one process), global sums (so every loss is normalised by the global
batch, not the local one) and rank 0's validation metric (so every process stops at the same epoch).
One process gets :class:`SingleProcess`, where each of these is the identity; under ``torchrun``
:func:`collective` returns a :class:`ProcessGroup` over ``torch.distributed`` (gloo on CPU, nccl on
CUDA). Gradients are averaged by :class:`torch.nn.parallel.DistributedDataParallel`, not here.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist

from mmrec.errors import ConfigError

__all__ = ["Collective", "SingleProcess", "ProcessGroup", "collective", "launched_by_torchrun",
           "process_group_from_env", "is_main_process", "shard_of_batch",
           "local_device"]


class Collective:
    """What one process of a training run shares with the others (base: a single process)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, validates and saves results."""
        return self.rank == 0

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every process's ``rows`` (1-D int64), concatenated in rank order."""
        return rows

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the processes."""
        return values

    def from_main(self, value: float) -> float:
        """Rank 0's ``value`` on every process."""
        return value

    def barrier(self) -> None:
        """Wait until every process is here."""


class SingleProcess(Collective):
    """Training in this process alone."""


class ProcessGroup(Collective):
    """The default ``torch.distributed`` process group; tensors travel on ``device``."""

    def __init__(self, rank: int, world_size: int, device: torch.device) -> None:
        self.rank, self.world_size, self.device = rank, world_size, device

    def __repr__(self) -> str:
        return f"ProcessGroup(rank={self.rank}, world_size={self.world_size}, device={self.device})"

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        count = torch.tensor([rows.numel()], dtype=torch.int64, device=self.device)
        counts = [torch.zeros_like(count) for _ in range(self.world_size)]
        dist.all_gather(counts, count)
        longest = int(max(int(c) for c in counts))
        padded = torch.zeros(longest, dtype=rows.dtype, device=self.device)
        padded[: rows.numel()] = rows.to(self.device)
        pieces = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(pieces, padded)
        return torch.cat([piece[: int(c)] for piece, c in zip(pieces, counts, strict=True)])

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        total = values.detach().to(self.device).clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.to(values.device)

    def from_main(self, value: float) -> float:
        box = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(box, src=0)
        return float(box.item())

    def barrier(self) -> None:
        dist.barrier()


def launched_by_torchrun() -> bool:
    """Whether the environment names more than one process (``WORLD_SIZE`` > 1, as torchrun sets)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    """False on every process but rank 0 of an initialised process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun with CUDA each process takes GPU ``LOCAL_RANK``; otherwise ``device`` as is."""
    if device.type == "cuda" and device.index is None and dist.is_available() and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def collective(device: torch.device) -> Collective:
    """The running process group when one is initialised (of any size), else this process alone."""
    if not (dist.is_available() and dist.is_initialized()):
        return SingleProcess()
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ConfigError("the process group uses nccl, which needs CUDA tensors; train with "
                          "device='cuda' or start the group with backend 'gloo'.")
    return ProcessGroup(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


@contextlib.contextmanager
def process_group_from_env(device: str = "auto", timeout_minutes: float = 30.0) -> Iterator[Collective]:
    """Join the process group torchrun describes in the environment (nccl when CUDA is used, gloo
    otherwise) for the block, and leave it after; a no-op when this is the only process."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield collective(torch.device("cpu"))
        return
    if not dist.is_available():
        raise ConfigError("torch was built without torch.distributed; run one process.")
    use_cuda = torch.cuda.is_available() and device not in ("cpu",)
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes))
    try:
        yield collective(torch.device("cuda", torch.cuda.current_device()) if use_cuda
                         else torch.device("cpu"))
    finally:
        dist.destroy_process_group()


def shard_of_batch(rows: np.ndarray, group: Collective) -> np.ndarray:
    """This process's share of one global batch: every ``world_size``-th window from its rank on
    (as :class:`torch.utils.data.DistributedSampler` strides), so the processes' shares together
    are exactly the batch one process would take."""
    return rows[group.rank :: group.world_size]
