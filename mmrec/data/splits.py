"""Train / validation / test splits of a behaviour log that never leak the future into training.

Every split orders each user's events by ``(timestamp, row order)``: rows with equal timestamps keep
the order they were given in, so a log sorted by a tie-breaking key (MovieLens: movie id) splits the
way the reference numbers of that dataset do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.errors import ConfigError, SchemaError

__all__ = ["Split", "leave_last_out", "time_split", "chronological_order"]


@dataclass(frozen=True)
class Split:
    """Three disjoint parts of one behaviour log (``valid`` and ``test`` may be empty)."""

    train: Interactions
    valid: Interactions
    test: Interactions
    kind: str

    def __repr__(self) -> str:
        return (f"Split({self.kind}: train={len(self.train)}, valid={len(self.valid)}, "
                f"test={len(self.test)} events)")


def chronological_order(frame: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by ``(user, timestamp, original row)``; NaN timestamps keep row order."""
    if frame["timestamp"].isna().any() and not frame["timestamp"].isna().all():
        users = frame.loc[frame["timestamp"].isna(), "user"].iloc[0]
        raise SchemaError(
            f"interactions: some events of user {users!r} (and maybe others) have no timestamp while "
            "others do; a chronological split needs a timestamp on every event or on none.")
    keys = pd.DataFrame({
        "user": pd.Categorical(frame["user"], categories=pd.unique(frame["user"])).codes,
        "timestamp": frame["timestamp"].fillna(0.0).to_numpy(),
        "row": np.arange(len(frame)),
    })
    return keys.sort_values(["user", "timestamp", "row"], kind="stable").index.to_numpy()


def _part(frame: pd.DataFrame, rows: np.ndarray) -> Interactions:
    return Interactions(frame.iloc[np.sort(rows)].reset_index(drop=True))


def leave_last_out(events: Interactions, *, n_test: int = 1, n_valid: int = 1,
                   min_train: int = 1) -> Split:
    """Per user, the last ``n_test`` events are test, the ``n_valid`` before them validation.

    Users with fewer than ``min_train + n_valid + n_test`` events stay wholly in training (they
    still shape the model, they are just not evaluated). Row order is kept inside each part.
    """
    for name, value in (("n_test", n_test), ("n_valid", n_valid)):
        if value < 0:
            raise ConfigError(f"leave_last_out: {name} must be >= 0, got {value}.")
    if min_train < 1:
        raise ConfigError(f"leave_last_out: min_train must be >= 1, got {min_train}.")
    frame = events.frame
    order = chronological_order(frame)
    users = frame["user"].to_numpy(dtype=object)[order]
    from_end = pd.Series(users).groupby(users, sort=False).cumcount(ascending=False).to_numpy()
    length = pd.Series(users).groupby(users, sort=False).transform("size").to_numpy()
    evaluated = length >= min_train + n_valid + n_test
    test = evaluated & (from_end < n_test)
    valid = evaluated & (from_end >= n_test) & (from_end < n_test + n_valid)
    train = ~(test | valid)
    return Split(_part(frame, order[train]), _part(frame, order[valid]), _part(frame, order[test]),
                 kind=f"leave_last_out(n_test={n_test}, n_valid={n_valid})")


def time_split(events: Interactions, *, valid_fraction: float = 0.1, test_fraction: float = 0.1,
               valid_start: float | None = None, test_start: float | None = None) -> Split:
    """One global time line: events before ``valid_start`` train, then validation, then test.

    The boundaries default to the time quantiles that leave ``valid_fraction`` and
    ``test_fraction`` of the events in the later parts.
    """
    frame = events.frame
    times = frame["timestamp"].to_numpy(np.float64)
    if len(times) == 0 or np.isnan(times).any():
        raise SchemaError("time_split: every event needs a timestamp (some are missing).")
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ConfigError("time_split: fractions must be in [0, 1) and sum to less than 1, got "
                          f"valid_fraction={valid_fraction}, test_fraction={test_fraction}.")
    if test_start is None:
        test_start = float(np.quantile(times, 1 - test_fraction)) if test_fraction else np.inf
    if valid_start is None:
        valid_start = (float(np.quantile(times, 1 - test_fraction - valid_fraction))
                       if valid_fraction else test_start)
    if valid_start > test_start:
        raise ConfigError(f"time_split: valid_start {valid_start} is after test_start {test_start}.")
    rows = np.arange(len(frame))
    return Split(_part(frame, rows[times < valid_start]),
                 _part(frame, rows[(times >= valid_start) & (times < test_start)]),
                 _part(frame, rows[times >= test_start]),
                 kind=f"time_split(valid_start={valid_start}, test_start={test_start})")
