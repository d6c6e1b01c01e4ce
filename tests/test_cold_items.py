"""Cold items: the content-neighbour blend fitted after training, served through the vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.models.content_blend import ContentBlend, principal_subspace
from mmrec.testing.worlds import clustered_world

N_ITEMS = 80


def content(seed: int = 0) -> mmrec.ItemVectors:
    """Item content that names each item's group (4 groups), with noise."""
    rng = np.random.default_rng(seed)
    groups = np.eye(4, dtype=np.float32)[np.arange(N_ITEMS) % 4]
    text = np.hstack([groups, 0.3 * rng.normal(size=(N_ITEMS, 12)).astype(np.float32)])
    ids = np.array([f"i{j}" for j in range(N_ITEMS)], dtype=object)
    return mmrec.ItemVectors(ids, {"text": text}, {"text": np.ones(N_ITEMS, bool)})


@pytest.fixture(scope="module")
def split():
    return mmrec.cold_item_split(clustered_world(n_users=300, n_items=N_ITEMS, per_user=8), test_fraction=0.2)


@pytest.fixture(scope="module")
def model(split):
    return mmrec.TwoTower(dim=16, user_tower="mean", epochs=4, patience=4, lr=1e-2, batch_size=16, seed=0,
                          prior_users=0).fit(content(), split.train)


def test_the_blend_is_fitted_and_lives_in_the_vectors(model, split):
    assert model.blend_ is not None and model.blend_.weight in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8, 1.2)
    assert model.vector_dim == 16 + model.blend_.width
    encoded = model.encode_items(content())
    assert encoded.fused.shape == (N_ITEMS, model.vector_dim)
    cold = ~np.isin(encoded.ids, split.train.frame["item"].unique())
    assert np.all(encoded.fused[~cold, 16:-1] == 0)  # warm items: their learned vector alone
    radius = model.blend_.radius
    assert np.allclose(encoded.fused[cold, -2] * radius, model.blend_.offset)
    # unit rows: an index that normalises what it stores keeps them as they are
    assert np.allclose(np.linalg.norm(encoded.fused, axis=1), 1.0, atol=1e-5)
    users = list(split.train.users)  # more than one scoring chunk (256 users)
    assert len(users) > 256
    vectors = model.encode_users(split.train, users=users).vectors
    scores = model.score_items(split.train, users=users)
    rows = model.item_ids_.get_indexer(encoded.ids)  # score columns: the model's item table
    np.testing.assert_allclose(scores[:, rows] / float(model.net_.scale.detach()), vectors @ encoded.fused.T,
                               atol=1e-4)


def test_an_index_of_the_vectors_serves_cold_items(model, split):
    index = mmrec.build_index(model.encode_items(content()), spec="Flat")
    users = list(split.test.frame["user"].unique()[:30])
    recs = mmrec.recommend(index, split.train, users=users, model=model, k=10)
    cold = set(split.test.frame["item"])
    assert 0 < recs["item"].isin(cold).mean() < 1  # calibrated: neither buried nor flooding
    online = mmrec.OnlineRecommender(model, index, history=split.train)
    assert len(online.recommend(users[0], k=5)) == 5


def test_the_blend_survives_save_and_load(model, tmp_path):
    model.save(tmp_path / "m")
    loaded = mmrec.TwoTower.load(tmp_path / "m")
    assert loaded.blend_.weight == model.blend_.weight and loaded.blend_.offset == model.blend_.offset
    np.testing.assert_allclose(loaded.encode_items(content()).fused, model.encode_items(content()).fused,
                               atol=1e-6)


def test_no_blend_when_switched_off_or_without_content(split):
    off = mmrec.TwoTower(dim=8, user_tower="mean", epochs=1, seed=0, prior_users=0, content_blend=False)
    assert off.fit(content(), split.train).blend_ is None and off.vector_dim == 8
    ids_only = mmrec.TwoTower(dim=8, user_tower="mean", epochs=1, seed=0, prior_users=0)
    assert ids_only.fit(None, split.train).blend_ is None


def test_projection_keeps_missing_content_at_zero():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(30, 6)).astype(np.float32)
    mean, directions = principal_subspace(raw, 3)
    blend = ContentBlend(mean, directions, 0.5, -0.1, {})
    coords = blend.project(np.vstack([raw[:2], np.zeros((1, 6), np.float32)]))
    assert np.allclose(np.linalg.norm(coords[:2], axis=1), 1) and np.all(coords[2] == 0)


def test_catalog_attributes_become_a_modality_and_new_items_are_read_alike():
    from mmrec.encode.attributes import ATTRIBUTES, add_attribute_modality, encode_attributes
    from mmrec.errors import SchemaError

    frame = pd.DataFrame({"item_id": [f"m{j}" for j in range(12)], "title": [f"movie {j}" for j in range(12)],
                          "genres": ["Drama|Comedy", "Drama", "Horror", "Comedy"] * 3,
                          "year": [1990.0 + j for j in range(11)] + [np.nan]})
    schema = mmrec.CatalogSchema(id="item_id", text=("title",), categorical=("genres",), numeric=("year",))
    catalog = mmrec.Catalog.from_frame(frame, schema=schema)
    ids = catalog.ids
    base = mmrec.ItemVectors(ids, {"text": np.eye(12, dtype=np.float32)}, {"text": np.ones(12, bool)})
    items = add_attribute_modality(base, catalog, columns=["genres", "year"], bins=4)
    matrix = items.vectors[ATTRIBUTES]
    spec = items.encoders[ATTRIBUTES]["spec"]
    assert spec["blocks"][0]["vocabulary"] == ["comedy", "drama", "horror"]  # by count, ties by token
    assert matrix.shape == (12, 3 + 4 + 1)
    assert matrix[0, :3].tolist() == [1, 1, 0] and matrix[2, :3].tolist() == [0, 0, 1]
    assert matrix[11, -1] == 1  # tokens; a missing year
    assert np.all(matrix[:11, 3:].sum(axis=1) == 1)  # one quantile bin each
    new = mmrec.Catalog.from_frame(frame.iloc[[2]].assign(item_id="new"), schema=catalog.schema)
    again, mask = encode_attributes(new, spec)
    np.testing.assert_array_equal(again[0], matrix[2])
    assert mask.tolist() == [True]
    with pytest.raises(SchemaError, match="brand"):
        add_attribute_modality(base, catalog, columns=["brand"])
