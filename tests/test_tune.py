"""mmrec.tune: model selection on validation, within a budget, on a tiny generated dataset."""

from __future__ import annotations

import numpy as np
import pytest

import mmrec
from mmrec.errors import ConfigError, SchemaError
from mmrec.evaluation.registry import load_model
from mmrec.evaluation.tune import ScoreBlend, _can_launch, _epochs_that_fit, _Validation, standardise
from mmrec.testing.worlds import clustered_world

TINY = dict(dim=8, batch_size=16, max_len=20, prior_users=0)
ONE_TOWER = mmrec.SearchSpace(user_tower=("mean",), dim=(8,), dropout=(0.1,), lr=(5e-3,), epochs=(2,),
                              ease_l2=(10.0, 50.0), blend_weights=(0.3, 0.7))


@pytest.fixture(scope="module")
def events():
    return clustered_world(n_users=60, n_items=40, per_user=6)


@pytest.fixture(scope="module")
def result(events):
    return mmrec.tune(None, events, budget_s=120, space=ONE_TOWER, max_trials=2, epochs=3, user_tower="gru",
                      **TINY)


def test_every_trial_is_recorded_and_the_best_on_validation_wins(result):
    trials = result.trials
    assert {"ease", "two_tower", "blend"} <= set(trials["family"])
    assert len(trials[trials["family"] == "ease"]) == 2  # one per l2
    assert len(trials[trials["family"] == "two_tower"]) == 2  # max_trials
    assert len(trials[trials["family"] == "blend"]) == 4  # 2 normalisations × 2 weights
    assert trials["seconds"].notna().all()
    towers = trials[trials["family"] == "two_tower"]
    assert set(towers["ended by"]) <= {"early stopping", "max epochs"}  # 120 s is plenty here
    assert (towers["epochs"] >= 1).all()
    chosen = trials[trials["trial"] == result.name]["valid recall@20"].iloc[0]
    assert chosen == trials["valid recall@20"].max() == result.best["valid recall@20"]
    assert isinstance(result.best["settings"], dict)
    assert result.model.item_ids_ is not None and "| trial |" in result.to_markdown()
    assert f"**{result.name}**" in result.to_markdown()
    defaults = result.trials.iloc[2]  # the first two-tower trial: defaults + tower_options, in full
    assert defaults["trial"] == "two-tower #0 (defaults)"
    assert '"user_tower": "gru"' in defaults["settings"] and '"epochs": 3' in defaults["settings"]


def test_ease_wins_when_the_tower_cannot_learn(events):
    untrained = mmrec.SearchSpace(user_tower=("mean",), dim=(8,), dropout=(0.1,), lr=(1e-7,), epochs=(1,),
                                  ease_l2=(10.0,))
    found = mmrec.tune(None, events, budget_s=60, space=untrained, max_trials=1, blend=False,
                       **{**TINY, "lr": 1e-7, "epochs": 1})
    assert found.best["family"] == "ease" and isinstance(found.model, mmrec.baselines.EASE)
    assert set(found.trials["family"]) == {"ease", "two_tower"}  # blend=False: no blend trials


def test_an_exhausted_budget_still_trains_the_default_in_full_and_says_so(events):
    found = mmrec.tune(None, events, budget_s=1e-9, space=ONE_TOWER, blend=False, **TINY)
    towers = found.trials[found.trials["family"] == "two_tower"]
    assert list(towers["trial"]) == ["two-tower #0 (defaults)"]  # no draw: the budget is gone
    assert towers["ended by"].iloc[0] in {"early stopping", "max epochs"}  # never cut by the budget
    assert "past budget_s" in found.summary() and found.default_recall is not None
    # what a user gets without tune, fitted on tune's own split: the same epochs and recall
    split = mmrec.leave_last_out(events, n_test=0, n_valid=1, min_train=2)
    plain = mmrec.TwoTower(seed=0, **TINY).fit(None, split.train, valid=split.valid, show_progress=False)
    check = _Validation(split.train, split.valid, 20)
    assert len(plain.history_.epochs) == int(towers["epochs"].iloc[0])
    assert check.recall(check.scores(plain), plain.item_ids_) == pytest.approx(found.default_recall)


def test_tune_never_returns_less_than_the_default_on_validation(result):
    chosen = result.best["valid recall@20"]
    assert result.default_recall is not None and chosen >= result.default_recall
    summary = result.summary()
    assert "the default two-tower" in summary and "the best EASE" in summary
    assert summary in result.to_markdown()


def test_the_budget_rule_continues_a_probed_trial_as_far_as_it_fits_then_stops_launching():
    assert _epochs_that_fit(20, overhead_s=5.0, epoch_s=1.0, left_s=100.0) == 20  # its cap
    assert _epochs_that_fit(20, overhead_s=5.0, epoch_s=1.0, left_s=12.0) == 8  # truncated
    assert _epochs_that_fit(20, overhead_s=5.0, epoch_s=1.0, left_s=3.0) == 1  # the probe only
    assert _can_launch([], min_epochs=5, left_s=1.0) and not _can_launch([], min_epochs=5, left_s=0.0)
    costs = [(10.0, 2.0), (20.0, 4.0)]  # mean: 15 s fixed + 3 s per epoch
    assert _can_launch(costs, min_epochs=5, left_s=30.0) and not _can_launch(costs, min_epochs=5, left_s=29.0)


def test_standardisations_keep_each_users_order():
    scores = np.array([[3.0, -np.inf, 1.0, 2.0], [0.5, 0.5, 9.0, -1.0]])
    for how in ("z", "rank"):
        out = standardise(scores, how)
        assert np.argmax(out[0]) == 0 and np.argmin(out[0]) == 1 and np.argmax(out[1]) == 2
    np.testing.assert_allclose(standardise(scores, "rank")[0], [1.0, 0.0, 1 / 3, 2 / 3])
    np.testing.assert_allclose(standardise(scores[1:], "z").mean(), 0.0, atol=1e-12)


@pytest.mark.parametrize("normalise", ["z", "rank"])
def test_a_blend_saves_and_loads_to_the_same_scores(events, normalise, tmp_path):
    tower = mmrec.TwoTower(user_tower="mean", epochs=1, **TINY).fit(None, events)
    blend = ScoreBlend(tower, mmrec.baselines.EASE(l2=50).fit(None, events), 0.4, normalise)
    blend.save(tmp_path / "blend")
    loaded = load_model(tmp_path / "blend")
    assert isinstance(loaded, ScoreBlend) and loaded.normalise == normalise and loaded.weight == 0.4
    users = list(events.users[:5])
    scores = blend.score_items(events, users=users)
    assert scores.dtype == np.float32 and scores.shape == (5, len(blend.item_ids_))
    np.testing.assert_allclose(loaded.score_items(events, users=users), scores, atol=1e-5)
    assert len(loaded.recommend(events, users=users, k=3)) == 15


def test_bad_budgets_data_and_spaces_are_clear_errors(events):
    with pytest.raises(ConfigError, match="budget_s"):
        mmrec.tune(None, events, budget_s=0)
    with pytest.raises(SchemaError, match="no events"):
        mmrec.tune(None, events.for_users([]), budget_s=10)
    with pytest.raises(SchemaError, match="validation split is empty"):
        mmrec.tune(None, clustered_world(n_users=10, per_user=2), budget_s=10)
    with pytest.raises(ConfigError, match="at least one value"):
        mmrec.SearchSpace(dim=())
    with pytest.raises(ConfigError, match="blend_weights"):
        mmrec.SearchSpace(blend_weights=(0.0, 0.5))
    with pytest.raises(ConfigError, match="blend_norms"):
        mmrec.SearchSpace(blend_norms=("softmax",))
    with pytest.raises(ConfigError, match="normalise"):
        ScoreBlend(mmrec.baselines.EASE(), mmrec.baselines.EASE(), 0.5, "softmax")
