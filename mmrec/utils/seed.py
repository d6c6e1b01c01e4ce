"""Deterministic seeding with local generators."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


def numpy_rng(seed: int = 0) -> np.random.Generator:
    """A local NumPy generator; never touches the global state."""
    return np.random.default_rng(seed)


@contextlib.contextmanager
def torch_seeded(seed: int = 0) -> Iterator[None]:
    """Run a block (e.g. model construction) under a fixed torch seed, restoring the global RNG after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
