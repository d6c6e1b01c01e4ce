"""The benchmark peers (benchmarks/peers.py): the cold-item views and the LightFM wrapper."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.errors import SchemaError
from mmrec.testing.worlds import clustered_world

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("benchmark_peers", PEERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cold_item_views_count_only_cold_targets_and_mask_the_history(peers):
    items = ["a", "b", "c", "d"]  # c and d are cold
    scores = np.array([[9, 1, 5, 0], [3, 9, 1, 2], [1, 2, 3, 4]], dtype=np.float32)
    history = [["a"], ["b"], []]
    targets = [["c"], ["d", "a"], ["a"]]  # the last user has no cold target: not counted
    one = peers.cold_item_views(scores, items, history, targets, {"c", "d"}, k=1)
    assert one == {"recall@1, cold items": 1.0, "recall@1, whole catalog": 0.5, "cold share@1": 0.5,
                   "users": 2.0}
    two = peers.cold_item_views(scores, items, history, targets, {"c", "d"}, k=2)
    assert two["recall@2, whole catalog"] == 1.0 and two["cold share@2"] == 0.5
    frame = pd.DataFrame({"user": ["x", "y", "x"], "item": ["a", "b", "c"]})
    assert [list(r) for r in peers.items_per_user(frame, ["x", "z"])] == [["a", "c"], []]
    with pytest.raises(SchemaError, match="4 items"):
        peers.cold_item_views(scores[:, :3], items, history, targets, {"c"})


def test_lightfm_places_cold_items_by_their_features_alone(peers):
    pytest.importorskip("lightfm")
    world = clustered_world(n_users=80, n_items=40)
    n_items = 40
    catalog = mmrec.Catalog.from_frame(pd.DataFrame({
        "item_id": [f"i{n}" for n in range(n_items)], "genres": [f"G{n % 4}" for n in range(n_items)],
        "title": [f"Movie {n} of kind{n % 4}" for n in range(n_items)]}))
    split = mmrec.cold_item_split(world, test_fraction=0.25, seed=1)  # every group has a cold item
    cold = sorted(set(split.test.frame["item"]))
    users = list(split.train.users)
    fitted = [peers.LightFMPeer(catalog, epochs=10, no_components=8).fit(None, split.train)
              for _ in range(2)]
    scores = fitted[0].score_items(split.train, users=users)
    assert scores.dtype == np.float32 and scores.shape == (len(users), n_items)
    np.testing.assert_array_equal(scores, fitted[1].score_items(split.train, users=users))  # seeded
    assert set(cold) <= set(fitted[0].item_ids_)
    columns = fitted[0].item_ids_.get_indexer(cold)
    best = np.asarray(cold, dtype=object)[np.argmax(scores[:, columns], axis=1)]
    same_group = [int(i[1:]) % 4 == int(u[1:]) % 4 for i, u in zip(best, users, strict=True)]
    assert np.mean(same_group) >= 0.8  # each user's best cold item is of their own kind
    views = peers.cold_item_views(scores, fitted[0].item_ids_, peers.items_per_user(split.train, users),
                                  peers.items_per_user(split.test, users), cold, k=5)
    assert views["recall@5, cold items"] > 0.5


def test_lightfm_reads_user_attributes_for_new_users(peers):
    pytest.importorskip("lightfm")
    world = clustered_world(n_users=80, n_items=40)
    catalog = mmrec.Catalog.from_frame(pd.DataFrame({
        "item_id": [f"i{n}" for n in range(40)], "genres": "any", "title": "a title"}))
    users = pd.DataFrame({"user": [f"u{n}" for n in range(84)], "kind": [f"k{n % 4}" for n in range(84)]})
    model = peers.LightFMPeer(catalog, epochs=10, no_components=8, user_features=True, user_columns=("kind",))
    scores = model.fit(None, world, users=users).score_items(world.for_users([]), users=["u80", "u81"])
    group = np.array([int(i[1:]) % 4 for i in model.item_ids_])
    for row, kind in enumerate((0, 1)):  # never trained: placed by their attribute alone
        assert (group[np.argsort(-scores[row])[:5]] == kind).mean() >= 0.8
    with pytest.raises(SchemaError, match="'age'"):
        peers.LightFMPeer(catalog, user_features=True).fit(None, world, users=users)
