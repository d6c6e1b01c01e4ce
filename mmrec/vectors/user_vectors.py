"""UserVectors: the interest vectors of users, one row per user id."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["UserVectors"]


@dataclass(frozen=True)
class UserVectors:
    """Interest vectors of users: ``vectors[i]`` (float32, L2-normalised) belongs to ``user_ids[i]``.

    ``has_signal[i]`` is False when the user's weighted history cancels out or is empty (the vector
    is then zero and a fallback should be used).
    """

    user_ids: np.ndarray
    vectors: np.ndarray
    has_signal: np.ndarray
