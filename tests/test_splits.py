"""Splits: deterministic, disjoint, and never showing training a later event than validation/test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.errors import ConfigError, SchemaError


def _events(rows):
    return mmrec.Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))


def test_leave_last_out_takes_each_users_latest_events_with_ties_in_row_order():
    events = _events([("a", "i1", 3), ("a", "i2", 1), ("a", "i3", 2), ("a", "i4", 3),
                      ("b", "i1", 5), ("b", "i2", 6), ("c", "i9", 1)])
    split = mmrec.leave_last_out(events)
    # a's events at t=3 tie: i1 comes before i4 in the table, so i4 is the last one
    assert split.test.frame[["user", "item"]].values.tolist() == [["a", "i4"]]
    assert split.valid.frame[["user", "item"]].values.tolist() == [["a", "i1"]]
    # b and c have fewer than train + valid + test = 3 events: they stay in training
    assert set(split.train.frame["user"]) == {"a", "b", "c"}
    assert len(split.train) + len(split.valid) + len(split.test) == len(events)


def test_leave_last_out_short_users_stay_in_training():
    events = _events([("b", "i1", 5), ("b", "i2", 6)])
    split = mmrec.leave_last_out(events)
    assert len(split.train) == 2 and len(split.valid) == 0 and len(split.test) == 0


def test_no_validation_or_test_event_is_older_than_a_training_event_of_the_same_user(demo_events):
    split = mmrec.leave_last_out(demo_events, n_test=2, n_valid=1)
    train_last = split.train.frame.groupby("user")["timestamp"].max()
    for later in (split.valid.frame, split.test.frame):
        first = later.groupby("user")["timestamp"].min()
        assert (first >= train_last.loc[first.index]).all()
    assert (split.test.frame.groupby("user").size() == 2).all()
    keys = lambda f: set(map(tuple, f[["user", "item", "timestamp"]].values.tolist()))  # noqa: E731
    assert not keys(split.train.frame) & keys(split.test.frame)


def test_time_split_is_one_global_timeline(demo_events):
    split = mmrec.time_split(demo_events, valid_fraction=0.1, test_fraction=0.2)
    assert split.train.frame["timestamp"].max() < split.valid.frame["timestamp"].min()
    assert split.valid.frame["timestamp"].max() < split.test.frame["timestamp"].min()
    assert len(split.test) == pytest.approx(0.2 * len(demo_events), rel=0.1)
    again = mmrec.time_split(demo_events, valid_fraction=0.1, test_fraction=0.2)
    pd.testing.assert_frame_equal(again.test.frame, split.test.frame)


def test_split_errors_name_the_problem():
    with pytest.raises(ConfigError, match="n_test"):
        mmrec.leave_last_out(_events([("a", "i", 1)]), n_test=-1)
    with pytest.raises(SchemaError, match="timestamp"):
        mmrec.time_split(mmrec.Interactions.from_frame(pd.DataFrame({"user_id": ["a"], "item_id": ["i"]})))
    partial = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["i", "j"], "timestamp": [1.0, np.nan]})
    with pytest.raises(SchemaError, match="user 'a'"):
        mmrec.leave_last_out(mmrec.Interactions.from_frame(partial))


def _row_keys(part: mmrec.Interactions) -> set:
    return set(map(tuple, part.frame[["user", "item", "timestamp"]].itertuples(index=False)))


def _assert_partition(split: mmrec.Split, events: mmrec.Interactions) -> None:
    parts = [split.train, split.valid, split.test] + ([split.given] if split.given is not None else [])
    assert sum(len(p) for p in parts) <= len(events)
    keys = [_row_keys(p) for p in parts]
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            assert not keys[a] & keys[b], "an event is in two parts"


def test_random_split_is_deterministic_disjoint_and_seeded(demo_events):
    one = mmrec.random_split(demo_events, test_fraction=0.2, valid_fraction=0.1, seed=3)
    two = mmrec.random_split(demo_events, test_fraction=0.2, valid_fraction=0.1, seed=3)
    other = mmrec.random_split(demo_events, test_fraction=0.2, valid_fraction=0.1, seed=4)
    assert one.test.frame.equals(two.test.frame) and not one.test.frame.equals(other.test.frame)
    _assert_partition(one, demo_events)
    assert len(one.train) + len(one.valid) + len(one.test) == len(demo_events)
    assert abs(len(one.test) / len(demo_events) - 0.2) < 0.05


def test_cold_item_split_keeps_every_event_of_held_out_items_out_of_training(demo_events):
    split = mmrec.cold_item_split(demo_events, test_fraction=0.2, valid_fraction=0.1, seed=0)
    _assert_partition(split, demo_events)
    train_items = set(split.train.frame["item"])
    assert not train_items & set(split.test.frame["item"])
    assert not train_items & set(split.valid.frame["item"])
    assert not set(split.valid.frame["item"]) & set(split.test.frame["item"])
    n_items = demo_events.frame["item"].nunique()
    assert split.test.frame["item"].nunique() == round(0.2 * n_items)
    assert len(split.train) + len(split.valid) + len(split.test) == len(demo_events)


def test_cold_user_split_gives_first_events_and_predicts_the_rest(demo_events):
    split = mmrec.cold_user_split(demo_events, test_fraction=0.25, n_given=2, seed=0)
    _assert_partition(split, demo_events)
    test_users = set(split.test.frame["user"])
    assert test_users and not test_users & set(split.train.frame["user"])
    given = split.given.frame
    assert (given.groupby("user").size() == 2).all()
    for user in test_users:  # every given event precedes every target event of that user
        assert given.loc[given["user"] == user, "timestamp"].max() <= \
            split.test.frame.loc[split.test.frame["user"] == user, "timestamp"].min()
    history = split.history
    assert len(history) == len(split.train) + len(split.valid) + len(split.given)
    assert "dropped_short_users" in split.kind


def test_make_split_reads_a_config_and_names_bad_options(demo_events):
    from mmrec.data.splits import make_split

    split = make_split(demo_events, {"kind": "cold_items", "test_fraction": 0.1})
    assert split.kind.startswith("cold_item_split")
    with pytest.raises(ConfigError, match="cold_items"):
        make_split(demo_events, {"kind": "cold_items", "n_given": 3})
    with pytest.raises(ConfigError, match="test_fraction"):
        mmrec.random_split(demo_events, test_fraction=1.5)
