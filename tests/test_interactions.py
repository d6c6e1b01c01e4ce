import logging

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.errors import ConfigError, SchemaError


def log(**overrides):
    data = {
        "user_id": ["u1", "u1", "u2", "u2"],
        "item_id": ["a", "b", "a", "c"],
        "timestamp": [10, 20, 5, 7],
        "event": ["click", "rating", "Purchase", "play"],
        "value": [None, 5, None, 2.0],
    }
    data.update(overrides)
    return pd.DataFrame(data)


def test_standard_columns_and_inference():
    events = mmrec.Interactions.from_frame(log())
    f = events.frame
    assert list(f.columns) == ["user", "item", "timestamp", "event", "value"]
    assert f["event"].tolist() == ["click", "rating", "purchase", "play"]
    assert f["timestamp"].tolist() == [10.0, 20.0, 5.0, 7.0]
    assert list(events.users) == ["u1", "u2"]


def test_event_weights_hand_computed():
    events = mmrec.Interactions.from_frame(log())
    w = mmrec.EventWeights(weights={"click": 1.0, "rating": 2.0, "purchase": 5.0, "play": 0.5},
                           rating_center=3.0)
    # click: 1*1; rating 5: 2*(5-3); purchase (no value): 5*1; play value 2: 0.5*2
    np.testing.assert_allclose(events.weights(w), [1.0, 4.0, 5.0, 1.0])


def test_unknown_event_policy():
    events = mmrec.Interactions.from_frame(log(event=["click", "rating", "teleport", "play"]))
    strict = mmrec.EventWeights(unknown_event="error")
    with pytest.raises(ConfigError, match="'teleport'"):
        events.weights(strict)
    lenient = mmrec.EventWeights(default_weight=0.25)
    assert events.weights(lenient)[2] == 0.25


def test_rating_column_without_event_column_means_ratings():
    df = pd.DataFrame({"userId": [1, 1], "movieId": [7, 8], "rating": [4.0, 2.0]})
    events = mmrec.Interactions.from_frame(df)
    assert events.frame["event"].tolist() == ["rating", "rating"]
    np.testing.assert_allclose(events.weights(), [1.0, -1.0])


def test_iso_dates_are_parsed_to_epoch_seconds():
    events = mmrec.Interactions.from_frame(log(timestamp=["1970-01-01T00:00:10Z", "1970-01-02",
                                                          None, "1970-01-01 00:01:00"]))
    ts = events.frame["timestamp"].to_numpy()
    assert ts[0] == 10.0 and ts[1] == 86400.0 and np.isnan(ts[2]) and ts[3] == 60.0


def test_ids_and_labels_are_normalised_per_distinct_string_and_variants_share_a_code():
    events = mmrec.Interactions.from_frame(log(user_id=[" u1", "u1", "u2 ", "u2"],
                                               item_id=["a", " a ", "b", "a"],
                                               event=["Click", " click", None, "PLAY "]))
    frame = events.frame
    assert frame["user"].tolist() == ["u1", "u1", "u2", "u2"]
    assert frame["item"].tolist() == ["a", "a", "b", "a"]
    assert frame["event"].tolist() == ["click", "click", "interaction", "play"]  # absent: the default label
    assert events.distinct("user").tolist() == ["u1", "u2"] and events.distinct("item").tolist() == ["a", "b"]
    assert list(events.codes("user")[1]) == ["u1", "u2"]  # " u1" and "u1" are one user, stored once
    with pytest.raises(SchemaError, match=r"rows 1, 3, column 'item_id': id is missing"):
        mmrec.Interactions.from_frame(log(item_id=["a", "  ", "b", ""]))
    numbers = mmrec.Interactions.from_frame(log(user_id=[7, 7.0, 8, 8], event=[1, 1, 2, None]))
    assert numbers.frame["user"].tolist() == ["7", "7", "8", "8"]  # the per-row path for non-strings
    assert numbers.frame["event"].tolist() == ["1", "1", "2", "interaction"]


def test_bad_rows_are_named():
    with pytest.raises(SchemaError, match=r"row 2, column 'timestamp': 'yesterday'"):
        mmrec.Interactions.from_frame(log(timestamp=[1, 2, "yesterday", 4]))
    with pytest.raises(SchemaError, match=r"row 1, column 'user_id': id is missing"):
        mmrec.Interactions.from_frame(log(user_id=["u1", None, "u2", "u2"]))
    with pytest.raises(SchemaError, match=r"row 3, column 'value': value 'lots' is not a number"):
        mmrec.Interactions.from_frame(log(value=[1, 2, 3, "lots"]))
    with pytest.raises(SchemaError, match="need a user and an item column"):
        mmrec.Interactions.from_frame(pd.DataFrame({"who": [1], "what": [2]}))


def test_unknown_items_are_dropped_and_reported(caplog):
    events = mmrec.Interactions.from_frame(log())
    with caplog.at_level(logging.WARNING, logger="mmrec"):
        kept = events.restrict_to_items(["a", "b"])
    assert len(kept) == 3
    assert kept.dropped.n_events == 1 and kept.dropped.item_ids == ("c",)
    assert "dropped 1 event(s) with 1 unknown item id(s): 'c'" in caplog.text
    assert events.restrict_to_items(["a", "b", "c"]) is events


def test_reads_csv_file(tmp_path):
    path = tmp_path / "events.csv"
    log().to_csv(path, index=False)
    events = mmrec.Interactions.from_path(path)
    assert len(events) == 4 and events.frame["value"].isna().tolist() == [True, False, True, False]


def test_blank_event_types_become_the_default_event():
    events = mmrec.Interactions.from_frame(log(event=[None, "  ", " Click ", "play"]))
    assert events.frame["event"].tolist() == ["interaction", "interaction", "click", "play"]


def test_blank_and_mixed_type_ids():
    with pytest.raises(SchemaError, match=r"row 2, column 'item_id': id is missing"):
        mmrec.Interactions.from_frame(log(item_id=["a", 5, "   ", "c"]))
    events = mmrec.Interactions.from_frame(log(item_id=["a", 5, 6.0, " c "]))
    assert events.frame["item"].tolist() == ["a", "5", "6", "c"]


@pytest.mark.parametrize("tz", [None, "Europe/Paris"])
def test_datetime_columns_become_epoch_seconds(tz):
    stamps = pd.to_datetime(["1970-01-01 00:00:10", "1970-01-02 00:00:00", None])
    if tz:
        stamps = stamps.tz_localize("UTC").tz_convert(tz)
    frame = pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["a", "b", "c"], "timestamp": stamps})
    ts = mmrec.Interactions.from_frame(frame).frame["timestamp"].to_numpy()
    assert ts[0] == 10.0 and ts[1] == 86400.0 and np.isnan(ts[2])


def test_dates_past_2262_are_seconds_not_an_overflow():
    # pandas parses "3000-01-01" at second resolution; a nanosecond epoch used to overflow on it
    frame = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "a"],
                          "timestamp": ["3000-01-01", "1500-01-01T00:00:00Z", 5.0]})
    seconds = mmrec.Interactions.from_frame(frame).frame["timestamp"].tolist()
    assert seconds == [32503680000.0, -14831769600.0, 5.0]
    as_datetimes = frame.assign(timestamp=pd.to_datetime(["3000-01-01"] * 3).as_unit("s"))
    assert mmrec.Interactions.from_frame(as_datetimes).frame["timestamp"].tolist() == [32503680000.0] * 3


def test_event_weight_names_match_events_in_any_case(write):
    events = mmrec.Interactions.from_frame(pd.DataFrame({
        "user": ["u1", "u1"], "item": ["a", "b"], "event": ["Purchase", "CLICK"], "timestamp": [1, 2]}))
    weights = mmrec.EventWeights(weights={"Purchase": 5.0, " click ": 1.0}, explicit=["Rating"],
                                 unknown_event="error")
    assert weights.explicit == ("rating",)
    assert events.weights(weights).tolist() == [5.0, 1.0]
    with pytest.raises(mmrec.ConfigError, match="both read as 'click'"):
        mmrec.EventWeights(weights={"click": 1.0, "Click": 2.0})


def test_the_log_is_held_in_codes_and_narrow_numbers_that_lose_nothing():
    frame = pd.DataFrame({"user_id": ["u1", "u2", "u1", "u3"], "item_id": [7, 8, 7, 9],
                          "event": ["click", "rating", "click", "click"],
                          "value": [1.0, 4.5, 2.0, 3.0], "timestamp": [1.7e9, 1.7e9 + 1, 1.7e9 + 2, 5.0]})
    events = mmrec.Interactions.from_frame(frame)
    codes, users = events.codes("user")
    assert users[codes].tolist() == ["u1", "u2", "u1", "u3"] and events.users.tolist() == ["u1", "u2", "u3"]
    assert events.nbytes < 4 * (1 + 1 + 1 + 4 + 4) + 3 * 200  # codes, uint32 seconds, float32 values
    standard = events.frame
    assert standard["item"].tolist() == ["7", "8", "7", "9"] and standard["item"].dtype == object
    assert standard["timestamp"].tolist() == frame["timestamp"].tolist()
    assert standard["value"].tolist() == frame["value"].tolist()
    assert standard["value"].dtype == np.float64 and standard["timestamp"].dtype == np.float64
    # numbers that would not survive narrowing keep float64
    exact = frame.assign(value=[0.1, 1e308, np.nan, 3.0], timestamp=[0.5, 1.0, 2.0, 3.0])
    kept = mmrec.Interactions.from_frame(exact).frame
    assert kept["value"].tolist()[:2] == [0.1, 1e308] and np.isnan(kept["value"].iloc[2])
    assert kept["timestamp"].tolist() == [0.5, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        events.timestamps[0] = 0.0  # read-only views of the log's memory


def test_select_and_user_mask_keep_codes_and_drop_ids_left_without_events():
    frame = pd.DataFrame({"user": ["a", "b", "a", "c", "b"], "item": ["x", "y", "z", "x", "w"],
                          "timestamp": [1.0, 2.0, 3.0, 4.0, 5.0], "event": ["click"] * 5,
                          "value": [1.0] * 5})
    events = mmrec.Interactions.from_frame(frame)
    mask = events.user_mask(["b", "nobody", "b"])
    assert mask.tolist() == [False, True, False, False, True]
    picked = events.select(mask)
    pd.testing.assert_frame_equal(picked.frame, events.frame.loc[mask].reset_index(drop=True))
    assert list(picked.codes("user")[1]) == ["b"] and sorted(picked.codes("item")[1]) == ["w", "y"]
    assert events.for_users(["a"]).frame["item"].tolist() == ["x", "z"]
    assert len(events.select(np.zeros(5, bool))) == 0 and not events.user_mask([]).any()
    with pytest.raises(mmrec.SchemaError, match="one flag per event"):
        events.select(np.ones(3, bool))
