"""Behaviour logs: who did what to which item, when, and how strongly."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.readers import read_table
from mmrec.data.validation import (
    categorical_strings,
    id_categorical,
    is_finite_number,
    label_categorical,
    missing_mask,
    normalized_name,
    numeric_column,
    require_columns,
    str_columns,
)
from mmrec.errors import ConfigError, SchemaError
from mmrec.utils.config import check_field_types, config_from_dict

__all__ = ["EventWeights", "InteractionSchema", "Interactions", "DroppedEvents", "missing_value_error",
           "first_appearance",
           "as_interactions"]

logger = logging.getLogger(__name__)


USER_NAMES = ("userid", "user", "uid", "customerid", "visitorid", "sessionid")
ITEM_NAMES = ("itemid", "item", "iid", "movieid", "productid", "trackid", "articleid", "newsid")
TIME_NAMES = ("timestamp", "ts", "time", "datetime", "date", "eventtime")
EVENT_NAMES = ("event", "eventtype", "action", "type", "behavior", "behaviour", "interaction")
VALUE_NAMES = ("value", "rating", "score", "weight", "dwell", "dwelltime", "count", "playcount")
# When there is no event column, every row gets this event (or "rating" if the value column is named so).
DEFAULT_EVENT = "interaction"


@dataclass(frozen=True)
class InteractionSchema:
    """Which column of a behaviour log plays which role (only user and item are required)."""

    user: str = "user_id"
    item: str = "item_id"
    timestamp: str | None = None
    event: str | None = None
    value: str | None = None

    def __post_init__(self) -> None:
        check_field_types(self)  # column names are strings
        for name in ("user", "item", "timestamp", "event", "value"):
            column = getattr(self, name)
            if column is not None and not column.strip():
                fix = "" if name in ("user", "item") else " or None when the log has none"
                raise ConfigError(f"InteractionSchema.{name} must name a column of the interactions log, "
                                  f"got {column!r}; pass the column's name{fix}.")

    @property
    def columns(self) -> list[str]:
        return [c for c in (self.user, self.item, self.timestamp, self.event, self.value) if c]

    @classmethod
    def infer(cls, frame: pd.DataFrame) -> InteractionSchema:
        """Guess roles from column names (see the module's ``*_NAMES`` tuples)."""
        by_norm = {normalized_name(c): str(c) for c in frame.columns}

        def pick(names: tuple[str, ...]) -> str | None:
            return next((by_norm[n] for n in names if n in by_norm), None)

        user, item = pick(USER_NAMES), pick(ITEM_NAMES)
        if user is None or item is None:
            raise SchemaError(
                f"interactions: need a user and an item column; found {list(map(str, frame.columns))}. "
                "Name them 'user_id' and 'item_id' or pass schema=InteractionSchema(user=..., item=...)."
            )
        return cls(user=user, item=item, timestamp=pick(TIME_NAMES), event=pick(EVENT_NAMES),
                   value=pick(VALUE_NAMES))


def _default_weights() -> dict[str, float]:
    return {
        "interaction": 1.0, "view": 0.5, "impression": 0.1, "click": 1.0, "play": 1.0,
        "listen": 1.0, "search": 0.5, "like": 2.0, "share": 3.0, "add_to_cart": 3.0,
        "purchase": 5.0, "rating": 1.0, "review": 1.0, "skip": -0.5, "dislike": -2.0,
    }


@dataclass(frozen=True)
class EventWeights:
    """How much each event type counts when a history is pooled into interest.

    The weight of one event is ``weights[event] * value`` for implicit events (``value`` defaults to 1:
    a play count or dwell time scales it) and ``weights[event] * (value - rating_center)`` for explicit
    ones (a 1-star rating pushes away, a 5-star one pulls).

    Parameters
    ----------
    weights : mapping of str to float
        Base weight per event type.
    explicit : tuple of str
        Event types whose value is a rating.
    rating_center : float
        The neutral rating.
    unknown_event : {"error", "default"}
        What an event type absent from ``weights`` gets: an error, or ``default_weight``.
    default_weight : float
        Weight of unknown event types when ``unknown_event="default"``.
    """

    weights: Mapping[str, float] = field(default_factory=_default_weights)
    explicit: tuple[str, ...] = ("rating",)
    rating_center: float = 3.0
    unknown_event: str = "default"
    default_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.unknown_event not in ("error", "default"):
            raise ConfigError(f"unknown_event must be 'error' or 'default', got {self.unknown_event!r}.")
        if isinstance(self.explicit, str) or not all(isinstance(e, str) for e in self.explicit):
            raise ConfigError(f"EventWeights: explicit must be a list of event names, got {self.explicit!r}.")
        object.__setattr__(self, "explicit", tuple(self.explicit))
        if not isinstance(self.weights, Mapping):
            raise ConfigError(f"EventWeights: weights must map event names to numbers, got {self.weights!r}.")
        names = [name for name in self.weights if not isinstance(name, str)]
        if names:
            raise ConfigError(f"EventWeights: event name {names[0]!r} in weights is not text; event "
                              f"types are strings (write it as '{names[0]}').")
        # event types are read stripped and lower-cased (validation.py): so are the names given here
        folded: dict[str, float] = {}
        for name, weight in self.weights.items():
            key = name.strip().lower()
            if key in folded:
                raise ConfigError(f"EventWeights: weights has {name!r} and another event name that "
                                  f"both read as {key!r} (event types are compared stripped and in "
                                  "lower case); keep one.")
            folded[key] = weight
        object.__setattr__(self, "weights", folded)
        object.__setattr__(self, "explicit", tuple(e.strip().lower() for e in self.explicit))
        checks = [(f"weight of event {name!r}", weight) for name, weight in self.weights.items()]
        for what, value in [*checks, ("rating_center", self.rating_center),
                            ("default_weight", self.default_weight)]:
            if not is_finite_number(value):
                raise ConfigError(f"EventWeights: {what} is {value!r}; use a finite number.")

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (what :meth:`coerce` reads back)."""
        return {"weights": dict(self.weights), "explicit": list(self.explicit),
                "rating_center": self.rating_center, "unknown_event": self.unknown_event,
                "default_weight": self.default_weight}

    @classmethod
    def coerce(cls, value: EventWeights | Mapping[str, Any] | None) -> EventWeights:
        """``value`` as EventWeights: itself, the defaults for ``None``, or from a mapping of its
        fields (a config file's, or :meth:`to_dict`'s); unknown keys are a :class:`ConfigError`."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return config_from_dict(cls, value, where="event_weights")
        raise ConfigError(f"event_weights must be an EventWeights or a mapping of its fields, "
                          f"got {type(value).__name__}.")

    def of(self, events: np.ndarray | pd.Categorical, values: np.ndarray) -> np.ndarray:
        """Per-event weight (``float64``) for arrays of event names and values (NaN = no value).

        A product beyond float64 (a purchase of value 1e308 weighs 5e308) saturates at the largest
        finite float64 instead of becoming ``inf`` (which turns a pooled history into NaN).
        """
        return self._scaled(*self._per_name(events), values)

    def _scaled(self, codes: np.ndarray, base: np.ndarray, explicit: np.ndarray,
                values: np.ndarray) -> np.ndarray:
        """:meth:`of` from :meth:`_per_name`'s codes and per-name weights."""
        base, explicit = base[codes], explicit[codes]
        filled = np.where(np.isnan(values), 1.0, values)
        with np.errstate(over="ignore"):
            weights = np.where(explicit, base * (values - self.rating_center), base * filled)
        largest = np.finfo(np.float64).max
        return np.clip(weights, -largest, largest)

    def base(self, events: np.ndarray | pd.Categorical) -> np.ndarray:
        """The event type's own weight per event (``float64``), before any value scaling."""
        codes, base, _ = self._per_name(events)
        return base[codes]

    def positive(self, events: np.ndarray | pd.Categorical, values: np.ndarray) -> np.ndarray:
        """How much each event counts as a positive when training on implicit feedback (>= 0).

        Explicit events (ratings) count with their type's weight whatever the value — rating an
        item shows interest; the value itself trains the rating head. Implicit ones count
        ``weight * value`` (a play count, dwell time); negative events (skips) count 0.
        """
        codes, base, explicit = self._per_name(events)
        weights = np.where(explicit[codes], base[codes], self._scaled(codes, base, explicit, values))
        return np.maximum(weights, 0.0)

    def is_explicit(self, events: np.ndarray | pd.Categorical) -> np.ndarray:
        """Per event, whether its type is explicit (its value is a rating)."""
        codes, _, explicit = self._per_name(events)
        return explicit[codes]

    def _per_name(self, events: np.ndarray | pd.Categorical) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each event's code, and per distinct event name its weight and whether it is explicit
        (each name looked up once; a categorical's codes are used as they are)."""
        codes, names = pd.factorize(events if isinstance(events, pd.Categorical)
                                    else np.asarray(events, dtype=object), sort=False)
        names = list(names)
        unknown = sorted({name for name in names if name not in self.weights})
        if unknown and self.unknown_event == "error":
            raise ConfigError(
                f"event type(s) {unknown} have no weight; add them to EventWeights.weights "
                f"(known: {sorted(self.weights)}) or set unknown_event='default'."
            )
        # one slot past the names: an empty log indexes nothing
        base = np.array([*(self.weights.get(n, self.default_weight) for n in names), 0.0], dtype=np.float64)
        explicit = np.array([*(n in self.explicit for n in names), False], dtype=bool)
        return codes, base, explicit


@dataclass(frozen=True)
class DroppedEvents:
    """Events removed because their item is not known (reported, never silent)."""

    n_events: int
    item_ids: tuple[str, ...]

    def __str__(self) -> str:
        shown = ", ".join(repr(i) for i in self.item_ids[:5])
        more = f" and {len(self.item_ids) - 5} more" if len(self.item_ids) > 5 else ""
        return f"dropped {self.n_events} event(s) with {len(self.item_ids)} unknown item id(s): {shown}{more}"


class Interactions:
    """A validated behaviour log with the standard columns ``user, item, timestamp, event, value``.

    ``user`` and ``item`` are ``str``; ``timestamp`` is float seconds (NaN when absent); ``event`` is
    a lower-case event type; ``value`` is float (NaN when absent). Rows are kept in the order given,
    stably sorted by timestamp within each user when :meth:`sorted` is used.
    """

    COLUMNS = ("user", "item", "timestamp", "event", "value")
    CODED = ("user", "item", "event")  # held as categorical codes: each distinct string stored once

    def __init__(self, frame: pd.DataFrame, *, dropped: DroppedEvents | None = None) -> None:
        self._frame = _narrowed(_coded(frame, self.CODED))
        self.dropped = dropped

    @property
    def nbytes(self) -> int:
        """Bytes the log holds in memory: its code and number arrays plus each distinct user, item
        and event string once."""
        total = 0
        for _, column in self._frame.items():
            if isinstance(column.dtype, pd.CategoricalDtype):
                total += column.cat.codes.nbytes + _strings_nbytes(column.cat.categories)
            else:
                total += int(column.memory_usage(index=False, deep=True))
        return total

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, schema: InteractionSchema | Mapping[str, Any] | None = None
    ) -> Interactions:
        """Read and validate a behaviour log from Parquet, CSV/TSV or JSON Lines."""
        return cls.from_frame(read_table(Path(path)), schema=schema)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, *, schema: InteractionSchema | Mapping[str, Any] | None = None
    ) -> Interactions:
        """Validate ``frame`` against ``schema`` (inferred from column names when ``None``)."""
        if not isinstance(frame, pd.DataFrame):
            raise SchemaError(f"interactions: expected a pandas DataFrame, got {type(frame).__name__}.")
        frame = str_columns(frame, what="interactions")
        if schema is None:
            schema = InteractionSchema.infer(frame)
        elif isinstance(schema, Mapping):
            schema = config_from_dict(InteractionSchema, schema, where="interaction schema")
        require_columns(frame, schema.columns, what="interactions")
        frame = frame.reset_index(drop=True)
        what = "interactions"
        n = len(frame)
        users = id_categorical(frame[schema.user], column=schema.user, what=what)
        items = id_categorical(frame[schema.item], column=schema.item, what=what)
        timestamps = (
            _timestamps(frame[schema.timestamp], column=schema.timestamp)
            if schema.timestamp else np.full(n, np.nan)
        )
        values = (
            numeric_column(frame[schema.value], column=schema.value, what=what)
            if schema.value else np.full(n, np.nan)
        )
        if schema.event:
            events = label_categorical(frame[schema.event], column=schema.event, what=what,
                                       default=DEFAULT_EVENT)
        else:
            rating = schema.value is not None and normalized_name(schema.value) == "rating"
            implied = "rating" if rating else DEFAULT_EVENT
            events = pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), pd.Index([implied], dtype=object))
        clean = pd.DataFrame({"user": users, "item": items, "timestamp": timestamps, "event": events,
                              "value": values})
        return cls(clean)

    # ----------------------------------------------------------------------------- accessors
    def __len__(self) -> int:
        return len(self._frame)

    def __repr__(self) -> str:
        return (f"Interactions({len(self)} events, {self._frame['user'].nunique()} users, "
                f"{self._frame['item'].nunique()} items, events={sorted(set(self._frame['event']))})")

    @property
    def frame(self) -> pd.DataFrame:
        """A copy of the standard table (``user``, ``item`` and ``event`` as ``str`` objects)."""
        return self._frame.astype({**{name: object for name in self.CODED},
                                   "timestamp": np.float64, "value": np.float64})

    @property
    def users(self) -> np.ndarray:
        """Distinct user ids in order of first appearance."""
        return self.distinct("user")

    def distinct(self, column: str) -> np.ndarray:
        """The distinct ids of ``column`` that have events, in order of first appearance (read from
        the codes: no per-event string is made)."""
        codes, strings = self.codes(column)
        return strings[first_appearance(codes, len(strings))[0]]

    def positions(self, column: str, index: pd.Index) -> np.ndarray:
        """Per event, the position of its ``column`` id in ``index`` (unique; ``-1``: not in it),
        each distinct id looked up once."""
        codes, strings = self.codes(column)
        return index.get_indexer(strings)[codes]

    @property
    def timestamps(self) -> np.ndarray:
        """Per-event float seconds (NaN when absent), read-only."""
        return _read_only(np.asarray(self._frame["timestamp"].to_numpy(), dtype=np.float64))

    @property
    def values(self) -> np.ndarray:
        """Per-event float values (NaN when absent), read-only."""
        return _read_only(np.asarray(self._frame["value"].to_numpy(), dtype=np.float64))

    def codes(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-event integer codes of ``column`` (``user``, ``item`` or ``event``) and the distinct
        strings they index (``strings[codes]`` is the column), without materialising the strings."""
        if column not in self.CODED:
            raise ConfigError(f"Interactions.codes: {column!r} is not one of {list(self.CODED)}.")
        values = self._frame[column].cat
        return _read_only(values.codes.to_numpy()), values.categories.to_numpy(dtype=object)

    def weights(self, event_weights: EventWeights | None = None) -> np.ndarray:
        """Per-event weights (``float64``, aligned with the rows); see :class:`EventWeights`."""
        weights = event_weights or EventWeights()
        frame = self._frame
        return weights.of(frame["event"].array, frame["value"].to_numpy(np.float64))

    def explicit_values_missing(self, event_weights: EventWeights | None = None) -> np.ndarray:
        """Row positions of explicit events (ratings) whose value is missing."""
        explicit = (event_weights or EventWeights()).explicit
        frame = self._frame
        mask = frame["event"].isin(explicit).to_numpy() & frame["value"].isna().to_numpy()
        return np.flatnonzero(mask)

    def require_values(self, event_weights: EventWeights | None = None) -> None:
        """Explicit events (ratings) need a value: a :class:`SchemaError` naming the first row without."""
        missing = self.explicit_values_missing(event_weights)
        if missing.size:
            row = int(missing[0])
            frame = self._frame
            raise missing_value_error(frame["user"].iloc[row], frame["item"].iloc[row],
                                      frame["event"].iloc[row], row=row)

    def restrict_to_items(self, item_ids: Iterable[str]) -> Interactions:
        """Drop events whose item is not in ``item_ids``; the drop is logged and kept in ``.dropped``."""
        known = item_ids if isinstance(item_ids, pd.Index) else pd.Index(list(item_ids), dtype=object)
        if pd.api.types.infer_dtype(known, skipna=False) not in ("string", "empty"):
            known = known.map(str)  # ids are compared as strings (an int 7 is the item "7")
        if not known.is_unique:
            known = known.unique()
        # an Index keeps its hash table between calls: no set of the whole catalog per call; each
        # distinct item of the log is looked up once
        keep = self.positions("item", known) >= 0
        if keep.all():
            return self
        item_codes, item_strings = self.codes("item")
        dropped = DroppedEvents(int((~keep).sum()),
                                tuple(item_strings[pd.unique(item_codes[~keep])]))
        logger.warning("interactions: %s", dropped)
        return Interactions(self._frame.loc[keep].reset_index(drop=True), dropped=dropped)

    def for_users(self, user_ids: Iterable[str]) -> Interactions:
        """The events of ``user_ids`` only."""
        return self.select(self.user_mask(user_ids))

    def user_mask(self, user_ids: Iterable[str]) -> np.ndarray:
        """Which events belong to ``user_ids`` (each distinct user looked up once)."""
        wanted = pd.Index([str(u) for u in user_ids], dtype=object).unique()  # a user asked for twice
        return self.positions("user", wanted) >= 0

    def select(self, keep: np.ndarray) -> Interactions:
        """The events where the boolean mask ``keep`` is true, in log order: codes and numbers taken
        as they are (no id string is read again; ids left without events are dropped)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self),):
            raise SchemaError(f"interactions: a selection needs one flag per event ({len(self)}), got "
                              f"shape {keep.shape}.")
        frame = self._frame.loc[keep].reset_index(drop=True)
        return Interactions(frame.assign(**{name: frame[name].cat.remove_unused_categories()
                                            for name in self.CODED}))


def first_appearance(codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes in order of first appearance in ``codes`` (values in ``[0, n_codes)``), and
    per code its rank in that order (``-1`` for a code that does not appear)."""
    seen = pd.unique(codes)
    rank = np.full(n_codes, -1, dtype=np.int64)
    rank[seen] = np.arange(len(seen))
    return seen, rank


def _coded(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``frame`` with ``columns`` as categoricals (codes + distinct strings, in order of first
    appearance); columns already categorical are kept."""
    changed = {}
    for name in columns:
        if name in frame and not isinstance(frame[name].dtype, pd.CategoricalDtype):
            changed[name] = categorical_strings(frame[name].to_numpy(dtype=object))
    return frame.assign(**changed) if changed else frame


def _narrowed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its numbers held in fewer bytes where that loses nothing: values as float32
    when every one round-trips (ratings, counts, flags), timestamps as uint32 when every one is a
    whole second in [0, 2**32) (none missing). Readers get float64 back."""
    changed: dict[str, np.ndarray] = {}
    values = frame["value"].to_numpy() if "value" in frame else None
    if values is not None and values.dtype == np.float64:
        with np.errstate(over="ignore", invalid="ignore"):
            narrow = values.astype(np.float32)
        if np.array_equal(narrow.astype(np.float64), values, equal_nan=True):
            changed["value"] = narrow
    times = frame["timestamp"].to_numpy() if "timestamp" in frame else None
    if (times is not None and times.dtype == np.float64 and len(times)
            and bool(np.all((times >= 0) & (times < 2.0**32) & (times == np.floor(times))))):
        changed["timestamp"] = times.astype(np.uint32)
    return frame.assign(**changed) if changed else frame


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only view of ``array`` (the log's own memory: callers must not write into it)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _strings_nbytes(strings: pd.Index) -> int:
    """Memory of an index of distinct strings: the pointer array plus each string object."""
    return int(strings.memory_usage(deep=True))


# In whole seconds: subtracting it keeps the dates' own resolution. A nanosecond epoch would convert
# them to nanoseconds first, which overflows past 2262 (pandas parses "3000-01-01" in seconds).
EPOCH = pd.Timestamp(0, tz="UTC").as_unit("s")


def _timestamps(series: pd.Series, *, column: str) -> np.ndarray:
    """Timestamps as float seconds since the epoch: numbers as they are, date strings parsed."""
    what = "interactions"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):  # naive = UTC; any resolution
        utc = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
        seconds = (utc - EPOCH).dt.total_seconds()
        return seconds.to_numpy(dtype=np.float64, na_value=np.nan)
    as_numbers = pd.to_numeric(series, errors="coerce")
    missing = missing_mask(series)
    if not (as_numbers.isna().to_numpy() & ~missing).any():
        return numeric_column(series, column=column, what=what)
    # numbers stay seconds even beside dates (to_datetime would read them as nanoseconds)
    numbers = as_numbers.notna().to_numpy()
    dates = ~numbers & ~missing
    parsed = pd.to_datetime(series[dates], errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(dates)[parsed.isna().to_numpy()]
    if bad.size:
        raise SchemaError(
            f"{what}: row {int(bad[0])}, column {column!r}: {series.iloc[int(bad[0])]!r} is neither a "
            "number nor a date/time; use epoch seconds or ISO 8601."
        )
    seconds = np.where(numbers, as_numbers.astype("float64").to_numpy(na_value=np.nan), np.nan)
    infinite = np.flatnonzero(np.isinf(seconds))
    if infinite.size:
        raise SchemaError(f"{what}: row {int(infinite[0])}, column {column!r}: value is infinite; "
                          "use a finite time or leave it blank.")
    seconds[dates] = (parsed - EPOCH).dt.total_seconds().to_numpy(dtype=np.float64)
    return seconds


def missing_value_error(user: Any, item: Any, event: Any, *, row: int | None = None) -> SchemaError:
    """The one error for an explicit event (a rating) without a value, naming the row, user and item."""
    where = (f"row {row} (user {user!r}, item {item!r}) is a" if row is not None
             else f"user {user!r}, item {item!r}: a")
    return SchemaError(f"interactions: {where} {event!r} event without a value; give it one or drop the row.")


def as_interactions(events: Any, *, caller: str) -> Interactions:
    """``events`` as :class:`Interactions`: itself, or a DataFrame validated with the inferred schema
    (columns named like ``user_id, item_id, timestamp, event, value``); anything else is a
    :class:`SchemaError` naming ``caller``."""
    if isinstance(events, Interactions):
        return events
    if isinstance(events, pd.DataFrame):
        return Interactions.from_frame(events)
    raise SchemaError(f"{caller} expects mmrec.Interactions or a DataFrame of events, "
                      f"got {type(events).__name__}.")
