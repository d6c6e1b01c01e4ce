"""mmrec.tune: model selection on validation, within a budget, on a tiny generated dataset."""

from __future__ import annotations

import numpy as np
import pytest

import mmrec
from mmrec.errors import ConfigError, SchemaError
from mmrec.evaluation.registry import load_model
from mmrec.evaluation.tune import ScoreBlend
from mmrec.testing.worlds import clustered_world

TINY = dict(dim=8, batch_size=16, max_len=20)


@pytest.fixture(scope="module")
def result():
    events = clustered_world(n_users=60, n_items=40, per_user=6)
    space = mmrec.SearchSpace(user_tower=("mean",), dim=(8,), dropout=(0.1,), lr=(5e-3,), epochs=(2,))
    return mmrec.tune(None, events, budget_s=120, space=space, max_trials=2, prior_users=0, **TINY)


def test_every_trial_is_recorded_and_the_best_on_validation_wins(result):
    trials = result.trials
    assert {"ease", "two_tower", "blend"} <= set(trials["family"])
    assert len(trials[trials["family"] == "two_tower"]) == 2  # max_trials
    best = trials["valid recall@20"].max()
    chosen = trials[trials["trial"] == result.name]["valid recall@20"].iloc[0]
    assert chosen == best
    assert result.model.item_ids_ is not None and "| trial |" in result.to_markdown()


def test_a_blend_saves_and_loads_to_the_same_scores(result, tmp_path):
    events = clustered_world(n_users=60, n_items=40, per_user=6)
    tower = mmrec.TwoTower(user_tower="mean", epochs=1, prior_users=0, **TINY).fit(None, events)
    blend = ScoreBlend(tower, mmrec.baselines.EASE(l2=50).fit(None, events), 0.4)
    blend.save(tmp_path / "blend")
    loaded = load_model(tmp_path / "blend")
    users = list(events.users[:5])
    np.testing.assert_allclose(loaded.score_items(events, users=users),
                               blend.score_items(events, users=users), atol=1e-5)
    assert len(loaded.recommend(events, users=users, k=3)) == 15


def test_bad_budgets_and_empty_data_are_clear_errors():
    events = clustered_world(n_users=10)
    with pytest.raises(ConfigError, match="budget_s"):
        mmrec.tune(None, events, budget_s=0)
    with pytest.raises(SchemaError, match="no events"):
        mmrec.tune(None, events.for_users([]), budget_s=10)
    with pytest.raises(ConfigError, match="at least one value"):
        mmrec.SearchSpace(dim=())
