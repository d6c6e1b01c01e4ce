"""Baselines against brute-force references and against the structure of a generated world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

import mmrec
from mmrec.baselines import (
    BASELINES,
    BPRMF,
    EASE,
    BiasBaseline,
    ContentMean,
    ItemKNN,
    Popularity,
    SegmentPopularity,
)
from mmrec.data.matrix import interaction_matrix
from mmrec.data.segments import summed_shares
from mmrec.errors import ConfigError, NotFittedError, SchemaError
from mmrec.evaluation.protocol import Recommender
from mmrec.testing.worlds import clustered_world, in_group_share


def test_interaction_matrix_counts_each_pair_once_and_skips_unknown_ids():
    events = mmrec.Interactions.from_frame(pd.DataFrame(
        {"user_id": ["a", "a", "b", "c"], "item_id": ["x", "x", "y", "z"]}))
    matrix = interaction_matrix(events, np.array(["a", "b"], dtype=object), pd.Index(["x", "y"]))
    assert matrix.toarray().tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_popularity_ranks_by_distinct_users():
    events = mmrec.Interactions.from_frame(pd.DataFrame(
        {"user_id": ["a", "a", "a", "b", "c"], "item_id": ["x", "x", "y", "y", "y"]}))
    model = Popularity().fit(None, events)
    scores = model.score_items(events, users=["a", "zzz"])
    assert scores.shape == (2, 2)
    assert dict(zip(model.item_ids_, scores[1], strict=True)) == {"x": 1.0, "y": 3.0}


def test_item_knn_matches_dense_cosine():
    events = clustered_world()
    model = ItemKNN(neighbours=1000).fit(None, events)
    X = interaction_matrix(events, events.users, model.item_ids_).toarray().astype(np.float64)
    norms = np.linalg.norm(X, axis=0)
    sim = (X.T @ X) / (norms[:, None] * norms[None, :] + 1e-12)
    np.fill_diagonal(sim, 0.0)
    assert model.similarity_.toarray() == pytest.approx(sim, abs=1e-5)
    users = list(events.users[:5])
    assert model.score_items(events, users=users) == pytest.approx(X[:5] @ sim, abs=1e-4)
    # a small neighbourhood keeps at most that many neighbours per candidate item (column)
    small = ItemKNN(neighbours=3).fit(None, events).similarity_.tocsc()
    assert (np.diff(small.indptr) <= 3).all()
    for column in range(5):  # ... and they are its most similar items
        kept = small.indices[small.indptr[column] : small.indptr[column + 1]]
        assert set(kept) <= set(np.argsort(-sim[:, column], kind="stable")[: 3 + 5])


def test_ease_matches_its_closed_form():
    events = clustered_world()
    model = EASE(l2=10.0).fit(None, events)
    X = interaction_matrix(events, events.users, model.item_ids_).toarray().astype(np.float64)
    P = np.linalg.inv(X.T @ X + 10.0 * np.eye(X.shape[1]))
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    assert model.weights_ == pytest.approx(B, abs=1e-4)
    with pytest.raises(ConfigError, match="max_items"):
        EASE(max_items=10).fit(None, events)


@pytest.mark.parametrize("model", [ItemKNN(), EASE(l2=5.0), BPRMF(dim=16, epochs=60, lr=0.02, seed=0)],
                         ids=["item_knn", "ease", "bpr"])
def test_collaborative_baselines_find_the_users_group(model):
    events = clustered_world()
    model.fit(None, events)
    assert in_group_share(model, events) > 0.8  # chance level is 0.25
    assert in_group_share(Popularity().fit(None, events), events) < 0.6


def test_bpr_is_deterministic_and_transductive():
    events = clustered_world()
    one = BPRMF(dim=8, epochs=3, seed=1).fit(None, events)
    two = BPRMF(dim=8, epochs=3, seed=1).fit(None, events)
    assert np.array_equal(one.item_factors_, two.item_factors_)
    assert one.losses_[-1] < one.losses_[0]
    cold = one.score_items(events, users=["somebody new"])
    assert (cold == 0).all()  # unknown users: every item ties


def test_bias_baseline_beats_the_global_mean_on_biased_ratings():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 50, 3000), rng.integers(0, 30, 3000)
    signal = 3 + 0.8 * np.sin(users) + 0.9 * np.cos(items) + 0.3 * rng.normal(size=3000)
    ratings = np.clip(np.rint(signal), 1, 5)
    frame = pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items],
                          "event": "rating", "value": ratings})
    train, test = frame.iloc[:2500], frame.iloc[2500:].rename(columns={"user_id": "user", "item_id": "item"})
    model = BiasBaseline(reg=2.0).fit(None, mmrec.Interactions.from_frame(train))
    predicted = model.predict_ratings(mmrec.Interactions.from_frame(train), test)
    rmse = np.sqrt(np.mean((predicted - test["value"]) ** 2))
    assert rmse < 0.8 * np.sqrt(np.mean((ratings[:2500].mean() - test["value"]) ** 2))
    with pytest.raises(ConfigError, match="explicit"):
        BiasBaseline().fit(None, mmrec.Interactions.from_frame(train[["user_id", "item_id"]]))


def test_content_mean_ranks_like_mmrec_recommend(demo_items, demo_events):
    model = ContentMean().fit(demo_items, demo_events)
    users = list(demo_events.users[:4])
    scores = model.score_items(demo_events, users=users)
    index = mmrec.build_index(demo_items, spec="Flat")
    recs = mmrec.recommend(index, demo_events, users=users, k=5, exclude_seen=False)
    for row, user in enumerate(users):
        best = model.item_ids_[np.argsort(-scores[row], kind="stable")[:5]]
        assert list(best) == recs.loc[recs["user"] == user, "item"].tolist()
    with pytest.raises(ConfigError, match="item vectors"):
        ContentMean().fit(None, demo_events)


def test_every_baseline_is_registered_fits_and_refuses_to_score_unfitted():
    assert set(BASELINES.names()) >= {"popularity", "item_knn", "ease", "bpr", "content_mean", "bias"}
    for name in ("popularity", "item_knn", "ease", "bpr", "bias"):
        model = BASELINES.get(name)()
        assert isinstance(model, Recommender)
        with pytest.raises(NotFittedError):
            model.score_items(clustered_world())


def _attributes(users) -> pd.DataFrame:
    """Per user ``u<n>``: the taste group of :func:`clustered_world`, an age (many values), a band
    (three values) and a zip code (one user each)."""
    numbers = np.array([int(u[1:]) for u in users])
    return pd.DataFrame({"group": [f"g{n % 4}" for n in numbers],
                         "age": (numbers * 7 % 100).astype(np.float64),
                         "band": (numbers % 3).astype(np.int64), "zip": [f"z{n}" for n in numbers]},
                        index=pd.Index(list(users), dtype=object))


def test_segment_popularity_scores_like_the_serving_fallback():
    from mmrec.ranking.popularity import PopularityFallback

    world = clustered_world(n_users=40, n_items=40)
    table = _attributes(world.users)[["group", "band"]]
    model = SegmentPopularity(min_users=1).fit(None, world, users=table)
    index = mmrec.build_index(np.eye(len(model.item_ids_), dtype=np.float32), ids=list(model.item_ids_),
                              spec="Flat")
    fallback = PopularityFallback(index, world, user_attributes=table)
    columns = index.positions(list(model.item_ids_))
    users = ["u0", "u1", "u7"]
    scores = model.score_items(world, users=users)
    for row, user in enumerate(users):
        expected = fallback.scores(table.loc[user].to_dict())[columns]
        np.testing.assert_allclose(scores[row], expected, rtol=1e-6)
    assert scipy.sparse.issparse(model.segment_counts_)  # segments × items is never held dense
    assert (summed_shares(model.counts_, np.zeros((0, 40)), np.zeros(0)) == model.counts_).all()
    with pytest.raises(SchemaError, match="2 segment count row"):
        summed_shares(model.counts_, np.zeros((2, 40)), np.ones(3))
    # the fallback's counts change one new (user, item) pair at a time, sparsely: as a recount
    frame = world.frame
    touched = set(frame.loc[frame["user"].isin(users), "item"])
    item = next(i for i in model.item_ids_ if i not in touched)
    for user in users:
        fallback.add(user, int(index.positions([item])[0]))
    more = pd.DataFrame({"user": users, "item": item, "timestamp": frame["timestamp"].max() + 1.0,
                         "event": "click", "value": 1.0})
    recount = PopularityFallback(index, mmrec.Interactions(pd.concat([frame, more])), user_attributes=table)
    for user in users:
        np.testing.assert_allclose(fallback.scores(table.loc[user].to_dict()),
                                   recount.scores(table.loc[user].to_dict()), rtol=1e-12)


def test_sparse_counts_follow_every_change_and_fold_them_in():
    from mmrec.ranking.popularity import SparseCounts

    rng = np.random.default_rng(0)
    start = rng.integers(0, 500_000, 3_000)
    counts = SparseCounts(start)
    expected = np.bincount(start, minlength=500_000).astype(np.float64)
    for label, sign in zip(rng.integers(0, 500_000, 5_000).tolist(), rng.choice([1.0, -1.0], 5_000).tolist(),
                           strict=True):
        counts.add(label, sign)
        expected[label] += sign
    np.testing.assert_array_equal(counts.dense(500_000), expected)
    assert len(counts.changes) < 1_100  # folded in as they grew
    assert counts.nbytes < expected.nbytes / 4


def test_segment_popularity_bins_many_valued_numbers_and_drops_small_segments(tmp_path):
    world = clustered_world(n_users=60, n_items=40)
    newcomers = ["u200", "u201"]
    table = _attributes([*world.users, *newcomers])
    model = SegmentPopularity(n_bins=4, min_users=5).fit(None, world, users=table)
    segments = list(model.segments_)
    assert sum(s.startswith("age in [") for s in segments) == 4  # quantile bins of the age
    assert {"band=0", "band=1", "band=2"} <= set(segments)        # few values: one segment each
    assert not any(s.startswith("zip=") for s in segments)        # one user per zip: dropped
    for prefix in ("group=", "band=", "age in ["):                # members: the training users
        assert sum(n for s, n in zip(segments, model.segment_users_, strict=True)
                   if s.startswith(prefix)) == len(world.users)
    empty = world.for_users([])
    scores = model.score_items(empty, users=[*newcomers, "stranger"])
    np.testing.assert_allclose(scores[2], model.counts_)  # no attributes: overall popularity
    group = np.array([int(i[1:]) % 4 for i in model.item_ids_])
    assert (group[np.argsort(-scores[0])[:5]] == 200 % 4).mean() >= 0.8  # u200 is in g0
    model.save(tmp_path / "segments")
    loaded = SegmentPopularity.load(tmp_path / "segments")
    assert (loaded.n_bins, loaded.min_users) == (4, 5)
    loaded.set_user_attributes(table)
    np.testing.assert_allclose(loaded.score_items(empty, users=[*newcomers, "stranger"]), scores)
    bad = table.astype({"age": object})
    bad.loc["u200", "age"] = "old"
    with pytest.raises(SchemaError, match="'age'.*'u200' has 'old'"):
        loaded.set_user_attributes(bad)
    with pytest.raises(SchemaError, match="DataFrame"):
        SegmentPopularity().fit(None, world, users={"u1": "g1"})
    plain = SegmentPopularity().fit(None, world)  # no table: overall popularity for everyone
    plain.save(tmp_path / "plain")
    reloaded = SegmentPopularity.load(tmp_path / "plain")
    np.testing.assert_allclose(reloaded.score_items(world)[0], plain.counts_)
    with pytest.raises(ConfigError, match="min_users"):
        SegmentPopularity(min_users=0)
