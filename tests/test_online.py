"""OnlineRecommender: feedback moves recommendations at once; new users, new items, forgetting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.errors import ConfigError, SchemaError


@pytest.fixture(scope="module")
def served(demo, demo_items, demo_events):
    model = mmrec.TwoTower(user_tower="gru", dim=16, epochs=3, batch_size=16, seed=0)
    model.fit(demo_items, demo_events, show_progress=False)
    index = mmrec.build_index(model.encode_items(demo_items), spec="Flat")
    topic = mmrec.Catalog.from_path(demo.catalog).frame.set_index("item_id")["category"]
    return model, index, topic


def _topic_share(recs: pd.DataFrame, topic: pd.Series, wanted: str) -> float:
    return float((topic.loc[recs["item"]] == wanted).mean())


def test_new_feedback_moves_recommendations_at_once(served, demo_events):
    model, index, topic = served
    online = mmrec.OnlineRecommender(model, index, history=demo_events, alpha=0.7)
    user = demo_events.users[0]
    mine = set(topic.loc[demo_events.frame.loc[demo_events.frame["user"] == user, "item"]])
    other = next(t for t in topic.unique() if t not in mine)
    before = online.recommend(user, k=10)
    assert (before["source"] == "online").all()
    for step, item in enumerate(topic.index[topic == other][:4]):
        online.observe(user, item, "purchase", 1.0, timestamp=2e9 + step)
    after = online.recommend(user, k=10)
    assert _topic_share(after, topic, other) > _topic_share(before, topic, other) + 0.3
    assert not set(after["item"]) & set(topic.index[topic == other][:4])  # observed items are seen
    frozen = mmrec.OnlineRecommender(model, index, history=demo_events, alpha=0.0)
    frozen.observe(user, topic.index[topic == other][0], "purchase", 1.0)
    long_only = model.encode_users(demo_events, users=[user]).vectors[0]
    assert frozen.user_vector(user) == pytest.approx(long_only, abs=1e-5)


def test_a_new_user_gets_popular_items_then_the_tower_over_their_first_events(served, demo_events):
    model, index, topic = served
    online = mmrec.OnlineRecommender(model, index, history=demo_events, new_user_events=5)
    cold = online.recommend("newcomer", k=5)
    assert (cold["source"] == "popularity").all() and len(cold) == 5
    wanted = topic.unique()[2]
    firsts = list(topic.index[topic == wanted][:3])
    for step, item in enumerate(firsts):
        online.observe("newcomer", item, "click", timestamp=1e9 + step)
    warm = online.recommend("newcomer", k=5)
    assert (warm["source"] == "online").all() and not set(warm["item"]) & set(firsts)
    events = mmrec.Interactions(pd.DataFrame({"user": "newcomer", "item": firsts, "event": "click",
                                              "value": 1.0, "timestamp": 1e9 + np.arange(3.0)}))
    tower = model.encode_users(events, users=["newcomer"]).vectors[0]
    assert online.user_vector("newcomer") == pytest.approx(tower, abs=1e-5)
    # without the tower (new_user_events=0) the decayed sum of the item vectors follows the topic
    summed = mmrec.OnlineRecommender(model, index, history=demo_events, new_user_events=0)
    for item in firsts:
        summed.observe("newcomer", item, "click")
    assert _topic_share(summed.recommend("newcomer", k=5), topic, wanted) >= 0.6


def test_the_popularity_fallback_by_segment_filter_and_diversity(served, demo, demo_items, demo_events):
    model, index, topic = served
    catalog = mmrec.Catalog.from_path(demo.catalog)
    attributed = mmrec.build_index(model.encode_items(demo_items), spec="Flat", attributes=catalog)
    frame = demo_events.frame
    users = pd.Index(demo_events.users)
    wanted = topic.unique()[1]
    # a segment whose users all touched ``wanted`` items most: "de" = users with any such event
    fans = set(frame.loc[topic.loc[frame["item"]].to_numpy() == wanted, "user"])
    locale = pd.DataFrame({"locale": ["de" if u in fans else "fr" for u in users]}, index=users)
    online = mmrec.OnlineRecommender(model, attributed, history=demo_events, user_attributes=locale,
                                     diversify_by="category")
    plain = online.recommend("nobody", k=len(topic.unique()))
    assert (plain["source"] == "popularity").all()
    assert topic.loc[plain["item"]].nunique() == len(plain)  # one item of each category first
    in_de = online.recommend("nobody", k=5, segment={"locale": "de"})
    de_counts = frame[frame["user"].isin(fans)].drop_duplicates(["user", "item"])["item"].value_counts()
    assert de_counts.get(in_de["item"].iloc[0]) == de_counts.max()
    only = online.recommend("nobody", k=5, where={"category": wanted})
    assert (topic.loc[only["item"]] == wanted).all() and len(only) == 5
    user = demo_events.users[0]
    filtered = online.recommend(user, k=5, where={"category": wanted})
    assert (filtered["source"] == "online").all() and (topic.loc[filtered["item"]] == wanted).all()
    # the counts follow observe and forget without a recount
    online.observe("newcomer", topic.index[0], "click")
    online.observe(demo_events.users[0], topic.index[1], "click")
    online.forget(demo_events.users[2])
    recount = mmrec.ranking.popularity.PopularityFallback(attributed, online.history)
    assert online.fallback.counts == pytest.approx(recount.counts)
    with pytest.raises(mmrec.errors.SchemaError, match="segment attribute 'age'"):
        online.recommend("nobody", k=3, segment={"age": 3})
    with pytest.raises(ConfigError, match="diversify_by"):
        mmrec.OnlineRecommender(model, index, history=demo_events, diversify_by="category")


def test_items_added_to_the_index_can_be_observed_and_recommended(served, demo_items, demo_events):
    model, index, topic = served
    index = mmrec.build_index(model.encode_items(demo_items), spec="Flat")
    new_item = demo_items.ids[0]
    vector = model.encode_items(demo_items).fused[0]
    index.add(["brand-new"], vector[None, :])
    online = mmrec.OnlineRecommender(model, index, history=demo_events)
    online.observe("someone", "brand-new", "click")
    assert "brand-new" in online.history.frame["item"].tolist()
    assert new_item in set(online.recommend("someone", k=3)["item"])  # the twin of what they saw
    with pytest.raises(SchemaError, match="'nope' is not in the index"):
        online.observe("someone", "nope", "click")
    with pytest.raises(SchemaError, match="value nan"):
        online.observe("someone", new_item, "play", float("nan"))


def test_refresh_every_reruns_the_tower(served, demo_events):
    model, index, topic = served
    online = mmrec.OnlineRecommender(model, index, history=demo_events, refresh_every=2)
    user = demo_events.users[1]
    frame = demo_events.frame
    items = [i for i in topic.index if i not in set(frame.loc[frame["user"] == user, "item"])]
    online.observe(user, items[0], timestamp=3e9)
    assert online._states[user].new_events == 1
    online.observe(user, items[1], timestamp=3e9 + 1)
    state = online._states[user]
    assert state.new_events == 0 and state.short is None
    expected = model.encode_users(online.history, users=[user]).vectors[0]
    assert online.user_vector(user) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("refresh_every", [None, 2])
def test_a_batch_leaves_the_state_one_event_at_a_time_leaves(served, demo_items, demo_events,
                                                              refresh_every):
    model, _, topic = served
    index = mmrec.build_index(model.encode_items(demo_items), spec="Flat")
    index.add(["unseen"], model.encode_items(demo_items).fused[:1] * 0.5)  # no learned signal
    rng = np.random.default_rng(0)
    known = list(demo_events.users[:6])
    users = known + ["new1", "new2", "new3", "cold-only"]
    events = [{"user": u, "item": str(rng.choice(topic.index)),
               "event": str(rng.choice(["click", "purchase"])), "value": 1.0, "timestamp": 4e9 + 60.0 * n}
              for n, u in enumerate(rng.choice(users[:-1], size=60))]
    events[5:5] = [{"user": "cold-only", "item": "unseen", "event": "click", "value": 1.0,
                    "timestamp": 4e9 + 1.0 + step} for step in range(4)]

    def made() -> mmrec.OnlineRecommender:
        return mmrec.OnlineRecommender(model, index, history=demo_events, new_user_events=3,
                                       refresh_every=refresh_every, half_life=600.0)

    one_by_one, batched = made(), made()
    for e in events:
        one_by_one.observe(**e)
    runs = []
    encode_users = model.encode_users
    model.encode_users = lambda *a, **k: (runs.append(1), encode_users(*a, **k))[1]
    try:
        batched.observe_many(events)
    finally:
        del model.encode_users
    assert len(runs) == 2  # the known users' first touches, then everyone due a refresh
    for user in users:
        a, b = one_by_one._states[user], batched._states[user]
        assert (a.new_events, a.observed, a.last_time) == (b.new_events, b.observed, b.last_time), user
        for part in ("long", "short"):
            x, y = getattr(a, part), getattr(b, part)
            assert (x is None) == (y is None), (user, part)
            if x is not None:
                np.testing.assert_allclose(x, y, atol=1e-5, err_msg=f"{user} {part}")
        np.testing.assert_allclose(one_by_one.user_vector(user), batched.user_vector(user), atol=1e-5)
    with pytest.raises(SchemaError, match="'nope' is not in the index"):
        batched.observe_many([{"user": "new9", "item": topic.index[0]}, {"user": "new9", "item": "nope"}])
    assert "new9" not in batched.users()  # all or none


def test_warm_computes_every_known_user_as_their_first_touch_would(served, demo_events):
    model, index, _ = served
    lazy = mmrec.OnlineRecommender(model, index, history=demo_events)
    warmed = mmrec.OnlineRecommender(model, index, history=demo_events)
    assert warmed.warm(chunk=7) == len(demo_events.users)
    assert warmed.warm() == 0  # nothing left to compute
    runs = []
    encode_users = model.encode_users
    model.encode_users = lambda *a, **k: (runs.append(1), encode_users(*a, **k))[1]
    try:
        for user in demo_events.users[:25]:
            np.testing.assert_allclose(warmed.user_vector(user), lazy.user_vector(user), atol=1e-5)
    finally:
        del model.encode_users
    assert len(runs) == 25  # the lazy one's first touches only


def test_forget_removes_the_user_and_leaves_others_alone(served, demo_events):
    model, index, topic = served
    online = mmrec.OnlineRecommender(model, index, history=demo_events)
    gone, kept = demo_events.users[:2]
    before = online.recommend(kept, k=10)
    online.observe(gone, topic.index[0], "click", timestamp=4e9)
    n = online.forget(gone)
    assert n == int((demo_events.frame["user"] == gone).sum()) + 1
    assert gone not in set(online.history.frame["user"]) and gone not in online.users()
    assert (online.recommend(gone, k=3)["source"] == "popularity").all()
    after = online.recommend(kept, k=10)
    assert after["item"].tolist() == before["item"].tolist()
    assert np.allclose(after["score"], before["score"], atol=1e-5)


def test_settings_are_checked(served):
    model, index, _ = served
    with pytest.raises(ConfigError):
        mmrec.OnlineRecommender(model, index, alpha=1.5)
    with pytest.raises(ConfigError, match="dimensions"):
        mmrec.OnlineRecommender(model, mmrec.build_index(np.eye(4, dtype=np.float32)))


def test_a_forgotten_user_is_in_no_saved_artifact(served, demo_events, tmp_path):
    """Models and indices hold item ids and vectors only; the behaviour log written after
    ``forget`` no longer names the user, and nothing else ever did."""
    model, index, topic = served
    online = mmrec.OnlineRecommender(model, index, history=demo_events)
    gone = demo_events.users[3]
    online.observe(gone, topic.index[1], "click", timestamp=5e9)
    online.forget(gone)
    model.save(tmp_path / "model")
    index.save(tmp_path / "index")
    online.history.frame.to_csv(tmp_path / "events.csv", index=False)
    needle = gone.encode("utf-8")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for path in files:
        assert needle not in path.read_bytes(), f"{gone!r} is still in {path.name}"
    kept = demo_events.users[4].encode("utf-8")
    assert kept in (tmp_path / "events.csv").read_bytes()  # the check can fail: others are there
