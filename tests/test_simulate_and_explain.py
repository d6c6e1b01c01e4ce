"""Simulated behaviour (for the examples) and explanations of recommendations."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.datasets.simulate import BehaviourConfig, simulate_behaviour, simulate_world
from mmrec.errors import ConfigError, SchemaError
from mmrec.ranking.explain import explain, explain_recommendations


def _world(n_items: int = 60, n_topics: int = 6):
    ids = [f"item{i:02d}" for i in range(n_items)]
    return ids, [f"topic{i % n_topics}" for i in range(n_items)]


def test_a_generated_world_of_any_size_has_the_asked_sizes_topics_and_a_long_tail():
    world = simulate_world(400, 300, 6000, n_topics=20, explore=0.0, seed=3)
    frame, catalog = world.events.frame, world.catalog
    assert len(frame) == 6000 and frame["user"].nunique() == 300 and len(catalog) == 400
    assert frame.groupby("user").size().min() >= 2
    assert frame.groupby("user").size().max() > 4 * 6000 / 300  # heavy-tailed activity
    assert (frame.groupby("user")["timestamp"].diff().dropna() >= 0).all()
    topic_of = catalog.set_index("item_id")["topic"]
    per_user = frame.assign(topic=frame["item"].map(topic_of).to_numpy()).groupby("user")["topic"].nunique()
    assert per_user.max() <= 3  # no exploration: only the user's own (at most three) topics
    counts = frame["item"].value_counts()
    assert counts.iloc[: len(counts) // 10].sum() > 0.3 * len(frame)  # popular items dominate
    # titles name their topic: most words are the topic's own
    first = catalog.iloc[0]
    assert sum(w.startswith(first["topic"].replace("topic", "t") + "w") for w in first["title"].split()) >= 2
    again = simulate_world(400, 300, 6000, n_topics=20, explore=0.0, seed=3)
    assert world.events.frame.equals(again.events.frame) and world.catalog.equals(again.catalog)
    with pytest.raises(ConfigError, match="2 \\* n_users"):
        simulate_world(10, 300, 500)

def test_simulated_users_stick_to_few_topics_are_seeded_and_never_repeat_an_item():
    ids, topics = _world()
    config = BehaviourConfig(n_users=50, interests=(1, 2), stay=0.9, explore=0.0, seed=4,
                             events={"click": (0.9, 0.2, 1.0), "purchase": (0.1, 1.0, 1.0)})
    events = simulate_behaviour(ids, topics, config)
    again = simulate_behaviour(ids, topics, config)
    assert events.frame.equals(again.frame)
    assert not events.frame.equals(simulate_behaviour(ids, topics, BehaviourConfig(n_users=50, seed=5)).frame)
    frame = events.frame
    assert not frame.duplicated(["user", "item"]).any()
    topic_of = dict(zip(ids, topics, strict=True))
    per_user = frame.assign(topic=frame["item"].map(topic_of)).groupby("user")["topic"].nunique()
    assert per_user.max() <= 2  # no exploration: only the user's own (at most two) topics
    assert set(frame["event"]) == {"click", "purchase"}
    assert frame["value"].between(0.2, 1.0).all()
    assert (frame.groupby("user")["timestamp"].diff().dropna() > 0).all()  # time moves forward


def test_simulation_rejects_bad_settings():
    ids, topics = _world()
    with pytest.raises(ConfigError, match="topics"):
        simulate_behaviour(ids, topics[:-1])
    with pytest.raises(ConfigError, match="sessions"):
        BehaviourConfig(sessions=(3, 2))


@pytest.fixture(scope="module")
def trained(demo_items, demo_events):
    model = mmrec.TwoTower(user_tower="mean", dim=16, epochs=2, batch_size=16)
    return model.fit(demo_items, demo_events, show_progress=False)


def test_explanations_name_modalities_and_history_items(trained, demo_items, demo_events):
    user = demo_events.users[0]
    recs = trained.recommend(demo_events, users=[user], k=3)
    why = explain(trained, demo_items, demo_events, user, recs["item"].iloc[0], top=2)
    assert set(why.modalities) == {"text", "image", "audio", "id"}
    assert sum(why.modalities.values()) == pytest.approx(1.0)
    history = set(demo_events.frame.loc[demo_events.frame["user"] == user, "item"])
    assert len(why.because) == 2 and {i for i, _, _ in why.because} <= history
    assert why.because[0][1] >= why.because[1][1] >= 0 and why.because[0][2] >= why.because[1][2]
    assert 0 < why.because[0][1] <= 1
    assert recs["item"].iloc[0] in str(why)
    table = explain_recommendations(trained, demo_items, demo_events, recs, labels={})
    assert list(table.columns[-2:]) == ["modalities", "because"] and table["because"].str.len().gt(0).all()
    with pytest.raises(SchemaError, match="no vector"):
        explain(trained, demo_items, demo_events, user, "not-an-item")


def test_history_shares_are_a_soft_vote_over_the_whole_history(trained, demo_items, demo_events):
    user = demo_events.users[0]
    n_history = demo_events.frame.loc[demo_events.frame["user"] == user, "item"].nunique()
    item = trained.recommend(demo_events, users=[user], k=1)["item"].iloc[0]
    flat = explain(trained, demo_items, demo_events, user, item, top=n_history, temperature=1e6)
    assert [s for _, s, _ in flat.because] == pytest.approx([1 / n_history] * n_history, rel=1e-4)
    sharp = explain(trained, demo_items, demo_events, user, item, top=1, temperature=1e-4)
    assert sharp.because[0][1] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ConfigError, match="temperature"):
        explain(trained, demo_items, demo_events, user, item, temperature=0)


def test_a_modality_the_item_lacks_gets_no_share(trained, demo_items, demo_events):
    item = "item0005"  # its audio file is missing in the demo
    assert not demo_items.masks["audio"][demo_items.positions([item])[0]]
    why = explain(trained, demo_items, demo_events, demo_events.users[0], item)
    assert why.modalities["audio"] == 0.0


def test_a_user_without_history_gets_an_empty_explanation(trained, demo_items, demo_events):
    why = explain(trained, demo_items, demo_events, "nobody", demo_events.frame["item"].iloc[0])
    assert why.modalities == {} and why.because == []


def test_the_examples_shared_flow_runs_on_the_demo(demo, capsys, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        from common import compare_and_recommend
    finally:
        sys.path.pop(0)
    catalog = mmrec.Catalog.from_path(demo.catalog)
    events = mmrec.Interactions.from_path(demo.events)
    args = Namespace(epochs=1, seed=0, threads=1, out=tmp_path / "run", quick=False)
    result = compare_and_recommend(catalog, events, args=args, tower="mean", show_users=1, k=3,
                                   encoders={"text": "text-tfidf-svd", "image": None, "audio": None})
    out = capsys.readouterr().out
    assert "| item-KNN |" in out and "because of:" in out
    assert len(result["report"].rows) == 6 and (tmp_path / "run" / "report" / "metrics.csv").is_file()
    recommendations = result["recommendations"]
    assert isinstance(recommendations, pd.DataFrame) and np.isfinite(recommendations["score"]).all()
