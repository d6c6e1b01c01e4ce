"""Deterministic seeding with local generators."""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import torch

from mmrec.errors import ConfigError


def check_seed(seed: object, *, where: str) -> int:
    """``seed`` as an ``int``; anything but a non-negative integer is a :class:`ConfigError`."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"{where}: seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


@contextlib.contextmanager
def torch_seeded(seed: int = 0) -> Iterator[None]:
    """Run a block (e.g. model construction) under a fixed torch seed, restoring the global RNG after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
