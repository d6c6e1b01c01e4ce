"""TwoTower as a composition of fitted parts: each part saves and loads on its own, the saved folder
lists them, a folder saved by the one-file layout (format_version 1) still loads, a part is switched
off by its own config field, and a new part joins by being named in ``PARTS``."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch

import mmrec
from mmrec.models import parts as parts_module
from mmrec.models.parts import PARTS, Part
from mmrec.testing.worlds import clustered_world

FIXTURES = Path(__file__).parent / "fixtures"


def _maker() -> Any:
    """``tests/fixtures/make_two_tower_v1.py``: the world and inputs the old model was fitted on."""
    spec = importlib.util.spec_from_file_location("make_two_tower_v1", FIXTURES / "make_two_tower_v1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKER = _maker()
EXPECTED = np.load(FIXTURES / "two_tower_v1_expected.npz", allow_pickle=False)
USERS = [str(u) for u in EXPECTED["users"]]


@pytest.fixture(scope="module")
def train() -> mmrec.Interactions:
    world = clustered_world(n_users=MAKER.N_USERS, n_items=MAKER.N_ITEMS, per_user=8)
    return mmrec.cold_item_split(world, test_fraction=0.2).train


@pytest.fixture()
def old_model() -> mmrec.TwoTower:
    model = mmrec.TwoTower.load(FIXTURES / "two_tower_v1")
    model.set_user_attributes(MAKER.attributes())
    return model


def _outputs(model: mmrec.TwoTower, train: mmrec.Interactions) -> dict[str, np.ndarray]:
    return {"scores": model.score_items(train, users=USERS),
            "items": model.encode_items(MAKER.content()).fused,
            "user_vectors": model.encode_users(train, users=USERS).vectors}


def test_a_model_saved_by_the_one_file_layout_loads_and_computes_what_it_did(old_model, train):
    manifest = json.loads((FIXTURES / "two_tower_v1" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and "model.safetensors" in manifest["files"]
    assert all(part.fitted for part in old_model.parts.values())  # all four parts came back
    assert old_model.prior_.segments is not None and old_model.user_schema_ is not None
    for name, value in _outputs(old_model, train).items():
        # within float32 rounding: scores are sums of terms up to ~60 (one unit in the last place:
        # 3.8e-06, so a few units of slack; the CPU's kernels choose the summation order, and
        # full-table scoring applies the scale and the parts' terms in place since the fixture)
        if name == "items":  # the last column fills each row's norm to the blend's radius: for a
            # warm row it is the square root of rounding (the fixture kept fillers up to 3.4e-4;
            # today's code sets those to 0), compared at that scale
            np.testing.assert_allclose(value[:, -1], EXPECTED[name][:, -1], atol=5e-4, err_msg=name)
            value, expected = value[:, :-1], EXPECTED[name][:, :-1]
        else:
            expected = EXPECTED[name]
        np.testing.assert_allclose(value, expected, rtol=2e-7, atol=1.2e-5, err_msg=name)


def test_a_resave_writes_a_folder_per_part_listed_in_the_manifest(old_model, train, tmp_path):
    old_model.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["parts"] == list(PARTS)
    assert sorted(manifest["files"]) == sorted(f"{name}/manifest.json" for name in PARTS)
    attributes = json.loads((tmp_path / "m" / "attributes" / "manifest.json").read_text())
    assert "u0" not in json.dumps(attributes)  # the schema, never the users' rows
    loaded = mmrec.TwoTower.load(tmp_path / "m")
    loaded.set_user_attributes(MAKER.attributes())
    for name, value in _outputs(loaded, train).items():
        np.testing.assert_array_equal(value, _outputs(old_model, train)[name], err_msg=name)


@pytest.mark.parametrize("name", list(PARTS))
def test_every_part_saves_and_loads_on_its_own(old_model, name, tmp_path):
    part = old_model.parts[name]
    loaded = type(part).load(part.save(tmp_path / name))
    assert loaded.fitted
    before, after = part.state(), loaded.state()
    assert sorted(before) == sorted(after)
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
        elif scipy.sparse.issparse(value):  # the prior's segment counts
            assert scipy.sparse.issparse(after[key]) and after[key].shape == value.shape, key
            np.testing.assert_array_equal(after[key].toarray(), value.toarray(), err_msg=key)
        elif isinstance(value, pd.Index):
            assert after[key].equals(value), key
        else:
            assert after[key] == json.loads(json.dumps(value)), key
    with pytest.raises(mmrec.ArtifactError, match=f"two_tower.{name}"):
        other = next(n for n in PARTS if n != name)
        PARTS[other].load(tmp_path / name)  # each folder names its part: no mix-ups


def test_a_part_folder_that_was_tampered_with_is_refused(old_model, tmp_path):
    old_model.save(tmp_path / "m")
    state = tmp_path / "m" / "prior" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(mmrec.ArtifactError, match="checksum"):
        mmrec.TwoTower.load(tmp_path / "m")
    shutil.rmtree(tmp_path / "m")
    old_model.save(tmp_path / "m")
    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["parts"].append("reranker")
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(mmrec.ArtifactError, match="reranker"):
        mmrec.TwoTower.load(tmp_path / "m")


@pytest.fixture(scope="module")
def small_world() -> tuple[mmrec.Interactions, mmrec.ItemVectors]:
    split = mmrec.cold_item_split(clustered_world(n_users=300, n_items=MAKER.N_ITEMS, per_user=8),
                                  test_fraction=0.2)
    return split.train, MAKER.content()


def _fit(small_world, **options) -> mmrec.TwoTower:
    train, items = small_world
    return mmrec.TwoTower(dim=8, user_tower="mean", epochs=2, patience=2, lr=1e-2, batch_size=32, seed=0,
                          **options).fit(items, train)


def test_the_prior_and_the_blend_are_switched_off_each_by_its_own_field(small_world, tmp_path):
    both = _fit(small_world, prior_users=30)
    assert both.prior_ is not None and both.blend_ is not None
    no_prior = _fit(small_world, prior_users=0)
    assert no_prior.prior_ is None and no_prior.blend_ is not None
    no_blend = _fit(small_world, prior_users=30, content_blend=False)
    assert no_blend.blend_ is None and no_blend.prior_ is not None
    # the prior's fit does not depend on whether the blend exists beyond the blend's own scores:
    # the same users are held out and the same popularity is counted
    np.testing.assert_array_equal(no_blend.prior_.log_popularity, both.prior_.log_popularity)
    assert no_blend.vector_dim == 8 and both.vector_dim == 8 + both.blend_.width
    manifest = json.loads((no_prior.save(tmp_path / "m") / "manifest.json").read_text())
    assert manifest["parts"] == ["network", "content_blend"]


class PopularityBoost(Part):
    """A part written for this test: after training, a per-item bonus from the validation events
    (how a re-ranker fitted on validation would join), added to every user's scores."""

    name = "boost"

    def __init__(self) -> None:
        self.bonus_: np.ndarray | None = None

    @property
    def fitted(self) -> bool:
        return self.bonus_ is not None

    def fit(self, model, data) -> None:
        rows = model.item_ids_.get_indexer(data.valid.frame["item"].to_numpy(dtype=object))
        counts = np.bincount(rows[rows >= 0], minlength=len(model.item_ids_))
        self.bonus_ = (0.1 * np.log1p(counts)).astype(np.float32)

    def score_term(self, model, histories, device):
        bonus = torch.from_numpy(self.bonus_).to(device) if self.bonus_ is not None else None
        return None if bonus is None else (lambda rows: bonus.expand(len(rows), -1))

    def state(self) -> dict[str, Any]:
        return {"bonus": self.bonus_}

    def set_state(self, state: dict[str, Any]) -> None:
        self.bonus_ = np.asarray(state["bonus"], dtype=np.float32)


def test_a_new_part_joins_by_being_named_in_parts(small_world, monkeypatch, tmp_path):
    train, _ = small_world
    plain = _fit(small_world, prior_users=0, content_blend=False)
    monkeypatch.setitem(PARTS, "boost", PopularityBoost)
    assert parts_module.PARTS is PARTS  # the one place parts are named
    boosted = _fit(small_world, prior_users=0, content_blend=False)
    bonus = boosted.parts["boost"].bonus_
    assert bonus is not None and bonus.max() > 0
    users = list(train.users[:20])
    scale = float(boosted.net_.scale.detach())
    np.testing.assert_allclose(boosted.score_items(train, users=users),
                               plain.score_items(train, users=users) + scale * bonus, atol=1e-4)
    loaded = mmrec.TwoTower.load(boosted.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.parts["boost"].bonus_, bonus)
    np.testing.assert_array_equal(loaded.score_items(train, users=users),
                                  boosted.score_items(train, users=users))


def test_the_attribute_schema_must_be_the_one_the_user_tower_was_built_with(old_model):
    """Both parts save the schema (the network needs it to be rebuilt on its own); a load through
    the model refuses two that differ."""
    import dataclasses

    old_model.attributes.check(old_model)  # as saved: the same
    old_model.attributes.schema_ = dataclasses.replace(old_model.user_schema_, numeric={})
    with pytest.raises(ValueError, match="user tower was built with"):
        old_model.attributes.check(old_model)
