"""Property tests of the data layer: Catalog, Interactions, EventWeights, readers and splits.

Every input — arbitrary unicode, empty and huge fields, NaN/inf, wrong dtypes, duplicate and missing
ids — must end in a valid result or in an :class:`mmrec.errors.MmrecError` whose message names the
table, the column and (where there is one) the row. Any other exception fails the test: it is a bug
to fix in mmrec, not to whitelist here.

The ``ci`` hypothesis profile (tests/conftest.py) runs by default; for a longer bug hunt::

    HYPOTHESIS_PROFILE=thorough OMP_NUM_THREADS=1 python -m pytest -q tests/test_properties*.py
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import mmrec
from mmrec.data.interactions import DEFAULT_EVENT
from mmrec.errors import ConfigError, MmrecError, SchemaError, UnknownNameError
from mmrec.testing.strategies import any_float, any_text

# ----------------------------------------------------------------------------- cell strategies
finite = st.floats(allow_nan=False, allow_infinity=False)
big_int = st.integers(-(2**70), 2**70)
# Anything a user's table may hold in a cell.
any_cell = st.one_of(
    any_text, any_float, big_int, st.none(), st.booleans(), st.binary(max_size=4),
    st.lists(st.text(max_size=4), max_size=3),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.just(pd.NA), st.just(pd.NaT), st.datetimes(), st.decimals(allow_nan=False),
    st.tuples(st.integers(), st.integers()),
)
good_id = st.one_of(st.integers(-(2**62), 2**62),
                    st.text(min_size=1, max_size=12).filter(lambda s: s.strip()))
number_like = st.one_of(finite, st.integers(-(2**50), 2**50), finite.map(repr), st.none())
# Column dtypes a frame may arrive with (applied when pandas can convert the column).
DTYPES = ["as-is", "object", "string", "category"]


def as_plain_objects(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns with None for every kind of missing (pd.NA cannot be written to files)."""
    frame = frame.astype(object)
    return frame.where(frame.notna(), None)


def with_dtype(frame: pd.DataFrame, column: str, dtype: str) -> pd.DataFrame:
    if dtype == "as-is":
        return frame
    try:
        frame[column] = frame[column].astype(dtype)
    except (TypeError, ValueError):  # the test's own conversion; mmrec is not involved yet
        pass
    return frame


def assert_names_a_column(exc: MmrecError, frame: pd.DataFrame, *, what: str) -> None:
    """The oracle for an error: it names the table and a column of it, and any row it names exists."""
    message = str(exc)
    assert what in message, message
    names = [repr(str(c)) for c in frame.columns]
    whole_table = ("has no rows", "no id column", "need a user and an item column")
    assert any(n in message for n in names) or any(w in message for w in whole_table), message
    for row in re.findall(r"\brows? (\d+)", message):
        assert int(row) < len(frame), message


# ----------------------------------------------------------------------------- Catalog
CATALOG_SCHEMA = mmrec.CatalogSchema(id="item_id", text=("title",), numeric=("price",),
                                     categorical=("color",))


@st.composite
def catalog_frames(draw, ids=any_cell, text=any_cell, price=any_cell, min_rows=0):
    n = draw(st.integers(min_rows, 7))
    frame = pd.DataFrame({
        "item_id": draw(st.lists(ids, min_size=n, max_size=n)),
        "title": draw(st.lists(text, min_size=n, max_size=n)),
        "price": draw(st.lists(price, min_size=n, max_size=n)),
        "color": draw(st.lists(any_cell, min_size=n, max_size=n)),
    }, dtype=object)
    for column in frame.columns:
        frame = with_dtype(frame, column, draw(st.sampled_from(DTYPES)))
    return frame


def check_catalog(catalog: mmrec.Catalog, frame: pd.DataFrame) -> None:
    assert len(catalog) == len(frame)  # no row lost
    ids = catalog.ids
    assert all(isinstance(i, str) and i.strip() == i and i for i in ids)
    assert len(set(ids)) == len(ids)
    for column in catalog.schema.text:
        assert all(isinstance(t, str) for t in catalog.column(column))
    for column in catalog.schema.numeric:
        values = catalog.column(column)
        assert values.dtype == np.float64 and not np.isinf(values).any()
    for column in catalog.schema.categorical:
        assert all(v is None or isinstance(v, str) for v in catalog.column(column))


@given(catalog_frames(), st.booleans())
@example(pd.DataFrame({"item_id": [2**64, 1]}, dtype=object), True)  # beyond int64
@example(pd.DataFrame({"item_id": [1, "1"], "title": ["a", "b"]}, dtype=object), True)
def test_catalog_from_any_frame_is_valid_or_a_schema_error(frame, infer):
    schema = None if infer else CATALOG_SCHEMA
    try:
        catalog = mmrec.Catalog.from_frame(frame, schema=schema)
    except MmrecError as exc:
        assert_names_a_column(exc, frame, what="catalog")
    else:
        check_catalog(catalog, frame)


@given(catalog_frames(ids=good_id, text=any_text | st.none(), price=number_like, min_rows=1))
def test_catalog_from_a_clean_frame_always_loads(frame):
    expected = [str(i) if not isinstance(i, str) else i.strip() for i in frame["item_id"]]
    assume(len(set(expected)) == len(expected))
    catalog = mmrec.Catalog.from_frame(frame, schema=CATALOG_SCHEMA)
    check_catalog(catalog, frame)
    assert list(catalog.ids) == expected
    prices = [math.nan if pd.isna(p) else float(p) for p in frame["price"].astype(object)]
    np.testing.assert_array_equal(catalog.column("price"), np.array(prices, dtype=np.float64))
    titles = [("" if pd.isna(t) or not str(t).strip() else str(t)) for t in frame["title"].astype(object)]
    assert [t for t in catalog.column("title")] == titles


@given(st.lists(st.one_of(st.text(max_size=8), st.integers(), st.none(), any_float), min_size=1,
                max_size=6))
@example([1, "1"])  # two columns that print the same
@example(["item_id", 0])
@example(["item_id", "title", "title"])
def test_catalog_column_names_of_any_type(names):
    frame = pd.DataFrame([list(range(len(names)))] * 2, columns=names)
    frame = frame.astype(object)
    if len(frame.columns):
        frame.iloc[:, 0] = ["a", "b"]
    try:
        catalog = mmrec.Catalog.from_frame(frame)
    except MmrecError as exc:
        assert_names_a_column(exc, frame, what="catalog")
    else:
        check_catalog(catalog, frame)


@given(catalog_frames(ids=good_id, text=st.text(max_size=20) | st.none(), price=finite | st.none(),
                      min_rows=1),
       st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet"]))
def test_catalog_round_trips_through_every_file_format(frame, suffix):
    frame = as_plain_objects(frame)
    frame["item_id"] = [str(i).strip() for i in frame["item_id"]]
    frame["color"] = [None if c is None else str(c) for c in frame["color"]]
    assume(frame["item_id"].is_unique)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"items{suffix}"
        if suffix in (".csv", ".tsv"):
            # every field quoted: a bare "\r" inside an id would end the line for any CSV reader
            frame.to_csv(path, index=False, sep="," if suffix == ".csv" else "\t", quoting=csv.QUOTE_ALL)
        elif suffix == ".parquet":
            frame.astype({"price": "float64"}).to_parquet(path)
        else:
            frame.to_json(path, orient="records", lines=suffix == ".jsonl")
        try:
            catalog = mmrec.Catalog.from_path(path, schema=CATALOG_SCHEMA)
        except MmrecError as exc:
            assert_names_a_column(exc, frame, what="catalog")
            return
    check_catalog(catalog, frame)
    assert set(catalog.ids) == set(frame["item_id"])


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)),
       st.sampled_from([".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"]))
@example(b"item_id\n\xff\xfe\n", ".csv")  # not UTF-8
@example("[1, 2]", ".json")
@example('{"item_id": {"a": 1}}\n', ".jsonl")
@example("item_id,title\n1,a\n2", ".csv")
def test_catalog_from_any_file_content(content, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"items{suffix}"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        try:
            catalog = mmrec.Catalog.from_path(path)
        except MmrecError as exc:
            assert "catalog" in str(exc) or str(path) in str(exc), str(exc)
        else:
            assert len(catalog) >= 1 and len(set(catalog.ids)) == len(catalog)


@given(catalog_frames(ids=good_id, text=any_text, price=number_like, min_rows=1),
       st.lists(any_cell, max_size=6))
def test_catalog_subset_and_positions_take_any_ids(frame, wanted):
    try:
        catalog = mmrec.Catalog.from_frame(frame, schema=CATALOG_SCHEMA)
    except MmrecError:
        assume(False)
    part = catalog.subset(wanted)
    wanted_str = {str(w) for w in wanted}
    assert list(part.ids) == [i for i in catalog.ids if i in wanted_str]
    try:
        positions = catalog.positions(wanted)
    except MmrecError as exc:
        assert "unknown item id" in str(exc)
        assert any(repr(str(w)) in str(exc) for w in wanted if str(w) not in set(catalog.ids))
    else:
        assert positions.dtype == np.int64
        assert [catalog.ids[p] for p in positions] == [str(w) for w in wanted]


# ----------------------------------------------------------------------------- Interactions
timestamps = st.one_of(
    st.integers(-(2**40), 2**40), any_float, st.none(),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)).map(
        lambda d: d.isoformat()),
    st.datetimes(timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5))])),
    st.datetimes().map(str), st.text(max_size=10),
)
event_cells = st.one_of(st.sampled_from(["click", " View ", "PURCHASE", "rating", "", "skip"]), any_cell)


@st.composite
def interaction_frames(draw, users=any_cell, items=any_cell, times=timestamps, events=event_cells,
                       values=any_cell, min_rows=0, dtypes=(*DTYPES, "datetime64[ns]")):
    n = draw(st.integers(min_rows, 8))
    columns = {"user_id": users, "item_id": items}
    optional = {"timestamp": times, "event": events, draw(st.sampled_from(["value", "rating"])): values}
    columns.update({name: s for name, s in optional.items() if draw(st.booleans())})
    frame = pd.DataFrame({name: draw(st.lists(s, min_size=n, max_size=n)) for name, s in columns.items()},
                         dtype=object)
    for column in frame.columns:
        frame = with_dtype(frame, column, draw(st.sampled_from(dtypes)))
    return frame


def check_interactions(events: mmrec.Interactions, n_rows: int) -> pd.DataFrame:
    frame = events.frame
    assert len(events) == n_rows  # no row lost
    assert list(frame.columns) == list(mmrec.Interactions.COLUMNS)
    for column in ("user", "item"):
        assert all(isinstance(v, str) and v for v in frame[column])
    assert frame["timestamp"].dtype == np.float64 and not np.isinf(frame["timestamp"]).any()
    assert frame["value"].dtype == np.float64 and not np.isinf(frame["value"]).any()
    assert all(isinstance(e, str) and e and e == e.strip().lower() for e in frame["event"])
    assert np.isfinite(events.weights()).all() or frame["value"].isna().any()
    return frame


@given(interaction_frames())
@example(pd.DataFrame({"user_id": ["u"], "item_id": [2**64]}, dtype=object))
@example(pd.DataFrame({"user_id": ["u"], "item_id": [" "]}, dtype="category"))  # a blank categorical id
@example(pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "timestamp": [5, "2020-01-01"]},
                      dtype=object))
def test_interactions_from_any_frame_are_valid_or_a_schema_error(frame):
    try:
        events = mmrec.Interactions.from_frame(frame)
    except MmrecError as exc:
        assert_names_a_column(exc, frame, what="interactions")
    else:
        check_interactions(events, len(frame))


@given(interaction_frames(users=good_id, items=good_id, times=st.integers(-(2**40), 2**40) | finite,
                          events=st.text(max_size=6), values=number_like, dtypes=DTYPES))
def test_interactions_from_a_clean_frame_keep_every_value(frame):
    events = mmrec.Interactions.from_frame(frame)
    out = check_interactions(events, len(frame))
    as_ids = [i.strip() if isinstance(i, str) else str(i) for i in frame["item_id"].astype(object)]
    assert out["item"].tolist() == as_ids
    if "timestamp" in frame.columns and frame["timestamp"].dtype != "datetime64[ns]":
        np.testing.assert_array_equal(out["timestamp"].to_numpy(),
                                      frame["timestamp"].astype(object).astype(np.float64).to_numpy())
    if "event" in frame.columns:
        raw = [str(e).strip().lower() for e in frame["event"].astype(object)]
        assert out["event"].tolist() == [e or DEFAULT_EVENT for e in raw]


@given(st.lists(st.one_of(st.integers(0, 2**33), finite.filter(lambda x: abs(x) < 2**33),
                          st.datetimes(min_value=dt.datetime(1970, 1, 2),
                                       max_value=dt.datetime(2200, 1, 1)).map(lambda d: d.isoformat())),
                min_size=1, max_size=6))
@example([5, "2020-01-01T00:00:00"])  # numbers and dates in one column
def test_numeric_timestamps_are_seconds_whatever_else_the_column_holds(times):
    frame = pd.DataFrame({"user_id": "u", "item_id": "i", "timestamp": pd.Series(times, dtype=object)})
    try:
        out = mmrec.Interactions.from_frame(frame).frame
    except SchemaError as exc:
        assert "'timestamp'" in str(exc) and "row" in str(exc)
        return
    for raw, seconds in zip(times, out["timestamp"], strict=True):
        if isinstance(raw, str):
            expected = pd.Timestamp(raw, tz="UTC").timestamp()
        else:
            expected = float(raw)
        assert seconds == pytest.approx(expected, abs=1e-3), (raw, seconds)


@given(st.sampled_from([".csv", ".jsonl", ".parquet"]),
       interaction_frames(users=good_id, items=good_id, times=st.integers(0, 2**40) | st.none(),
                          events=st.text(max_size=6) | st.none(), values=finite | st.none(), min_rows=1,
                          dtypes=DTYPES))
def test_interactions_round_trip_through_files(suffix, frame):
    frame = as_plain_objects(frame)
    for column in ("user_id", "item_id"):
        frame[column] = [str(v).strip() for v in frame[column]]
    if "event" in frame.columns:
        frame["event"] = [None if e is None else str(e) for e in frame["event"]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"events{suffix}"
        if suffix == ".csv":
            frame.to_csv(path, index=False, quoting=csv.QUOTE_ALL)
        elif suffix == ".parquet":
            numeric = {c: "float64" for c in ("timestamp", "value", "rating") if c in frame}
            frame.astype(numeric).to_parquet(path)
        else:
            frame.to_json(path, orient="records", lines=True)
        try:
            events = mmrec.Interactions.from_path(path)
        except MmrecError as exc:
            assert_names_a_column(exc, frame, what="interactions")
            return
    out = check_interactions(events, len(frame))
    assert out["user"].tolist() == frame["user_id"].tolist()


# ----------------------------------------------------------------------------- methods taking user data
def one_event(**columns) -> mmrec.Interactions:
    """A one-event log (user "u", item "a" unless given) for regression examples."""
    return mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["u"], "item_id": ["a"]} | {
        name: [value] for name, value in columns.items()}))


@st.composite
def clean_logs(draw, min_rows=0, timed=True):
    n = draw(st.integers(min_rows, 14))
    users = draw(st.lists(st.sampled_from(["u1", "u2", "u3", "ü", "7"]), min_size=n, max_size=n))
    items = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "é", "1"]), min_size=n, max_size=n))
    events = draw(st.lists(st.sampled_from(["click", "view", "purchase", "skip", "rating", "odd"]),
                           min_size=n, max_size=n))
    values = draw(st.lists(st.integers(1, 5).map(float), min_size=n, max_size=n))
    data = {"user_id": users, "item_id": items, "event": events, "value": values}
    if timed:
        data["timestamp"] = draw(st.lists(st.integers(0, 20).map(float), min_size=n, max_size=n))
    frame = pd.DataFrame(data) if n else pd.DataFrame({k: pd.Series([], dtype=object) for k in data})
    return mmrec.Interactions.from_frame(frame)


weight_values = st.one_of(any_float, st.integers(), st.text(max_size=3), st.none())


@given(clean_logs(), st.dictionaries(st.text(max_size=8), weight_values, max_size=4),
       st.lists(st.text(max_size=6), max_size=3), weight_values, weight_values,
       st.sampled_from(["error", "default", "other"]))
@example(one_event(event="rating", value=4.0), {}, ["rating"], math.nan, 1.0, "default")  # NaN center
@example(one_event(), {"": 1.0, "\x85": 1.0}, [], 3.0, 1.0, "error")  # names that fold to one
def test_event_weights_are_finite_or_a_config_error(events, weights, explicit, center, default, unknown):
    try:
        ew = mmrec.EventWeights(weights=weights, explicit=tuple(explicit), rating_center=center,
                                default_weight=default, unknown_event=unknown)
        result = events.weights(ew)
    except ConfigError as exc:
        message = str(exc)
        names = ("weight", "unknown_event", "rating_center", "explicit")
        assert any(word in message for word in names), message
    else:
        assert result.dtype == np.float64 and result.shape == (len(events),)
        assert np.isfinite(result).all()


@given(clean_logs(), st.lists(any_cell, max_size=8), st.booleans())
@example(one_event(item_id=1), [1], False)  # the int 1 is the item "1"
def test_restrict_to_items_and_for_users_take_any_ids(events, wanted, as_index):
    frame = events.frame
    wanted_str = {str(w) for w in wanted}
    known = pd.Index(wanted, dtype=object) if as_index else wanted
    try:
        kept = events.restrict_to_items(known)
    except MmrecError as exc:
        assert "item" in str(exc)
        return
    keep = frame["item"].isin(wanted_str)
    assert kept.frame.equals(frame.loc[keep].reset_index(drop=True))
    if not keep.all():
        assert kept.dropped is not None and kept.dropped.n_events == int((~keep).sum())
        assert set(kept.dropped.item_ids) == set(frame.loc[~keep, "item"])
    mine = events.for_users(wanted)
    assert mine.frame.equals(frame.loc[frame["user"].isin(wanted_str)].reset_index(drop=True))


# ----------------------------------------------------------------------------- splits
def rows_of(*parts: mmrec.Interactions) -> list[tuple]:
    frames = [p.frame for p in parts if p is not None and len(p)]
    if not frames:
        return []
    both = pd.concat(frames, ignore_index=True)
    return sorted(map(tuple, both.fillna(-1.0).astype(str).to_numpy().tolist()))


def check_partition(split: mmrec.Split, events: mmrec.Interactions, *, dropped: int = 0) -> None:
    parts = (split.train, split.valid, split.test, split.given)
    assert sum(len(p) for p in parts if p is not None) + dropped == len(events)
    if not dropped:
        assert rows_of(*parts) == rows_of(events)


any_int = st.one_of(st.integers(-3, 6), st.integers(), st.just(2**70))
any_fraction = st.one_of(st.floats(-0.5, 1.5), any_float, st.sampled_from([0.0, 0.1, 0.5, 0.99]))
any_seed = st.one_of(st.integers(0, 100), st.integers(), st.just(2**80), finite, st.text(max_size=2))


def check_split_error(exc: MmrecError, *names: str) -> None:
    assert isinstance(exc, ConfigError | SchemaError), exc
    message = str(exc)
    assert any(n in message for n in (*names, "timestamp")), message


@given(clean_logs(), any_int, any_int, any_int)
def test_leave_last_out_partitions_any_log(events, n_test, n_valid, min_train):
    try:
        split = mmrec.leave_last_out(events, n_test=n_test, n_valid=n_valid, min_train=min_train)
    except MmrecError as exc:
        check_split_error(exc, "n_test", "n_valid", "min_train")
        return
    check_partition(split, events)
    train = split.train.frame
    for part in (split.test, split.valid):  # held-out events are never earlier than the user's training
        for user, group in part.frame.groupby("user"):
            seen = train.loc[train["user"] == user, "timestamp"]
            assert len(group) <= max(n_test, n_valid)
            assert seen.empty or group["timestamp"].min() >= seen.max()


@given(clean_logs(), any_fraction, any_fraction,
       st.none() | any_float, st.none() | any_float)
@example(one_event(timestamp=1.0), 0.1, 0.1, math.nan, None)
def test_time_split_partitions_any_log(events, valid_fraction, test_fraction, valid_start, test_start):
    try:
        split = mmrec.time_split(events, valid_fraction=valid_fraction, test_fraction=test_fraction,
                                 valid_start=valid_start, test_start=test_start)
    except MmrecError as exc:
        check_split_error(exc, "fraction", "valid_start", "test_start")
        return
    check_partition(split, events)
    if len(split.train) and len(split.test):
        assert split.train.frame["timestamp"].max() <= split.test.frame["timestamp"].min()


@given(clean_logs(), any_fraction, any_fraction, any_seed)
@example(one_event(), 0.1, 0.1, -1)
def test_random_split_partitions_any_log(events, test_fraction, valid_fraction, seed):
    try:
        split = mmrec.random_split(events, test_fraction=test_fraction, valid_fraction=valid_fraction,
                                   seed=seed)
    except MmrecError as exc:
        check_split_error(exc, "fraction", "seed")
        return
    check_partition(split, events)


@given(clean_logs(), any_fraction, any_fraction, any_seed)
@example(one_event(), 0.1, 0.0, -1)
def test_cold_item_split_keeps_held_out_items_out_of_training(events, test_fraction, valid_fraction, seed):
    try:
        split = mmrec.cold_item_split(events, test_fraction=test_fraction, valid_fraction=valid_fraction,
                                      seed=seed)
    except MmrecError as exc:
        check_split_error(exc, "fraction", "seed")
        return
    check_partition(split, events)
    trained = set(split.train.frame["item"])
    assert not trained & set(split.test.frame["item"]) and not trained & set(split.valid.frame["item"])


@given(clean_logs(), any_fraction, any_int, any_fraction, any_seed)
def test_cold_user_split_keeps_held_out_users_out_of_training(events, test_fraction, n_given,
                                                              valid_fraction, seed):
    try:
        split = mmrec.cold_user_split(events, test_fraction=test_fraction, n_given=n_given,
                                      valid_fraction=valid_fraction, seed=seed)
    except MmrecError as exc:
        check_split_error(exc, "fraction", "n_given", "seed")
        return
    held = set(split.test.frame["user"]) | set(split.valid.frame["user"]) | set(split.given.frame["user"])
    assert not held & set(split.train.frame["user"])
    short = int(re.search(r"dropped_short_users=(\d+)", split.kind).group(1))
    lost = len(events) - sum(len(p) for p in (split.train, split.valid, split.test, split.given))
    assert (lost == 0) == (short == 0)
    check_partition(split, events, dropped=lost)


SPLIT_OPTIONS = ["n_test", "n_valid", "min_train", "test_fraction", "valid_fraction", "seed", "n_given",
                 "valid_start", "test_start", "other"]
option_values = st.one_of(any_int, any_fraction, st.text(max_size=3), st.none(), st.lists(st.integers()))


@given(clean_logs(),
       st.sampled_from(["leave_last_out", "time", "random", "cold_items", "cold_users", "nope"]),
       st.dictionaries(st.sampled_from(SPLIT_OPTIONS), option_values, max_size=3))
@example(one_event(timestamp=1.0), "leave_last_out", {"n_test": "1"})
def test_make_split_takes_any_config_values(events, kind, options):
    from mmrec.data.splits import make_split

    try:
        split = make_split(events, {"kind": kind, **options})
    except MmrecError as exc:
        assert isinstance(exc, ConfigError | SchemaError | UnknownNameError), exc
        assert any(name in str(exc) for name in (kind, *options, "timestamp")), str(exc)
    else:
        assert len(split.train) <= len(events)


# ----------------------------------------------------------------------------- schemas and accessors
schema_values = st.one_of(st.sampled_from(["item_id", "title", "price", "color", "user_id", "timestamp",
                                           "event", "nope"]),
                          st.lists(st.sampled_from(["title", "color", "nope"]), max_size=2),
                          any_cell)


@given(catalog_frames(ids=good_id, text=any_text, price=number_like, min_rows=1),
       st.dictionaries(st.sampled_from(["id", "text", "image", "audio", "categorical", "numeric", "other"]),
                       schema_values, max_size=3))
@example(pd.DataFrame({"item_id": ["a"], "title": ["x"]}), {"id": 5})
@example(pd.DataFrame({"item_id": ["a"], "title": ["x"]}), {"text": [None]})
def test_catalog_schema_from_any_mapping(frame, schema):
    try:
        catalog = mmrec.Catalog.from_frame(frame, schema=schema)
    except MmrecError as exc:
        message = str(exc)
        named = any(str(v) in message for v in (*schema.values(), *schema)) or "column" in message
        assert "catalog" in message and named, message
    else:
        check_catalog(catalog, frame)


@given(interaction_frames(users=good_id, items=good_id, min_rows=1),
       st.dictionaries(st.sampled_from(["user", "item", "timestamp", "event", "value", "other"]),
                       schema_values, max_size=3))
@example(pd.DataFrame({"user_id": ["u"], "item_id": ["a"]}), {"user": 5})
@example(pd.DataFrame({"user_id": [0], "item_id": [0]}), {"user": ""})  # an empty column name (thorough)
def test_interaction_schema_from_any_mapping(frame, schema):
    try:
        events = mmrec.Interactions.from_frame(frame, schema=schema)
    except MmrecError as exc:
        assert "interaction" in str(exc), str(exc)
    else:
        check_interactions(events, len(frame))


@given(catalog_frames(ids=good_id, text=any_text, price=number_like, min_rows=1),
       st.one_of(any_cell, st.sampled_from(["title", "price", "color", "item_id"])),
       st.lists(st.one_of(any_cell, st.sampled_from(["title", "color"])), max_size=3))
def test_catalog_accessors_take_any_column_name(frame, name, fields):
    try:
        catalog = mmrec.Catalog.from_frame(frame, schema=CATALOG_SCHEMA)
    except MmrecError:
        assume(False)
    for call in (lambda: catalog.column(name), lambda: catalog.texts(fields),
                 lambda: catalog.media_paths(name), lambda: catalog.with_schema(text=fields)):
        try:
            result = call()
        except MmrecError as exc:
            assert "catalog" in str(exc) or "column" in str(exc), str(exc)
        else:
            assert len(result) == len(catalog)
