"""Beyond accuracy: diversity, exposure and calibration metrics against hand-computed cases, and
diversity re-ranking (MMR, DPP) on every path a user calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.errors import ConfigError
from mmrec.evaluation.metrics import gini_index, intra_list_diversity, miscalibration, tail_share
from mmrec.ranking.rerank import ExposureLedger, by_exposure, greedy_dpp, mmr, rerank_candidates

# items 0 and 1 point the same way, 2 is orthogonal to them, 3 has no features
FEATURES = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 0.0]])


def test_intra_list_diversity_by_hand():
    top = np.array([[0, 1, 2], [0, 1, -1]])
    # user 0: distances (0,1)=0, (0,2)=1, (1,2)=1 → 2/3; user 1: one pair at 0
    assert intra_list_diversity(top, FEATURES, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert intra_list_diversity(top, FEATURES, 2) == pytest.approx(0.0)
    assert intra_list_diversity(np.array([[3, 0]]), FEATURES, 2) == pytest.approx(1.0)
    genres = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)  # multi-hot categories
    assert intra_list_diversity(np.array([[0, 2]]), genres, 2) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[0, 1]]), genres, 2) == pytest.approx(1 - 1 / np.sqrt(2))


def test_gini_and_tail_share_by_hand():
    top = np.array([[0, 1], [0, 2]])
    # exposure [2, 1, 1, 0] sorted [0, 1, 1, 2]: Σ(2i - n - 1)x = -1 + 1 + 6 = 6 → 6 / (4 · 4)
    assert gini_index(top, 4, 2) == pytest.approx(0.375)
    assert gini_index(np.array([[0, 1], [2, 3]]), 4, 2) == pytest.approx(0.0)
    popularity = np.array([10.0, 5.0, 1.0, 0.0, 0.0])  # head = the top 20 %: item 0
    assert tail_share(np.array([[0, 1], [2, -1]]), popularity, 2) == pytest.approx(2 / 3)


def test_miscalibration_by_hand():
    categories = np.array([[1, 0], [1, 0], [0, 1]], dtype=float)
    history = np.array([[1, 0, 1]], dtype=float)  # p = (0.5, 0.5)
    q = np.array([0.995, 0.005])  # (1 - 0.01) · (1, 0) + 0.01 · p
    expected = 0.5 * np.log(0.5 / q[0]) + 0.5 * np.log(0.5 / q[1])
    assert miscalibration(np.array([[0, 1]]), history, categories, 2) == pytest.approx(expected)
    assert miscalibration(np.array([[0, 2]]), history, categories, 2) == pytest.approx(0.0, abs=1e-12)


def test_rerankers_keep_the_order_at_zero_and_skip_near_duplicates():
    vectors = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0]])  # 0 and 1 are near duplicates
    scores = np.array([1.0, 0.9, 0.8])
    for pick in (mmr, greedy_dpp):
        assert pick(scores, vectors, 2, 0.0).tolist() == [0, 1]
        assert pick(scores, vectors, 2, 0.5).tolist() == [0, 2]
        assert sorted(pick(scores, vectors, 3, 0.5).tolist()) == [0, 1, 2]
    out, kept = rerank_candidates(np.array([[1.0, 0.9, 0.8], [5.0, 4.0, -np.inf]]),
                                  np.array([[7, 8, 9], [4, 5, -1]]),
                                  np.stack([vectors, vectors]), 2, diversify=0.5)
    assert out.tolist() == [[7, 9], [4, 5]] and kept[0].tolist() == [1.0, 0.8]


def clustered_index(n_clusters: int = 4, per_cluster: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(16, n_clusters)))[0].T
    vectors = np.repeat(centres, per_cluster, axis=0) + 0.05 * rng.normal(size=(n_clusters * per_cluster, 16))
    ids = [f"i{c}_{j}" for c in range(n_clusters) for j in range(per_cluster)]
    attributes = pd.DataFrame({"item_id": ids, "cluster": [i.split("_")[0] for i in ids]})
    return mmrec.build_index(vectors.astype(np.float32), ids=ids, spec="Flat", attributes=attributes), vectors


def test_recommend_diversify_spreads_lists_and_honours_k_seen_and_filters():
    index, vectors = clustered_index()
    # the user mostly likes cluster 0, a little cluster 1
    history = mmrec.Interactions.from_frame(pd.DataFrame({
        "user_id": ["u"] * 5, "item_id": ["i0_0", "i0_1", "i0_2", "i0_3", "i1_0"]}))
    plain = mmrec.recommend(index, history, k=10)
    varied = mmrec.recommend(index, history, k=10, diversify=0.5)
    dpp = mmrec.recommend(index, history, k=10, diversify=0.5, rerank="dpp")
    rows = {name: index.positions(frame["item"].tolist()) for name, frame in
            [("plain", plain), ("mmr", varied), ("dpp", dpp)]}
    top = {name: np.asarray([r]) for name, r in rows.items()}
    base = intra_list_diversity(top["plain"], vectors, 10)
    assert intra_list_diversity(top["mmr"], vectors, 10) > base + 0.1
    assert intra_list_diversity(top["dpp"], vectors, 10) > base + 0.1
    for frame in (varied, dpp):
        assert len(frame) == 10 and frame["item"].is_unique
        assert not set(frame["item"]) & set(history.frame["item"])
        assert frame["rank"].tolist() == list(range(1, 11))
    filtered = mmrec.recommend(index, history, k=5, diversify=0.7, where={"cluster": ["i2", "i3"]})
    assert len(filtered) == 5 and filtered["item"].str[:2].isin(["i2", "i3"]).all()
    cold = mmrec.recommend(index, history, users=["nobody"], k=4, diversify=0.5)
    assert len(cold) == 4 and cold["source"].eq("popularity").all()
    with pytest.raises(ConfigError, match="diversify"):
        mmrec.recommend(index, history, k=3, diversify=1.5)
    with pytest.raises(mmrec.errors.UnknownNameError):
        mmrec.recommend(index, history, k=3, diversify=0.5, rerank="nope")
    batched = pd.concat(mmrec.recommend_batches(index, history, k=10, diversify=0.5), ignore_index=True)
    pd.testing.assert_frame_equal(batched, varied)


def test_harness_reports_beyond_accuracy_and_one_row_per_lambda(demo_items, demo_events, demo):
    from mmrec.baselines import EASE, ItemKNN
    from mmrec.evaluation import EvalConfig, evaluate_models

    catalog = pd.read_csv(demo.catalog)
    categories = dict(zip(catalog["item_id"].astype(str), catalog["category"], strict=True))
    split = mmrec.leave_last_out(demo_events)
    config = EvalConfig(ks=(5, 10), diversify=(0.0, 0.3, 0.7))
    report = evaluate_models({"ease": EASE(l2=5.0), "knn": ItemKNN()}, split, items=demo_items,
                             config=config, categories=categories)
    table = report.table
    assert list(table.index) == ["ease", "ease (diversify=0.3)", "ease (diversify=0.7)",
                                 "knn", "knn (diversify=0.3)", "knn (diversify=0.7)"]
    for column in ("ild@10", "ild_category@10", "gini@10", "tail@10", "miscalibration@10", "coverage@10"):
        assert table[column].notna().all(), column
    for model in ("ease", "knn"):
        assert table.loc[f"{model} (diversify=0.7)", "ild@10"] > table.loc[model, "ild@10"]
    plain = evaluate_models({"ease": EASE(l2=5.0)}, split, items=demo_items, config=EvalConfig(ks=(5, 10)))
    assert plain.table.loc["ease", "recall@10"] == pytest.approx(table.loc["ease", "recall@10"])
    assert not plain.has_tradeoff and report.has_tradeoff


def test_exposure_ledger_counts_lists_and_forgets_past_its_window():
    ledger = ExposureLedger()
    np.testing.assert_array_equal(ledger.shares(np.array([1, 2])), [0.0, 0.0])
    ledger.record(np.array([1, 2, -1]))
    ledger.record(np.array([2, 3, 3]))  # a repeated label counts once per list
    once = np.log(2) / np.log(3)  # shown in 1 list of the most shown item's 2, on a log scale
    np.testing.assert_allclose(ledger.shares(np.array([1, 2, 3, 4])), [once, 1.0, once, 0.0])
    windowed = ExposureLedger(window=2)
    for shown in ([1], [1], [2], [2]):
        windowed.record(np.array(shown))
    np.testing.assert_allclose(windowed.shares(np.array([1, 2])), [0.0, 1.0])  # 1 left the window
    with pytest.raises(ConfigError, match="window"):
        ExposureLedger(window=0)


def test_exposure_rerank_spreads_the_same_candidates_over_users_and_keeps_order_at_zero():
    # 40 users with the same 30 candidates: without exposure all get items 0-9
    candidates = np.tile(np.arange(30), (40, 1))
    scores = np.tile(np.linspace(1.0, 0.5, 30), (40, 1))
    plain, _ = rerank_candidates(scores, candidates, None, 10, diversify=0.0, method="exposure")
    assert set(plain.ravel()) == set(range(10))
    spread, kept = rerank_candidates(scores, candidates, None, 10, diversify=0.5, method="exposure")
    assert plain[0].tolist() == spread[0].tolist()  # the first list sees no exposure yet
    assert len(set(spread.ravel())) >= 20 and (spread >= 0).all()  # 10 without exposure
    assert all(len(set(row)) == 10 for row in spread)
    np.testing.assert_allclose(kept, scores[np.arange(40)[:, None], spread])  # original scores kept
    np.testing.assert_array_equal(by_exposure(scores[0], None, 5, 0.0), np.arange(5))


def test_recommend_and_batches_spread_exposure_across_users():
    index, _ = clustered_index()
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(30)]  # each likes cluster 0: the same few items win everywhere
    history = mmrec.Interactions.from_frame(pd.DataFrame({
        "user_id": np.repeat(users, 3), "item_id": [f"i0_{j}" for j in rng.integers(0, 5, 90)]}))
    plain = mmrec.recommend(index, history, k=5)
    spread = mmrec.recommend(index, history, k=5, diversify=0.6, rerank="exposure")
    assert spread["item"].nunique() > 1.5 * plain["item"].nunique()
    assert (spread.groupby("user")["item"].nunique() == 5).all()
    batched = pd.concat(mmrec.recommend_batches(index, history, k=5, diversify=0.6, rerank="exposure",
                                                batch_size=7), ignore_index=True)
    pd.testing.assert_frame_equal(batched, spread)  # one ledger over the call, whatever the batches


def test_harness_exposure_rows_raise_coverage(demo_items, demo_events):
    from mmrec.baselines import EASE
    from mmrec.evaluation import EvalConfig, evaluate_models

    split = mmrec.leave_last_out(demo_events)
    config = EvalConfig(ks=(10,), diversify=(0.0, 0.5), rerank="exposure")
    table = evaluate_models({"ease": EASE(l2=5.0)}, split, config=config).table
    assert table.loc["ease (diversify=0.5)", "coverage@10"] > table.loc["ease", "coverage@10"]
    assert table.loc["ease (diversify=0.5)", "gini@10"] < table.loc["ease", "gini@10"]


def test_evaluate_command_diversify_writes_the_tradeoff(tmp_path, demo, capsys):
    from mmrec.cli import main

    (tmp_path / "eval.yaml").write_text(
        f"events: {demo.events}\ncatalog: {demo.catalog}\ncategory: category\n"
        "encoders: {text: text-tfidf-svd, image: null, audio: null}\n"
        "models:\n  popularity: {}\n  knn: {kind: item_knn, neighbours: 20}\n"
        "evaluation: {ks: [5, 10]}\nout: result\n")
    assert main(["evaluate", "--config", str(tmp_path / "eval.yaml"), "--diversify", "0,0.2,0.5",
                 "--rerank", "dpp"]) == 0
    out = capsys.readouterr().out
    assert "| knn (diversify=0.5) |" in out and "ild@10" in out and "tradeoff.png" in out
    assert (tmp_path / "result" / "tradeoff.png").stat().st_size > 0
    assert main(["evaluate", "--config", str(tmp_path / "eval.yaml"), "--diversify", "0,x"]) == 2
