"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[..., Any], *args: Any, repeat: int = 1, **kwargs: Any) -> tuple[float, Any]:
    """Best-of-``repeat`` seconds of ``fn(*args, **kwargs)`` and its last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def interleaved(first: Callable[[], Any], second: Callable[[], Any], rounds: int = 3
                ) -> tuple[float, float, Any, Any]:
    """Best-of-``rounds`` seconds of two callables run alternately (fair under drifting load)."""
    best = [float("inf"), float("inf")]
    results: list[Any] = [None, None]
    for _ in range(rounds):
        for k, fn in enumerate((first, second)):
            seconds, results[k] = timed(fn)
            best[k] = min(best[k], seconds)
    return best[0], best[1], results[0], results[1]
