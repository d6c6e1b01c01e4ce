"""One model contract (mmrec.evaluation.protocol.Recommender): every model — the two-tower model,
LightGCN and each baseline — fits, scores, recommends with the same fallback and columns as
mmrec.recommend, saves and loads (checked artifacts), and is served and evaluated from its folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.baselines import (
    BPRMF,
    EASE,
    BiasBaseline,
    ContentMean,
    ItemKNN,
    LightGCN,
    Popularity,
    SegmentPopularity,
)
from mmrec.cli import main
from mmrec.errors import ArtifactError, SchemaError
from mmrec.evaluation.protocol import Recommender
from mmrec.evaluation.registry import SAVED_FORMATS, load_model, make_model
from mmrec.evaluation.tune import ScoreBlend
from mmrec.ranking.scored import COLUMNS
from mmrec.ranking.scored_online import ScoredOnline

TINY_TOWER = {"dim": 16, "max_len": 20, "n_layers": 1, "batch_size": 32, "epochs": 1, "seed": 0}

FACTORIES = {
    "popularity": Popularity,
    "item_knn": lambda: ItemKNN(neighbours=20),
    "ease": lambda: EASE(l2=5.0),
    "bpr": lambda: BPRMF(dim=8, epochs=2, seed=0),
    "content_mean": ContentMean,
    "bias": BiasBaseline,
    "lightgcn": lambda: LightGCN(dim=8, layers=1, epochs=1, seed=0),
    "two_tower": lambda: mmrec.TwoTower(**TINY_TOWER),
    "segment_popularity": SegmentPopularity,
    "score_blend": lambda: ScoreBlend(ItemKNN(neighbours=20), EASE(l2=5.0), 0.6, "rank"),
}


@pytest.fixture(scope="module")
def fitted(demo_items, demo_events):
    models = {}
    for name, factory in FACTORIES.items():
        model = factory()
        fit_options = {"show_progress": False} if name == "two_tower" else {}
        models[name] = model.fit(demo_items, demo_events, **fit_options)
    return models


def test_every_registered_model_has_a_saved_format():
    assert {cls.__name__ for cls in SAVED_FORMATS.values()} == {
        "TwoTower", "Popularity", "ItemKNN", "EASE", "BPRMF", "ContentMean", "BiasBaseline", "LightGCN",
        "SegmentPopularity", "ScoreBlend"}
    assert {type(f()).__name__ for f in FACTORIES.values()} == {
        cls.__name__ for cls in SAVED_FORMATS.values()}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_every_model_implements_the_contract(fitted, name):
    assert isinstance(fitted[name], Recommender)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_save_and_load_give_the_same_scores_and_recommendations(fitted, demo_events, tmp_path, name):
    model = fitted[name]
    users = list(demo_events.users[:5])
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert type(loaded) is type(model)
    assert list(loaded.item_ids_) == list(model.item_ids_)
    np.testing.assert_allclose(loaded.score_items(demo_events, users=users),
                               model.score_items(demo_events, users=users), rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(loaded.recommend(demo_events, users=users, k=5),
                                  model.recommend(demo_events, users=users, k=5))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_recommend_has_one_fallback_and_one_set_of_columns(fitted, demo_events, name):
    model = fitted[name]
    user = demo_events.users[0]
    ghost = pd.DataFrame({"user_id": ["ghost"], "item_id": ["no-such-item"]})
    ghost_events = mmrec.Interactions.from_frame(ghost).frame
    events = mmrec.Interactions(pd.concat([demo_events.frame, ghost_events], ignore_index=True))
    recs = model.recommend(events, users=[user, "ghost"], k=4)
    assert list(recs.columns) == COLUMNS
    mine, theirs = recs[recs["user"] == user], recs[recs["user"] == "ghost"]
    assert mine["source"].eq("model").all() and mine["rank"].tolist() == [1, 2, 3, 4]
    assert not set(mine["item"]) & set(demo_events.frame.loc[demo_events.frame["user"] == user, "item"])
    assert theirs["source"].eq("popularity").all() and len(theirs) == 4
    popular = Popularity().fit(None, events).recommend(events, users=["ghost"], k=4)
    assert theirs["item"].tolist() == popular["item"].tolist()  # the same fallback everywhere


def test_two_tower_recommend_matches_mmrec_recommend_on_a_flat_index(fitted, demo_items, demo_events):
    model = fitted["two_tower"]
    index = mmrec.build_index(model.encode_items(demo_items), spec="Flat")
    users = list(demo_events.users[:6])
    exact = model.recommend(demo_events, users=users, k=5)
    served = mmrec.recommend(index, demo_events, users=users, k=5, model=model)
    assert list(exact.columns) == list(served.columns)
    assert exact["item"].tolist() == served["item"].tolist()


def test_models_take_dataframes_wherever_they_take_interactions(demo_items, demo_events):
    frame = demo_events.frame.rename(columns={"user": "user_id", "item": "item_id"})
    assert EASE(l2=5.0).fit(None, frame).recommend(frame, k=2)["user"].nunique() == demo_events.frame[
        "user"].nunique()
    model = mmrec.TwoTower(**TINY_TOWER).fit(demo_items, frame, show_progress=False)
    assert len(model.recommend(frame, users=[demo_events.users[0]], k=3)) == 3
    with pytest.raises(SchemaError, match="TwoTower.fit expects mmrec.Interactions or a DataFrame"):
        mmrec.TwoTower(**TINY_TOWER).fit(demo_items, [("u", "i")])


def _tamper(folder, change):
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_tampered_artifacts_are_refused_before_use(fitted, tmp_path):
    fitted["ease"].save(tmp_path / "a")
    _tamper(tmp_path / "a", lambda m: m["tensors"]["weights_"].update(shape=[4096, 4096]))
    with pytest.raises(ArtifactError, match="shape"):
        load_model(tmp_path / "a")
    fitted["ease"].save(tmp_path / "b")
    _tamper(tmp_path / "b", lambda m: m["params"].update(l2=-1.0))
    with pytest.raises(ArtifactError, match="EASE"):
        load_model(tmp_path / "b")
    fitted["ease"].save(tmp_path / "c")
    (tmp_path / "c" / "ids.json").write_text(json.dumps({"item_ids_": ["x"]}))
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(tmp_path / "c")
    fitted["bpr"].save(tmp_path / "d")
    with pytest.raises(ArtifactError, match="model.bpr"):
        EASE.load(tmp_path / "d")
    mmrec.build_index(np.eye(4, dtype=np.float32), spec="Flat").save(tmp_path / "index")
    with pytest.raises(ArtifactError, match="not a saved model"):
        load_model(tmp_path / "index")


def test_scored_online_follows_feedback_filters_and_forgets(fitted, demo_events, demo):
    catalog = mmrec.Catalog.from_path(demo.catalog)
    attributes = catalog.frame.set_index("item_id")[["category"]]
    live = ScoredOnline(fitted["item_knn"], history=demo_events, attributes=attributes)
    items, _, source = live.ranked("newcomer", 3)
    assert source == "popularity" and len(items) == 3
    live.observe("newcomer", items[0], "click")
    after, scores, source = live.ranked("newcomer", 3)
    assert source == "model" and items[0] not in after and (np.diff(scores) <= 0).all()
    category = attributes.loc[after[0], "category"]
    filtered, _, _ = live.ranked("newcomer", 5, where={"category": category})
    assert set(attributes.loc[list(filtered), "category"]) == {category}
    assert live.forget("newcomer") == 1 and "newcomer" not in live.users()
    with pytest.raises(SchemaError, match="not one of the model's items"):
        live.observe("u", "no-such-item")


@pytest.mark.parametrize("name", ["bpr", "lightgcn", "content_mean"])
def test_scored_online_past_index_above_ranks_index_candidates_exactly_as_the_full_table(
        name, fitted, demo_events, demo):
    # an exact index (small catalog: Flat) must give the full scoring's ranking: same items, same
    # order, same scores; with a filter and seen items excluded, for a known and a folded-in user
    catalog = mmrec.Catalog.from_path(demo.catalog)
    attributes = catalog.frame.set_index("item_id")[["category"]]
    full = ScoredOnline(fitted[name], history=demo_events, attributes=attributes)
    indexed = ScoredOnline(fitted[name], history=demo_events, attributes=attributes, index_above=10)
    assert full.index is None and indexed.index is not None
    user = demo_events.users[0]
    category = attributes["category"].iloc[0]
    for live in (full, indexed):
        live.observe("newcomer", demo_events.frame["item"].iloc[0], "click")
    for who, where in [(user, None), (user, {"category": category}), ("newcomer", None)]:
        a_items, a_scores, a_source = full.ranked(who, 7, where=where)
        b_items, b_scores, b_source = indexed.ranked(who, 7, where=where)
        assert a_source == b_source == "model"
        assert list(a_items) == list(b_items)
        np.testing.assert_allclose(a_scores, b_scores, rtol=1e-5, atol=1e-6)
    seen = set(demo_events.for_users([user]).frame["item"])
    assert not seen & set(indexed.ranked(user, 20)[0])


def test_inner_product_items_keep_every_query_order_under_a_cosine_index():
    from mmrec.index.arrays import inner_product_items, inner_product_queries

    rng = np.random.default_rng(0)
    items = rng.normal(size=(300, 6)) * rng.uniform(0.1, 5.0, size=(300, 1))  # norms vary 50x
    queries = rng.normal(size=(20, 6)) * rng.uniform(0.1, 5.0, size=(20, 1))
    index = mmrec.build_index(inner_product_items(items), spec="Flat")
    _, labels = index.search(inner_product_queries(queries, index.dim), 10)
    expected = np.argsort(-(queries @ items.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(labels, expected)
    # cosine ranking of the raw vectors differs: the mapping is what makes the index exact
    cosine = mmrec.build_index(items, spec="Flat").search(queries, 10)[1]
    assert (cosine != expected).any()


def test_saved_baselines_are_recommended_served_and_evaluated_from_their_folder(
        fitted, demo, demo_events, tmp_path, capsys):
    fitted["ease"].save(tmp_path / "ease")
    user = demo_events.users[0]
    assert main(["recommend", "--model", str(tmp_path / "ease"), "--events", str(demo.events),
                 "--users", user, "--k", "3"]) == 0
    assert f"{user} [model]" in capsys.readouterr().out

    from fastapi.testclient import TestClient

    from mmrec.serve.app import create_app
    from mmrec.serve.service import Service

    service = Service.from_paths(tmp_path / "ease", demo.catalog, events=demo.events)
    client = TestClient(create_app(service))
    first = client.get(f"/recommend/{user}?k=3").json()
    assert first["source"] == "model" and len(first["items"]) == 3
    assert client.post("/events", json=[{"user": user, "item": first["items"][0]["item"]}]).status_code < 300
    again = client.get(f"/recommend/{user}?k=3").json()["items"]
    assert first["items"][0]["item"] not in [card["item"] for card in again]
    assert client.get(f"/explain/{user}/{first['items'][1]['item']}").status_code == 400

    pretrained = make_model("mine", {"path": str(tmp_path / "ease")})
    report = mmrec.evaluation.evaluate_models({"mine": pretrained, "fresh": EASE(l2=5.0)},
                                              mmrec.leave_last_out(demo_events))
    assert set(report.table.index) == {"mine", "fresh"}


def test_dataframes_are_taken_by_splits_user_vectors_encoding_and_live_history(demo, demo_events):
    frame = demo_events.frame.rename(columns={"user": "user_id", "item": "item_id"})
    split = mmrec.leave_last_out(frame)
    assert len(split.train) + len(split.valid) + len(split.test) == len(demo_events)
    for make in (mmrec.time_split, mmrec.random_split, mmrec.cold_item_split, mmrec.cold_user_split):
        assert len(make(frame).test) > 0
    catalog = pd.read_csv(demo.catalog)[["item_id", "title"]]
    items = mmrec.encode_items(catalog, encoders={"text": "text-tfidf-svd"}, show_progress=False)
    index = mmrec.build_index(items, spec="Flat")
    profile = mmrec.user_vectors(index, frame, users=[demo_events.users[0]])
    assert profile.has_signal.all()
    live = ScoredOnline(Popularity().fit(None, frame), history=frame)
    assert len(live.users()) == demo_events.frame["user"].nunique()
