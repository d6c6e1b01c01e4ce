"""Learning-rate schedules: the rate's multiplier at a fraction of the run, and how far a run is.

``TrainConfig.lr_schedule`` names one of :data:`LR_FACTORS`; the training loop asks its
:class:`RunClock` how far through the run a step is and scales the configured rate by the factor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LR_FACTORS", "RunClock"]

# the learning rate's multiplier at a fraction (0 -> 1) of the run, given the floor it decays to
LR_FACTORS: dict[str, Callable[[float, float], float]] = {
    "constant": lambda fraction, floor: 1.0,
    "cosine": lambda fraction, floor: floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(fraction,
                                                                                                   1.0))),
}


@dataclass
class RunClock:
    """How far through its run a training is: the larger of the epochs' share (``epochs`` planned)
    and, with a ``budget_s``, the time's share since ``began`` — a schedule then ends where the
    time budget ends the run. ``by_time=False`` (several processes: each one's clock differs, and
    their learning rates must not) follows the epochs only."""

    epochs: int
    budget_s: float | None = None
    by_time: bool = True
    began: float = field(default_factory=lambda: time.perf_counter())

    def fraction(self, epoch: int, step: int, steps: int) -> float:
        by_epochs = (epoch + step / max(steps, 1)) / max(self.epochs, 1)
        if self.budget_s is None or not self.by_time:
            return by_epochs
        return max(by_epochs, (time.perf_counter() - self.began) / self.budget_s)
