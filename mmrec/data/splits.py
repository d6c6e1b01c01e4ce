"""Train / validation / test splits of a behaviour log that never leak the future into training.

Every split orders each user's events by ``(timestamp, row order)``: rows with equal timestamps keep
the order they were given in, so a log sorted by a tie-breaking key (MovieLens: movie id) splits the
way the reference numbers of that dataset do.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions, as_interactions, first_appearance
from mmrec.errors import ConfigError, SchemaError
from mmrec.registry import Registry
from mmrec.utils.seed import check_seed

__all__ = ["Split", "leave_last_out", "time_split", "random_split", "cold_item_split", "cold_user_split",
           "chronological_order", "chronological_rows", "SPLITS", "make_split"]


@dataclass(frozen=True)
class Split:
    """Disjoint parts of one behaviour log (``valid`` and ``test`` may be empty).

    ``given`` holds events that are neither trained on nor predicted but may be read at
    recommendation time: the first events of cold users (a cold-user split). Models never train on
    it; :attr:`history` (everything a recommender may look at when predicting ``test``) includes it.
    """

    train: Interactions
    valid: Interactions
    test: Interactions
    kind: str
    given: Interactions | None = None

    def __repr__(self) -> str:
        given = f", given={len(self.given)}" if self.given is not None else ""
        return (f"Split({self.kind}: train={len(self.train)}, valid={len(self.valid)}, "
                f"test={len(self.test)}{given} events)")

    @property
    def history(self) -> Interactions:
        """Train + validation (+ given) events: what a model may read to predict ``test``."""
        parts = [self.train.frame, self.valid.frame]
        if self.given is not None:
            parts.append(self.given.frame)
        return Interactions(pd.concat(parts, ignore_index=True))


def _check_timestamps(timestamps: np.ndarray, user_at: Callable[[int], Any]) -> None:
    """A chronological split needs a timestamp on every event or on none (``user_at(row)``: the
    user of a row, to name one whose timestamp is missing)."""
    missing = np.isnan(timestamps)
    if missing.any() and not missing.all():
        raise SchemaError(
            f"interactions: some events of user {user_at(int(np.flatnonzero(missing)[0]))!r} (and maybe "
            "others) have no timestamp while others do; a chronological split needs a timestamp on "
            "every event or on none.")


def _runs(grouped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For values whose equal entries are consecutive (a user's events together): each entry's
    position inside its run and the run's length."""
    starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
    lengths = np.diff(np.r_[starts, len(grouped)])
    return np.arange(len(grouped)) - np.repeat(starts, lengths), np.repeat(lengths, lengths)


def chronological_order(frame: pd.DataFrame) -> np.ndarray:
    """Row positions sorted by ``(user, timestamp, original row)``; NaN timestamps keep row order."""
    timestamps = frame["timestamp"].to_numpy(np.float64)
    _check_timestamps(timestamps, lambda row: frame["user"].iloc[row])
    return chronological_rows(pd.factorize(frame["user"], sort=False)[0], timestamps)


def chronological_rows(user_codes: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Row positions sorted by ``(user's first appearance, timestamp, row)`` for per-event user
    codes (any numbering) and timestamps (NaN as 0: rows then keep their order)."""
    _, rank = first_appearance(user_codes, int(user_codes.max(initial=-1)) + 1)
    # lexsort: the last key is the primary one; stable, so equal keys keep row order
    return np.lexsort((np.nan_to_num(timestamps, nan=0.0), rank[user_codes]))


def _part(frame: pd.DataFrame, rows: np.ndarray) -> Interactions:
    return Interactions(frame.iloc[np.sort(rows)].reset_index(drop=True))


def _rows_of(events: Interactions, rows: np.ndarray) -> Interactions:
    """The events at ``rows`` (any order), in log order, codes kept."""
    keep = np.zeros(len(events), dtype=bool)
    keep[rows] = True
    return events.select(keep)


def leave_last_out(events: Interactions | pd.DataFrame, *, n_test: int = 1, n_valid: int = 1,
                   min_train: int = 1) -> Split:
    """Per user, the last ``n_test`` events are test, the ``n_valid`` before them validation.

    Users with fewer than ``min_train + n_valid + n_test`` events stay wholly in training (they
    still shape the model, they are just not evaluated). Row order is kept inside each part.
    """
    events = as_interactions(events, caller="leave_last_out")
    for name, value in (("n_test", n_test), ("n_valid", n_valid)):
        if value < 0:
            raise ConfigError(f"leave_last_out: {name} must be >= 0, got {value}.")
    if min_train < 1:
        raise ConfigError(f"leave_last_out: min_train must be >= 1, got {min_train}.")
    user_codes, user_ids = events.codes("user")
    timestamps = events.timestamps
    _check_timestamps(timestamps, lambda row: user_ids[user_codes[row]])
    order = chronological_rows(user_codes, timestamps)
    position, length = _runs(user_codes[order])  # each user's events consecutive, in time order
    from_end = length - 1 - position
    evaluated = length >= min_train + n_valid + n_test
    test = evaluated & (from_end < n_test)
    valid = evaluated & (from_end >= n_test) & (from_end < n_test + n_valid)
    train = ~(test | valid)
    train_part, valid_part, test_part = (_rows_of(events, order[part]) for part in (train, valid, test))
    return Split(train_part, valid_part, test_part,
                 kind=f"leave_last_out(n_test={n_test}, n_valid={n_valid})")


def time_split(events: Interactions | pd.DataFrame, *, valid_fraction: float = 0.1,
               test_fraction: float = 0.1, valid_start: float | None = None,
               test_start: float | None = None) -> Split:
    """One global time line: events before ``valid_start`` train, then validation, then test.

    The boundaries default to the time quantiles that leave ``valid_fraction`` and
    ``test_fraction`` of the events in the later parts.
    """
    events = as_interactions(events, caller="time_split")
    frame = events.frame
    times = frame["timestamp"].to_numpy(np.float64)
    if len(times) == 0 or np.isnan(times).any():
        raise SchemaError("time_split: every event needs a timestamp (some are missing).")
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ConfigError("time_split: fractions must be in [0, 1) and sum to less than 1, got "
                          f"valid_fraction={valid_fraction}, test_fraction={test_fraction}.")
    for name, start in (("valid_start", valid_start), ("test_start", test_start)):
        if start is not None and (isinstance(start, bool) or not isinstance(start, numbers.Real)
                                  or np.isnan(start)):
            raise ConfigError(f"time_split: {name} must be a time in seconds (or None), got {start!r}.")
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


def _check_fraction(name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ConfigError(f"{name} must be in [0, 1), got {value}.")


def random_split(events: Interactions | pd.DataFrame, *, test_fraction: float = 0.1,
                 valid_fraction: float = 0.1, seed: int = 0) -> Split:
    """Random holdout of single events (not time-aware: the future may be in training — use it for
    rating prediction or to compare with papers that use it, not for next-item metrics)."""
    events = as_interactions(events, caller="random_split")
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("valid_fraction", valid_fraction)
    if test_fraction + valid_fraction >= 1:
        raise ConfigError("random_split: test_fraction + valid_fraction must be < 1.")
    seed = check_seed(seed, where="random_split")
    frame = events.frame
    draw = np.random.default_rng(seed).random(len(frame))
    test = draw < test_fraction
    valid = ~test & (draw < test_fraction + valid_fraction)
    rows = np.arange(len(frame))
    return Split(_part(frame, rows[~(test | valid)]), _part(frame, rows[valid]), _part(frame, rows[test]),
                 kind=f"random_split(test={test_fraction}, valid={valid_fraction}, seed={seed})")


def _held_out(values: np.ndarray, fraction: float, seed: int) -> set:
    unique = pd.unique(values)
    n = int(round(len(unique) * fraction))
    picked = np.random.default_rng(seed).permutation(len(unique))[:n]
    return set(unique[picked].tolist())


def cold_item_split(events: Interactions | pd.DataFrame, *, test_fraction: float = 0.1,
                    valid_fraction: float = 0.0, seed: int = 0) -> Split:
    """Hold out whole items: every event on a test (validation) item leaves training, so the model
    never sees those items and must place them from content alone (new-item cold start)."""
    events = as_interactions(events, caller="cold_item_split")
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("valid_fraction", valid_fraction)
    seed = check_seed(seed, where="cold_item_split")
    frame = events.frame
    items = frame["item"].to_numpy(dtype=object)
    test_items = _held_out(items, test_fraction, seed)
    rest = np.asarray([i for i in pd.unique(items) if i not in test_items], dtype=object)
    valid_items = _held_out(rest, valid_fraction / max(1 - test_fraction, 1e-9), seed + 1)
    test = frame["item"].isin(test_items).to_numpy()
    valid = frame["item"].isin(valid_items).to_numpy()
    rows = np.arange(len(frame))
    return Split(_part(frame, rows[~(test | valid)]), _part(frame, rows[valid]), _part(frame, rows[test]),
                 kind=f"cold_item_split(test={test_fraction}, valid={valid_fraction}, seed={seed})")


def cold_user_split(events: Interactions | pd.DataFrame, *, test_fraction: float = 0.1, n_given: int = 3,
                    valid_fraction: float = 0.0, seed: int = 0) -> Split:
    """Hold out whole users: they are absent from training; each held-out user's first ``n_given``
    events (time order) are ``given`` (readable at recommendation time), the rest are the targets.
    Held-out users with no more than ``n_given`` events are dropped from the split (reported in
    ``kind``). Validation users, if any, are split the same way (their first events in ``given``)."""
    events = as_interactions(events, caller="cold_user_split")
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("valid_fraction", valid_fraction)
    if n_given < 0:
        raise ConfigError(f"cold_user_split: n_given must be >= 0, got {n_given}.")
    seed = check_seed(seed, where="cold_user_split")
    frame = events.frame
    order = chronological_order(frame)
    users = frame["user"].to_numpy(dtype=object)
    test_users = _held_out(users, test_fraction, seed)
    rest = np.asarray([u for u in pd.unique(users) if u not in test_users], dtype=object)
    valid_users = _held_out(rest, valid_fraction / max(1 - test_fraction, 1e-9), seed + 1)
    ordered_users = users[order]
    position, length = _runs(ordered_users)
    held = pd.Series(ordered_users).isin(test_users | valid_users).to_numpy()
    too_short = held & (length <= n_given)
    given = held & ~too_short & (position < n_given)
    target = held & ~too_short & (position >= n_given)
    is_test = pd.Series(ordered_users).isin(test_users).to_numpy()
    dropped = len(pd.unique(ordered_users[too_short]))
    return Split(_part(frame, order[~held]), _part(frame, order[target & ~is_test]),
                 _part(frame, order[target & is_test]),
                 kind=(f"cold_user_split(test={test_fraction}, valid={valid_fraction}, n_given={n_given}, "
                       f"seed={seed}, dropped_short_users={dropped})"),
                 given=_part(frame, order[given]))


SPLITS: Registry[Callable[..., Split]] = Registry("split")
SPLITS.add("leave_last_out", leave_last_out, "loo", "leave_one_out")
SPLITS.add("time_split", time_split, "time", "temporal")
SPLITS.add("random_split", random_split, "random", "holdout")
SPLITS.add("cold_item_split", cold_item_split, "cold_items", "cold_item")
SPLITS.add("cold_user_split", cold_user_split, "cold_users", "cold_user")


def make_split(events: Interactions, spec: Mapping[str, Any] | None = None) -> Split:
    """Split ``events`` as a config says: ``{"kind": "leave_last_out", "n_test": 1, ...}``."""
    options = dict(spec or {})
    kind = options.pop("kind", "leave_last_out")
    try:
        return SPLITS.get(kind)(events, **options)
    except TypeError as exc:
        raise ConfigError(f"split {kind!r}: {exc}") from exc
