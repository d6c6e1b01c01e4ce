import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.datasets.demo import topic_hit_rate
from mmrec.errors import SchemaError


def toy_index():
    # items 0-2 point along x, 3-5 along y, 6 along z
    vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0.8, 0.2, 0], [0, 1, 0], [0.1, 0.9, 0],
                        [0.2, 0.8, 0], [0, 0, 1]], np.float32)
    return mmrec.build_index(vectors, ids=[f"i{i}" for i in range(7)])


def events(rows):
    return mmrec.Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "event", "value"]))


def test_recommends_similar_unseen_items_and_honours_k():
    log = events([("u", "i0", "click", None), ("u", "i1", "click", None)])
    recs = mmrec.recommend(toy_index(), log, users=["u"], k=3)
    assert recs["item"].tolist()[0] == "i2"
    assert len(recs) == 3 and not {"i0", "i1"} & set(recs["item"])
    assert recs["rank"].tolist() == [1, 2, 3] and recs["source"].unique().tolist() == ["content"]
    assert list(recs.columns) == ["user", "rank", "item", "score", "source"]
    with_seen = mmrec.recommend(toy_index(), log, users=["u"], k=3, exclude_seen=False)
    assert with_seen["item"].tolist()[0] == "i0"


def test_negative_ratings_push_away():
    log = events([("u", "i0", "rating", 5), ("u", "i3", "rating", 1)])
    recs = mmrec.recommend(toy_index(), log, users=["u"], k=2)
    assert recs["item"].tolist() == ["i1", "i2"]


def test_cold_and_unknown_users_get_popular_unseen_items():
    log = events([("a", "i6", "click", None), ("b", "i6", "click", None), ("b", "i3", "click", None),
                  ("c", "i3", "rating", 3)])  # c's only rating is neutral: no signal
    recs = mmrec.recommend(toy_index(), log, users=["c", "nobody"], k=2)
    c = recs[recs["user"] == "c"]
    assert c["item"].tolist() == ["i6", "i0"] and set(c["source"]) == {"popularity"}
    nobody = recs[recs["user"] == "nobody"]
    assert nobody["item"].tolist() == ["i3", "i6"]


def test_unknown_items_are_dropped_with_a_report(caplog):
    log = events([("u", "i0", "click", None), ("u", "ghost", "click", None)])
    recs = mmrec.recommend(toy_index(), log, users=["u"], k=2)
    assert len(recs) == 2 and "unknown item id(s): 'ghost'" in caplog.text


def test_half_life_favours_recent_events():
    frame = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["i0", "i3"], "timestamp": [0, 1000]})
    log = mmrec.Interactions.from_frame(frame)
    plain = mmrec.user_vectors(toy_index(), log).vectors[0]
    recent = mmrec.user_vectors(toy_index(), log, half_life=100.0).vectors[0]
    assert abs(plain[0] - plain[1]) < 1e-6 and recent[1] > 0.99


def test_rating_without_value_is_an_error_naming_the_row():
    log = events([("u", "i0", "click", None), ("u", "i1", "rating", None)])
    message = r"row 1 \(user 'u', item 'i1'\) is a 'rating' event without a value"
    with pytest.raises(SchemaError, match=message):
        mmrec.recommend(toy_index(), log, users=["u"])


def test_k_honoured_when_user_saw_almost_everything():
    log = events([("u", f"i{i}", "click", None) for i in range(5)])
    recs = mmrec.recommend(toy_index(), log, users=["u"], k=4)
    assert recs["item"].tolist() == ["i5", "i6"]  # only two unseen items exist


def test_demo_users_get_items_of_their_own_topics(demo, demo_items, demo_events):
    index = mmrec.build_index(demo_items)
    recs = mmrec.recommend(index, demo_events, k=5)
    assert recs["user"].nunique() == 40 and (recs.groupby("user").size() == 5).all()
    seen = set(zip(demo_events.frame["user"], demo_events.frame["item"], strict=True))
    assert not any((u, i) in seen for u, i in zip(recs["user"], recs["item"], strict=True))
    assert topic_hit_rate(recs, demo) > 0.8  # chance is 0.25


def test_a_dataframe_is_accepted_as_events():
    frame = pd.DataFrame({"user_id": ["u"], "item_id": ["i0"]})
    recs = mmrec.recommend(toy_index(), frame, k=1)
    assert recs["item"].tolist() == ["i1"]
