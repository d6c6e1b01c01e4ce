"""LightGCN: the normalised graph, propagation, fold-in of new users, content start, quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import mmrec
from mmrec.baselines import LightGCN
from mmrec.baselines.lightgcn import normalized_adjacency
from mmrec.data.matrix import interaction_matrix
from mmrec.errors import ConfigError
from mmrec.evaluation import EvalConfig, evaluate_model
from mmrec.testing.worlds import clustered_world, in_group_share


def test_adjacency_is_the_symmetric_normalised_bipartite_graph():
    events = clustered_world(n_users=6, n_items=16, per_user=3)
    items = pd.Index(sorted(set(events.frame["item"])))
    R = interaction_matrix(events, events.users, items).toarray().astype(np.float64)
    A = np.block([[np.zeros((R.shape[0],) * 2), R], [R.T, np.zeros((R.shape[1],) * 2)]])
    d = A.sum(axis=1)
    expected = A / np.sqrt(np.outer(np.maximum(d, 1), np.maximum(d, 1)))
    got = normalized_adjacency(interaction_matrix(events, events.users, items), torch.device("cpu"))
    assert got.to_dense().numpy() == pytest.approx(expected, abs=1e-6)


def test_zero_epochs_is_propagated_initialisation_and_new_users_are_folded_in():
    events = clustered_world()
    model = LightGCN(dim=8, layers=2, epochs=0).fit(None, events)
    assert model.item_factors_.shape == (len(model.item_ids_), 8)
    first = events.frame.iloc[:3].assign(user="new person")
    newcomer = mmrec.Interactions.from_frame(first.rename(columns={"user": "user_id", "item": "item_id"}))
    vector = model.encode_users(newcomer, users=["new person"])[0]
    rows = model.item_ids_.get_indexer(newcomer.frame["item"])
    assert vector == pytest.approx(model.item_factors_[rows].mean(axis=0), abs=1e-6)
    known = events.users[0]
    assert model.encode_users(events, users=[known])[0] == pytest.approx(model.user_factors_[0])


def test_content_start_places_similar_items_close(demo_items, demo_events):
    with_content = LightGCN(dim=16, layers=0, epochs=0).fit(demo_items, demo_events)
    without = LightGCN(dim=16, layers=0, epochs=0, content_init=False).fit(demo_items, demo_events)
    fused = demo_items.fused[demo_items.positions(list(with_content.item_ids_))]

    def agreement(factors):  # correlation of pairwise similarities with the content's
        a = factors / np.linalg.norm(factors, axis=1, keepdims=True)
        b = fused / np.linalg.norm(fused, axis=1, keepdims=True)
        return np.corrcoef((a @ a.T).ravel(), (b @ b.T).ravel())[0, 1]

    assert agreement(with_content.item_factors_) > 0.5 > abs(agreement(without.item_factors_))


def test_lightgcn_learns_the_groups_and_is_seeded():
    events = clustered_world()
    model = LightGCN(dim=16, layers=2, epochs=40, lr=0.02, batch_size=256, seed=3).fit(None, events)
    assert in_group_share(model, events) > 0.8
    assert model.losses_[-1] < model.losses_[0]
    one = LightGCN(dim=16, layers=2, epochs=2, seed=3).fit(None, events)
    two = LightGCN(dim=16, layers=2, epochs=2, seed=3).fit(None, events)
    assert np.array_equal(one.item_factors_, two.item_factors_)
    with pytest.raises(ConfigError):
        LightGCN(dim=0)


def test_lightgcn_runs_through_the_harness_with_cold_users(demo_events):
    split = mmrec.cold_user_split(demo_events, test_fraction=0.3, n_given=3)
    row = evaluate_model(LightGCN(dim=8, epochs=2), split, config=EvalConfig(ks=(10,)))
    assert row["users"] > 0 and 0.0 <= row["recall@10"] <= 1.0
