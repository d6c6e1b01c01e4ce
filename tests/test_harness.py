"""The evaluation harness: full ranking by brute force, masking, sampled ranking, ANN, leakage, CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.baselines import BiasBaseline, ContentMean, ItemKNN, Popularity, SegmentPopularity
from mmrec.cli import main
from mmrec.evaluation import EvalConfig, evaluate_model, evaluate_models, item_universe
from mmrec.testing.worlds import clustered_world


class FixedScores:
    """Scores from a fixed table (rows: user ids, columns: item ids); records what it was given."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.item_ids_ = pd.Index(table.columns)
        self.fitted_on: mmrec.Interactions | None = None
        self.scored_with: list[mmrec.Interactions] = []

    def fit(self, items, events, *, valid=None):
        self.fitted_on = events
        return self

    def score_items(self, events: mmrec.Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        self.scored_with.append(events)
        return self.table.reindex(list(users)).fillna(0.0).to_numpy(np.float32)


class AttributeAware(FixedScores):
    """A :class:`FixedScores` whose ``fit`` takes user attributes (records them)."""

    def fit(self, items, events, *, valid=None, users=None):
        self.users = users
        return super().fit(items, events, valid=valid)


def _random_table(split: mmrec.Split, seed: int = 0) -> pd.DataFrame:
    universe = item_universe(split)
    users = split.history.users
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.random((len(users), len(universe))), index=users, columns=universe)


def _brute_force_recall(table: pd.DataFrame, split: mmrec.Split, k: int) -> float:
    history = split.history.frame
    values = []
    for user, targets in split.test.frame.groupby("user")["item"]:
        scores = table.loc[user].copy()
        scores[history.loc[history["user"] == user, "item"].unique()] = -np.inf
        top = scores.sort_values(ascending=False, kind="stable").index[:k]
        values.append(len(set(top) & set(targets)) / len(set(targets)))
    return float(np.mean(values))


def test_full_ranking_matches_brute_force_and_masks_history():
    events = clustered_world()
    split = mmrec.leave_last_out(events, n_test=2)
    table = _random_table(split)
    row = evaluate_model(FixedScores(table), split, config=EvalConfig(ks=(5, 10)))
    assert row["protocol"] == "full"
    for k in (5, 10):
        assert row[f"recall@{k}"] == pytest.approx(_brute_force_recall(table, split, k))
    # a scorer that loves the user's own history gains nothing from it: those items are masked
    boosted = table.copy()
    for user, items in split.history.frame.groupby("user")["item"]:
        boosted.loc[user, items.unique()] += 100.0
    again = evaluate_model(FixedScores(boosted), split, config=EvalConfig(ks=(5, 10)))
    assert again["recall@10"] == pytest.approx(row["recall@10"])


def test_training_sees_only_train_events_and_scoring_never_sees_test_events():
    events = clustered_world()
    split = mmrec.leave_last_out(events)
    model = FixedScores(_random_table(split))
    evaluate_model(model, split)
    key = ["user", "item", "timestamp"]
    test_rows = set(map(tuple, split.test.frame[key].itertuples(index=False)))
    assert not test_rows & set(map(tuple, model.fitted_on.frame[key].itertuples(index=False)))
    assert len(model.fitted_on) == len(split.train)
    for seen in model.scored_with:
        assert not test_rows & set(map(tuple, seen.frame[key].itertuples(index=False)))


def test_items_the_model_does_not_know_rank_last_and_unknown_targets_are_misses():
    events = clustered_world()
    split = mmrec.leave_last_out(events)
    table = _random_table(split)
    targets = set(split.test.frame["item"])
    oracle = table.copy()
    for user, item in split.test.frame[["user", "item"]].itertuples(index=False):
        oracle.loc[user, item] = 10.0
    assert evaluate_model(FixedScores(oracle), split, config=EvalConfig(ks=(1,)))["recall@1"] == 1.0
    blind = oracle.drop(columns=sorted(targets))  # the model has never heard of the test items
    assert evaluate_model(FixedScores(blind), split, config=EvalConfig(ks=(20,)))["recall@20"] == 0.0
    # a catalog that lacks a target: that target still counts, as a miss
    universe = [i for i in item_universe(split) if i != split.test.frame["item"].iloc[0]]
    row = evaluate_model(FixedScores(oracle), split, catalog_ids=universe, config=EvalConfig(ks=(1,)))
    assert row["recall@1"] < 1.0 and row["users"] == split.test.frame["user"].nunique()


def test_sampled_ranking_is_labelled_and_gives_ties_no_credit():
    events = clustered_world()
    split = mmrec.leave_last_out(events)
    universe = item_universe(split)
    constant = pd.DataFrame(0.0, index=split.history.users, columns=universe)
    config = EvalConfig(ks=(5,), sampled_negatives=10, seed=1)
    row = evaluate_model(FixedScores(constant), split, config=config)
    assert row["protocol"] == "sampled-10" and row["recall@5"] == 0.0
    oracle = constant.copy()
    for user, item in split.test.frame[["user", "item"]].itertuples(index=False):
        oracle.loc[user, item] = 1.0
    assert evaluate_model(FixedScores(oracle), split, config=config)["recall@5"] == 1.0
    random_row = evaluate_model(FixedScores(_random_table(split)), split, config=config)
    assert 0.2 < random_row["recall@5"] < 0.7  # 5 of 11 candidates: about 0.45
    report = evaluate_models({"random": FixedScores(_random_table(split))}, split, config=config)
    assert "sampled-10 ranking" in report.to_markdown()


def test_ann_evaluation_reports_the_recall_lost_to_the_index(demo_items, demo_events):
    split = mmrec.leave_last_out(demo_events)
    exact = evaluate_model(ContentMean(), split, items=demo_items,
                           config=EvalConfig(ks=(10,), ann_spec="Flat"))
    assert exact["ann_index"] == "Flat"
    assert exact["ann_recall_loss@10"] == pytest.approx(0.0, abs=1e-9)
    assert exact["ann_recall@10"] == pytest.approx(exact["recall@10"])
    approx = evaluate_model(ContentMean(), split, items=demo_items,
                            config=EvalConfig(ks=(10,), ann_spec="IVF8,PQ4x4"))
    assert approx["ann_recall@10"] == pytest.approx(exact["recall@10"] - approx["ann_recall_loss@10"])


def test_report_has_every_metric_rating_errors_and_saves_all_formats(tmp_path):
    events = clustered_world()
    split = mmrec.leave_last_out(events)
    report = evaluate_models({"popularity": Popularity(), "item_knn": ItemKNN(), "bias": BiasBaseline()},
                             split, config=EvalConfig(ks=(5, 10)))
    table = report.table
    for metric in ("precision", "recall", "f1", "hit", "ndcg", "mrr", "map", "coverage", "novelty"):
        assert f"{metric}@10" in table
    assert np.isfinite(table.loc["bias", "rmse"]) and np.isnan(table.loc["popularity", "rmse"])
    assert table.loc["item_knn", "recall@10"] > table.loc["popularity", "recall@10"]
    report.save(tmp_path)
    for name in ("metrics.csv", "metrics.json", "metrics.md", "metrics.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["protocol"] == "full" and len(saved["rows"]) == 3
    assert "full ranking over" in (tmp_path / "metrics.md").read_text()


def test_two_tower_runs_through_the_same_harness(demo_items, demo_events):
    split = mmrec.leave_last_out(demo_events)
    model = mmrec.TwoTower(user_tower="mean", dim=16, epochs=1, batch_size=16)
    row = evaluate_model(model, split, items=demo_items, config=EvalConfig(ks=(10,), ann_spec="Flat"))
    assert 0.0 <= row["recall@10"] <= 1.0 and row["ann_recall_loss@10"] == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(row["rmse"])  # its rating head is scored on the held-out ratings
    direct = model.evaluate(split.history, split.test, ks=(10,))
    assert row["recall@10"] == pytest.approx(direct["recall@10"])


def test_evaluate_command_writes_the_table(tmp_path, capsys):
    events = clustered_world()
    events.frame.rename(columns={"user": "user_id", "item": "item_id"}).to_csv(tmp_path / "events.csv",
                                                                            index=False)
    (tmp_path / "eval.yaml").write_text(
        "events: events.csv\n"
        "split: {kind: leave_last_out}\n"
        "models:\n  popularity: {}\n  knn: {kind: item_knn, neighbours: 20}\n"
        "  ids: {kind: two_tower, user_tower: mean, dim: 8, epochs: 1, content: false}\n"
        "evaluation: {ks: [5, 10]}\nout: result\n")
    assert main(["evaluate", "--config", str(tmp_path / "eval.yaml")]) == 0
    out = capsys.readouterr().out
    assert "| knn |" in out and "full ranking" in out
    assert (tmp_path / "result" / "metrics.csv").is_file()
    assert main(["evaluate", "--config", str(tmp_path / "eval.yaml"), "--sampled", "20",
                 "--out", str(tmp_path / "sampled")]) == 0
    assert "sampled-20" in (tmp_path / "sampled" / "metrics.md").read_text()
    (tmp_path / "bad.yaml").write_text("events: events.csv\nmodels: {x: {kind: nope}}\n")
    assert main(["evaluate", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_user_attributes_reach_only_the_models_whose_fit_takes_them():
    split = mmrec.leave_last_out(clustered_world())
    table = _random_table(split)
    users = pd.DataFrame({"user": split.history.users,
                          "group": [f"g{int(u[1:]) % 4}" for u in split.history.users]})
    plain, aware = FixedScores(table), AttributeAware(table)
    evaluate_models({"plain": plain, "aware": aware}, split, users=users)
    assert aware.users is users and len(plain.fitted_on) == len(split.train)
    alone = AttributeAware(table)
    evaluate_model(alone, split)
    assert alone.users is None  # no table: fitted as before
    # the demographic baseline reads the users' taste group from the table: it beats popularity
    report = evaluate_models({"pop": Popularity(), "segments": SegmentPopularity()}, split, users=users,
                             config=EvalConfig(ks=(10,)))
    recall = {row["model"]: row["recall@10"] for row in report.rows}
    assert recall["segments"] > recall["pop"] + 0.2
