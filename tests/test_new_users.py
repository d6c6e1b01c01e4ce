"""New users: attributes in the user tower, the fading popularity prior, and both through the
paths users call (TwoTower, mmrec.recommend, OnlineRecommender)."""

from __future__ import annotations

import copy
import dataclasses
import logging

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

import mmrec
from mmrec.errors import ConfigError, SchemaError
from mmrec.models.prior import PopularityPrior, fit_prior_weights, step_buckets
from mmrec.models.user_features import UserFeatureSchema, as_attribute_table
from mmrec.ranking.prior import search_with_prior
from mmrec.testing.worlds import clustered_world

N_USERS = 240  # 4 taste groups; the attribute "segment" names each user's group
NO_EVENTS = clustered_world(n_users=4).for_users([])


def attributes(n: int = N_USERS + 8) -> pd.DataFrame:
    return pd.DataFrame({"user": [f"u{i}" for i in range(n)], "segment": [f"s{i % 4}" for i in range(n)],
                         "age": (np.arange(n) % 7).astype(float)})


@pytest.fixture(scope="module")
def world() -> mmrec.Interactions:
    return clustered_world(n_users=N_USERS, n_items=40, per_user=8)


@pytest.fixture(scope="module")
def fitted(world) -> mmrec.TwoTower:
    model = mmrec.TwoTower(dim=16, user_tower="mean", epochs=6, patience=6, lr=1e-2, batch_size=16,
                           seed=0, prior_users=40)
    return model.fit(None, world, users=attributes())


def group_of(items) -> list[int]:
    return [int(str(i)[1:]) % 4 for i in items]


def test_users_with_no_event_are_served_from_their_attributes(fitted):
    new = [f"u{N_USERS + i}" for i in range(4)]  # never in training; segments s0..s3
    profile = fitted.encode_users(NO_EVENTS, users=new)
    assert profile.has_signal.all()
    scores = fitted.score_items(NO_EVENTS, users=new)
    top = np.argsort(-scores, axis=1)[:, :5]
    for row, user in enumerate(new):
        assert np.mean(np.array(group_of(fitted.item_ids_[top[row]])) == int(user[1:]) % 4) >= 0.8


def test_attributes_survive_save_and_load_without_storing_them(fitted, tmp_path):
    empty = NO_EVENTS
    new = [f"u{N_USERS}", f"u{N_USERS + 1}"]
    before = fitted.encode_users(empty, users=new)
    fitted.save(tmp_path / "model")
    loaded = mmrec.TwoTower.load(tmp_path / "model")
    assert loaded.user_attributes_ is None  # the table itself is never written
    assert not loaded.encode_users(empty, users=new).has_signal.any()
    loaded.set_user_attributes(attributes())
    after = loaded.encode_users(empty, users=new)
    np.testing.assert_allclose(after.vectors, before.vectors, atol=1e-6)
    assert loaded.prior_ is not None and loaded.prior_.weights == fitted.prior_.weights
    np.testing.assert_allclose(loaded.score_items(empty, users=new), fitted.score_items(empty, users=new),
                               atol=1e-5)


def test_the_library_paths_serve_a_new_user_from_attributes(fitted):
    index = mmrec.build_index(fitted.encode_items(), spec="Flat")
    empty = NO_EVENTS
    user = f"u{N_USERS + 2}"  # segment s2
    recs = mmrec.recommend(index, empty, users=[user], model=fitted, k=5)
    assert set(recs["source"]) == {"model"}
    assert np.mean(np.array(group_of(recs["item"])) == 2) >= 0.8
    online = mmrec.OnlineRecommender(fitted, index, history=empty)
    live = online.recommend(user, k=5)
    assert set(live["source"]) == {"online"}
    assert np.mean(np.array(group_of(live["item"])) == 2) >= 0.8
    # a user without events and without attributes still gets the popularity fallback
    stranger = mmrec.recommend(index, empty, users=["stranger"], model=fitted, k=5)
    assert set(stranger["source"]) == {"popularity"}


def test_bad_attribute_tables_are_clear_errors(fitted):
    table = attributes()
    with pytest.raises(SchemaError, match="u3"):
        as_attribute_table(pd.concat([table, table.iloc[[3]]]))
    with pytest.raises(SchemaError, match="'empty'"):
        UserFeatureSchema.fit(table.assign(empty=np.nan))
    with pytest.raises(SchemaError, match="u5"):
        UserFeatureSchema.fit(table.assign(age=np.where(np.arange(len(table)) == 5, np.inf, 1.0)))
    with pytest.raises(SchemaError, match="segment"):
        fitted.set_user_attributes(table.drop(columns="segment"))
    with pytest.raises(SchemaError, match="age"):
        fitted.set_user_attributes(table.assign(age="old"))
    with pytest.raises(SchemaError, match="DataFrame"):
        mmrec.TwoTower(dim=8, epochs=1).fit(None, clustered_world(n_users=20), users={"u1": "x"})
    unfitted_with = mmrec.TwoTower(dim=8, epochs=1, prior_users=0).fit(None, clustered_world(n_users=20))
    with pytest.raises(ConfigError, match="without user attributes"):
        unfitted_with.set_user_attributes(table)


def test_unseen_categories_and_missing_values_are_read_as_unknown(fitted, caplog):
    schema = fitted.user_schema_
    table = as_attribute_table(attributes().assign(segment=["s9"] + ["s1"] * (N_USERS + 7),
                                                   age=[np.nan] + [1.0] * (N_USERS + 7)))
    with caplog.at_level(logging.INFO, logger="mmrec.models.user_features"):
        codes = schema.encode(table, np.array(["u0", "u1", "nobody"], dtype=object))
    assert "'s9'" in caplog.text and "u0" in caplog.text
    assert codes.categories[0, 0] == 1 and codes.numbers[0, 0] == 0.0  # unseen, missing
    assert codes.known.tolist() == [True, True, False]


def test_prior_weights_fade_and_follow_the_held_out_users():
    rng = np.random.default_rng(0)
    n_items = 50
    log_pop = np.log(np.linspace(1.0, 0.01, n_items)).astype(np.float32)

    def cosines(n: int):
        # with few events the cosines are noise and popularity predicts; with many they predict
        users = 200
        truth = [rng.choice(n_items, 5, replace=False, p=np.exp(log_pop) / np.exp(log_pop).sum())
                 for _ in range(users)]
        signal = min(n / 10, 1.0)
        scores = rng.normal(size=(users, n_items)).astype(np.float32) * (1 - signal)
        for row, items in enumerate(truth):
            scores[row, items] += signal
        return scores, [np.empty(0, np.int64)] * users, truth

    weights, valid = fit_prior_weights(cosines, log_pop, steps=(0, 1, 10, 50))
    assert weights[0] > 0 and weights[0] >= weights[1] >= weights[2] >= weights[3]
    assert valid["recall@20"][0] > valid["recall@20 without prior"][0]
    prior = PopularityPrior(pd.Index([f"i{j}" for j in range(n_items)]), log_pop, (0, 1, 10, 50), weights)
    assert prior.weight([0])[0] == weights[0] and prior.weight([1000])[0] == weights[-1]
    assert prior.for_ids(["i0", "new"]).tolist() == [log_pop[0], np.float32(np.median(log_pop))]


def test_prior_recall_ranked_in_blocks_of_users_equals_the_whole_matrix(monkeypatch):
    import mmrec.models.prior as prior_module

    rng = np.random.default_rng(3)
    scores = rng.normal(size=(37, 80)).astype(np.float32)
    per_item, per_user = rng.normal(size=80), rng.normal(size=(37, 80))
    targets = [rng.choice(80, 4, replace=False) for _ in range(37)]
    targets[5] = np.empty(0, np.int64)  # a user without targets counts for nothing
    pops = (None, per_item, per_user)
    whole = [prior_module._recall(scores, targets, 10, pop, 0.3) for pop in pops]
    monkeypatch.setattr(prior_module, "RECALL_BLOCK_CELLS", 3 * 80 + 5)  # 3 users a block
    assert [prior_module._recall(scores, targets, 10, pop, 0.3) for pop in pops] == whole


def test_prior_weight_search_on_each_users_skyline_equals_the_whole_catalog(monkeypatch):
    import mmrec.models.prior as prior_module
    from mmrec.models.prior import PRIOR_GRID

    rng = np.random.default_rng(4)
    n_users, n_items = 23, 3_000
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    log_pop = (rng.normal(size=n_items) * 2 - 1).astype(np.float32)  # some above zero: only w >= 0 matters
    given = [rng.choice(n_items, 30, replace=False) for _ in range(n_users)]
    targets = [rng.choice(n_items, 6, replace=False, p=np.exp(log_pop) / np.exp(log_pop).sum())
               for _ in range(n_users)]
    columns, compact = prior_module._skyline(scores, log_pop, 20)
    assert columns.shape[1] < n_items / 4  # the point: far fewer candidates than items
    for row in range(n_users):  # each row: real items, their own scores, padding after them
        real = columns[row] >= 0
        assert np.array_equal(compact[row, real], scores[row, columns[row, real]])
    fold = (scores, given, targets)
    monkeypatch.setattr(prior_module, "RECALL_BLOCK_CELLS", 5 * n_items)
    skyline = prior_module._best_weight(tuple(a.copy() if isinstance(a, np.ndarray) else a for a in fold),
                                        log_pop, PRIOR_GRID, 20)
    monkeypatch.setattr(prior_module, "SKYLINE_MIN_ITEMS", n_items)  # the whole catalog ranked per weight
    whole = prior_module._best_weight(fold, log_pop, PRIOR_GRID, 20)
    assert skyline == whole
    for weight in PRIOR_GRID:
        masked = scores.copy()
        for row, seen in enumerate(given):
            masked[row, seen] = -np.inf
        cols, kept = prior_module._skyline(masked, log_pop, 20)
        pop = np.where(cols >= 0, log_pop[np.maximum(cols, 0)], 0.0).astype(np.float32)
        assert (prior_module._recall(kept, targets, 20, pop, weight, cols)
                == prior_module._recall(masked, targets, 20, log_pop, weight))


def test_prior_weight_is_capped_where_the_warm_users_next_events_are_unpopular():
    n_items, users = 60, 120
    log_pop = np.log(np.linspace(1.0, 0.01, n_items)).astype(np.float32)
    popular = np.exp(log_pop) / np.exp(log_pop).sum()

    def fold(pick, seed):  # noisy cosines, a weak hint on the truth
        rng = np.random.default_rng(seed)
        truth = [pick(rng) for _ in range(users)]
        scores = rng.normal(size=(users, n_items)).astype(np.float32)
        for row, items in enumerate(truth):
            scores[row, items] += 1.5
        return scores, [np.empty(0, np.int64)] * users, truth

    def later_events(n):  # a new user's later events: the popular items
        return fold(lambda rng: rng.choice(n_items, 5, replace=False, p=popular), n)

    def next_event(n):  # a warm user's next event: a niche item (long histories only)
        if n < 20:
            return np.zeros((0, n_items), np.float32), [], []
        return fold(lambda rng: rng.choice(np.arange(30, n_items), 1), 100 + n)

    steps = (0, 1, 20, 50)
    free, _ = fit_prior_weights(later_events, log_pop, steps=steps)
    capped, valid = fit_prior_weights(later_events, log_pop, steps=steps, warm=next_event)
    assert capped[2] <= free[2] / 4 and capped[3] <= capped[2]  # the warm users' cap holds it down
    assert capped[:2] == free[:2]  # short histories: no warm user near them, the held-out fit stands
    assert valid["warm weight"][2] == capped[2] and np.isnan(valid["warm weight"][0])
    assert step_buckets([0, 1, 2, 12, 20, 40, 500], steps).tolist() == [0, 1, 1, 2, 2, 3, 3]


def test_the_prior_users_cost_no_training_steps(world):
    def targets_per_epoch(prior_users: int) -> int:
        model = mmrec.TwoTower(dim=8, user_tower="mean", epochs=1, batch_size=16, seed=0,
                               prior_users=prior_users, content_blend=False)
        model.fit(None, world)
        return model.history_.epochs[0]["targets"]

    full, held = targets_per_epoch(0), targets_per_epoch(40)
    assert abs(held - full) <= 0.03 * full  # 40 of 240 users held out (a sixth), the same steps


def test_search_with_prior_mixes_popular_items_in_and_honours_exclusions():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = mmrec.build_index(vectors, ids=[f"i{j}" for j in range(60)], spec="Flat")
    log_pop = np.full(60, -5.0, dtype=np.float32)
    log_pop[[7, 8]] = 0.0  # two very popular items
    query = -vectors[7:8]  # the user's vector points away from item 7
    plain, plain_labels = index.search(query, 5)
    same, same_labels = search_with_prior(index, query, np.array([0.0]), log_pop, 5)
    np.testing.assert_array_equal(plain_labels, same_labels)
    _, labels = search_with_prior(index, query, np.array([10.0]), log_pop, 5)
    assert set(labels[0, :2]) == {7, 8}
    _, labels = search_with_prior(index, query, np.array([10.0]), log_pop, 5, exclude_idx=[np.array([7])])
    assert labels[0, 0] == 8 and 7 not in labels[0]


def test_the_prior_is_segment_aware_in_every_path_and_survives_save_and_load(fitted, tmp_path):
    prior = fitted.prior_
    assert prior is not None and prior.segments is not None
    assert "segment=s1" in set(prior.segments.keys)
    users = [f"u{N_USERS + i}" for i in range(4)]  # new users, segments s0..s3
    own = prior.for_users(fitted.prior_segments(users))
    for row in range(4):  # each user's popular items: those of their own taste group
        top = fitted.item_ids_[np.argsort(-own[row], kind="stable")[:5]]
        assert np.mean(np.array(group_of(top)) == row) >= 0.8
    assert (prior.for_users([np.empty(0, np.int64)]) == prior.log_popularity).all()  # no segment: overall
    assert fitted.prior_segments(["stranger"])[0].size == 0
    # one event each, a strong prior: the model's scores, mmrec.recommend and the online path agree
    fitted = copy.copy(fitted)
    fitted.prior_ = prior = dataclasses.replace(prior, weights=(0.3,) * len(prior.steps))
    given = mmrec.Interactions(pd.DataFrame({"user": users, "item": [f"i{4 * r + 1}" for r in range(4)],
                                             "timestamp": np.arange(4.0), "event": "rating", "value": 5.0}))
    index = mmrec.build_index(fitted.encode_items(), spec="Flat")
    scores = fitted.score_items(given, users=users)
    recs = mmrec.recommend(index, given, users=users, model=fitted, k=5)
    online = mmrec.OnlineRecommender(fitted, index, history=given)
    for row, user in enumerate(users):
        masked = scores[row].copy()
        masked[fitted.item_ids_.get_loc(f"i{4 * row + 1}")] = -np.inf
        expected = fitted.item_ids_[np.argsort(-masked, kind="stable")[:5]].tolist()
        assert recs.loc[recs["user"] == user, "item"].tolist() == expected
        assert online.recommend(user, k=5)["item"].tolist() == expected
    fitted.save(tmp_path / "segmented")
    loaded = mmrec.TwoTower.load(tmp_path / "segmented")
    assert loaded.prior_segments(users) is None  # no attribute table given yet: the overall prior
    loaded.set_user_attributes(attributes())
    assert scipy.sparse.issparse(prior.segments.counts)  # segments × items: sparse, saved as such
    np.testing.assert_array_equal(loaded.prior_.segments.counts.toarray(), prior.segments.counts.toarray())
    np.testing.assert_allclose(loaded.score_items(given, users=users), scores, atol=1e-5)
    loaded.set_user_attributes(None)  # forgotten attributes: neither the tower nor the prior reads them
    assert not np.allclose(loaded.score_items(given, users=users), scores, atol=1e-3)


def test_search_with_prior_gives_each_user_their_own_popular_items():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(80, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = mmrec.build_index(vectors, ids=[f"i{j}" for j in range(80)], spec="Flat")
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    own = rng.normal(size=(3, 80)).astype(np.float32)  # each row's own log-popularity
    own[0, 11] = own[1, 12] = own[2, 13] = 5.0
    weights = np.array([1.0, 0.0, 3.0])
    _, labels = search_with_prior(index, queries, weights, lambda rows: own[rows], 6,
                                  exclude_idx=[np.array([3]), np.empty(0, np.int64), np.array([13])])
    for row in range(3):
        total = queries[row] @ vectors.T + weights[row] * own[row]
        total[[3] if row == 0 else [13] if row == 2 else []] = -np.inf
        assert labels[row].tolist() == np.argsort(-total, kind="stable")[:6].tolist()
    assert labels[0, 0] == 11 and 13 not in labels[2]


def test_train_job_reads_a_user_attribute_table(world, tmp_path):
    from mmrec.jobs.train import load_train_job, run_train_job

    world.frame.to_csv(tmp_path / "events.csv", index=False)
    attributes().rename(columns={"user": "user_id"}).to_csv(tmp_path / "users.csv", index=False)
    (tmp_path / "train.yaml").write_text(
        "events: events.csv\nusers: users.csv\nout: run\nmodel: {dim: 8, user_tower: mean, item_ids: true}\n"
        "training: {epochs: 1, prior_users: 0}\nsplit: {kind: leave_last_out}\n", "utf-8")
    run_train_job(load_train_job(tmp_path / "train.yaml"))
    model = mmrec.TwoTower.load(tmp_path / "run" / "model")
    assert model.user_schema_ is not None and "segment" in model.user_schema_.categorical
    (tmp_path / "bad.csv").write_text("who,segment\nu1,s1\n", "utf-8")
    from mmrec.data.readers import read_user_attributes

    with pytest.raises(SchemaError, match="user_id"):
        read_user_attributes(tmp_path / "bad.csv")


def test_segment_popularity_ranks_by_the_users_segments(world, tmp_path):
    from mmrec.baselines import SegmentPopularity

    model = SegmentPopularity().fit(None, world, users=attributes())
    new = [f"u{N_USERS + i}" for i in range(4)] + ["stranger"]
    scores = model.score_items(NO_EVENTS, users=new)
    top = np.argsort(-scores, axis=1)[:, :5]
    for row in range(4):
        assert np.mean(np.array(group_of(model.item_ids_[top[row]])) == row) >= 0.8
    np.testing.assert_allclose(scores[4], model.counts_)  # no attributes: overall popularity
    model.save(tmp_path / "segments")
    loaded = SegmentPopularity.load(tmp_path / "segments")
    loaded.set_user_attributes(attributes())
    np.testing.assert_allclose(loaded.score_items(NO_EVENTS, users=new), scores)
