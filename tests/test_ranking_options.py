"""RankingOptions: one checked object for every ranking path (recommend, recommend_batches, the
online recommenders, the service and its HTTP route), and keywords of its fields as overrides."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec import RankingOptions
from mmrec.baselines import ItemKNN
from mmrec.errors import ConfigError, MmrecError, SchemaError
from mmrec.ranking.scored_online import ScoredOnline

N_ITEMS, DIM = 120, 8


def shelf_index() -> mmrec.ItemIndex:
    vectors = np.random.default_rng(0).standard_normal((N_ITEMS, DIM)).astype(np.float32)
    ids = [f"i{i}" for i in range(N_ITEMS)]
    return mmrec.build_index(vectors, ids=ids, spec="Flat",
                             attributes=pd.DataFrame({"item_id": ids, "shelf": np.arange(N_ITEMS) % 3}))


def small_log(n_users: int = 30) -> mmrec.Interactions:
    rng = np.random.default_rng(1)
    n = n_users * 5
    return mmrec.Interactions.from_frame(pd.DataFrame({
        "user_id": [f"u{u}" for u in np.repeat(np.arange(n_users), 5)],
        "item_id": [f"i{i}" for i in rng.integers(0, N_ITEMS, n)],
        "timestamp": rng.uniform(0, 1e5, n),
        "event": rng.choice(["click", "purchase"], n),
    }))


CASES = [
    {},
    {"k": 7, "exclude_seen": False},
    {"k": 5, "where": {"shelf": [0, 2]}, "half_life": 3e4},
    {"k": 6, "diversify": 0.6, "rerank": "dpp", "where": {"shelf": 1}},
    {"k": 4, "diversify": 0.3, "event_weights": mmrec.EventWeights(weights={"click": 1.0, "purchase": 4.0})},
]


@pytest.mark.parametrize("fields", CASES)
def test_options_object_and_keywords_give_the_same_frames(fields):
    index, log = shelf_index(), small_log()
    users = ["u3", "nobody", "u1", "u17"]
    keywords = mmrec.recommend(index, log, users=users, **fields)
    options = RankingOptions(**fields)
    assert len(keywords) and set(keywords.groupby("user").size()) <= {options.k}
    pd.testing.assert_frame_equal(mmrec.recommend(index, log, users=users, options=options), keywords)
    for batches in (mmrec.recommend_batches(index, log, users=users, batch_size=3, options=options),
                    mmrec.recommend_batches(index, log, users=users, batch_size=3, **fields)):
        pd.testing.assert_frame_equal(pd.concat(list(batches), ignore_index=True), keywords)
    if "where" in fields:  # the filter is honoured, through the object as through the keyword
        allowed = set(index.ids[index.mask(fields["where"])])
        assert set(keywords["item"]) <= allowed


def test_a_keyword_overrides_the_object_and_defaults_are_the_old_defaults():
    index, log = shelf_index(), small_log()
    base = RankingOptions(k=3, where={"shelf": 0})
    pd.testing.assert_frame_equal(mmrec.recommend(index, log, options=base, k=8),
                                  mmrec.recommend(index, log, k=8, where={"shelf": 0}))
    assert base.k == 3  # the object itself is unchanged
    pd.testing.assert_frame_equal(mmrec.recommend(index, log, options=RankingOptions()),
                                  mmrec.recommend(index, log))
    assert (mmrec.recommend(index, log).groupby("user").size() == 10).all()


def test_an_unknown_keyword_is_a_config_error_naming_it_and_the_valid_ones():
    index, log = shelf_index(), small_log()
    with pytest.raises(ConfigError, match=r"recommend: unknown option\(s\) \['kk'\].*'exclude_seen'"):
        mmrec.recommend(index, log, kk=3)
    with pytest.raises(ConfigError, match=r"\['exclude_seem'\] \(did you mean 'exclude_seen'\?\)"):
        mmrec.recommend_batches(index, log, exclude_seem=False)  # refused at the call, not when read
    with pytest.raises(ConfigError, match="options must be an mmrec.RankingOptions"):
        mmrec.recommend(index, log, options={"k": 3})


@pytest.mark.parametrize(("fields", "error", "named"), [
    ({"k": 0}, ConfigError, "k must be an integer >= 1"),
    ({"k": 2.5}, ConfigError, "k must be"),
    ({"k": True}, ConfigError, "k must be"),
    ({"diversify": 1.5}, ConfigError, "diversify must be a number in"),
    ({"diversify": "0.5"}, ConfigError, "diversify must be"),
    ({"rerank": "nope"}, MmrecError, "nope"),
    ({"half_life": 0}, ConfigError, "half_life must be > 0"),
    ({"half_life": float("nan")}, ConfigError, "half_life must be > 0"),
    ({"exclude_seen": "no"}, ConfigError, "exclude_seen must be True or False"),
    ({"where": ["shelf"]}, ConfigError, "where must map item attributes"),
    ({"event_weights": {"click": 1.0}}, ConfigError, "event_weights must be an mmrec.EventWeights"),
])
def test_invalid_values_are_rejected_when_the_options_are_built(fields, error, named):
    with pytest.raises(error, match=named):
        RankingOptions(**fields)
    with pytest.raises(error, match=named):  # a replaced field is checked again
        dataclasses.replace(RankingOptions(), **fields)


def test_options_are_frozen_normalised_and_copy_the_filter():
    where = {"shelf": [0]}
    options = RankingOptions(k=np.int64(4), exclude_seen=np.bool_(False), diversify=1, where=where)
    where["shelf"] = [1]
    where["other"] = 2
    assert options.where == {"shelf": [0]}  # later edits of the caller's dict do not leak in
    assert type(options.k) is int and options.exclude_seen is False and options.diversify == 1.0
    assert RankingOptions(where={}).where is None  # empty: no filter, as before
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.k = 5


def test_a_model_refuses_the_content_profile_options():
    """The user tower weighs the history itself: half_life / event_weights would be ignored."""
    index, log = shelf_index(), small_log()
    # refused before the model makes a vector: a stand-in of the index's width will do
    model = types.SimpleNamespace(vector_dim=DIM, config=types.SimpleNamespace(dim=DIM))
    for call in (mmrec.recommend, mmrec.recommend_batches):
        with pytest.raises(ConfigError, match="half_life cannot apply here.*user tower"):
            call(index, log, model=model, half_life=60.0)
        with pytest.raises(ConfigError, match="event_weights cannot apply here"):
            call(index, log, model=model, options=RankingOptions(event_weights=mmrec.EventWeights()))


@pytest.fixture(scope="module")
def two_tower(demo_items, demo_events):
    model = mmrec.TwoTower(user_tower="mean", dim=8, epochs=1, batch_size=32, seed=0)
    return model.fit(demo_items, demo_events, show_progress=False)


def test_the_online_path_and_the_service_take_the_same_object(two_tower, demo, demo_events):
    from mmrec.serve import Service

    catalog = mmrec.Catalog.from_path(demo.catalog)
    category = catalog.frame["category"].iloc[0]
    user = demo_events.users[0]
    options = RankingOptions(k=6, where={"category": [category]}, diversify=0.4)
    service = Service(two_tower, catalog, history=demo_events)
    online = service.online
    recs = online.recommend(user, options=options)
    pd.testing.assert_frame_equal(recs, online.recommend(user, k=6, where={"category": [category]},
                                                         diversify=0.4))
    categories = catalog.frame.set_index("item_id")["category"]
    assert len(recs) == 6 and set(categories.loc[recs["item"]]) == {category}
    answer = service.recommend(user, options=options)
    assert [card["item"] for card in answer["items"]] == recs["item"].tolist()
    assert len(service.recommend(user, 3, options=options)["items"]) == 3  # k given here wins
    assert len(online.recommend(user, 2, options=options)) == 2
    with pytest.raises(SchemaError, match="k must be between 1 and 100"):
        service.recommend(user, options=dataclasses.replace(options, k=101))
    for call in (online.recommend, service.recommend):  # the live state has its own decay and weights
        with pytest.raises(ConfigError, match="half_life cannot apply here"):
            call(user, options=RankingOptions(half_life=60.0))
        with pytest.raises(ConfigError, match=r"unknown option\(s\) \['diversity'\]"):
            call(user, diversity=0.3)

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from mmrec.serve.app import create_app

    client = TestClient(create_app(service))
    body = client.get(f"/recommend/{user}", params={"k": 6, "filter": f"category={category}",
                                                    "diversify": 0.4}).json()
    assert [card["item"] for card in body["items"]] == recs["item"].tolist()


def test_a_scored_model_served_live_takes_the_object_too(demo_items, demo_events, demo):
    attributes = mmrec.Catalog.from_path(demo.catalog).frame.set_index("item_id")[["category"]]
    live = ScoredOnline(ItemKNN().fit(demo_items, demo_events), history=demo_events, attributes=attributes)
    user = demo_events.users[1]
    category = attributes["category"].iloc[0]
    options = RankingOptions(k=4, where={"category": category}, exclude_seen=False)
    items, scores, source = live.ranked(user, options=options)
    same, same_scores, _ = live.ranked(user, k=4, where={"category": category}, exclude_seen=False)
    assert source == "model" and len(items) == 4 and list(items) == list(same)
    np.testing.assert_array_equal(scores, same_scores)
    with pytest.raises(ConfigError, match="diversify re-ranks by item vectors"):
        live.ranked(user, options=RankingOptions(diversify=0.5))
    with pytest.raises(ConfigError, match="event_weights cannot apply here"):
        live.ranked(user, event_weights=mmrec.EventWeights())
    with pytest.raises(ConfigError, match="not per segment"):
        live.ranked(user, segment={"locale": "de"})
