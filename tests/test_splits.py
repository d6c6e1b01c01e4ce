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
