"""Artifacts are checked before use: manifest paths stay inside the folder, array headers and model
shapes are checked before anything is allocated, pickles are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mmrec
import mmrec.models.parts.network as network_part
from mmrec.errors import ArtifactError
from mmrec.utils.io import load_npy, sha256_file


def _rewrite(folder: Path, name: str, write) -> None:
    """Replace ``folder/name`` and update the manifest's checksum and size, as an attacker would."""
    write(folder / name)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = sha256_file(folder / name)
    manifest["sizes"][name] = (folder / name).stat().st_size
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _edit_network_config(model: Path, **change) -> None:
    """Edit the network part's saved configuration and re-sign the model's manifest with the edited
    file's checksum (what someone who rewrites both would do)."""
    _edit_manifest(model / "network", lambda m: m["params"]["config"].update(change))
    name = "network/manifest.json"
    _edit_manifest(model, lambda m: (m["files"].update({name: sha256_file(model / name)}),
                                     m["sizes"].update({name: (model / name).stat().st_size})))


@pytest.fixture()
def saved_index(tmp_path) -> Path:
    x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    return mmrec.build_index(x, spec="Flat").save(tmp_path / "index")


def test_manifest_paths_must_stay_inside_the_folder(saved_index, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the events log")
    for name in ("../secret.txt", str(secret)):
        _edit_manifest(saved_index, lambda m, name=name: m["files"].update({name: sha256_file(secret)}))
        with pytest.raises(ArtifactError, match="not a file inside the artifact folder"):
            mmrec.ItemIndex.load(saved_index)
        _edit_manifest(saved_index, lambda m, name=name: m["files"].pop(name))
    (saved_index / "link.txt").symlink_to(secret)
    _edit_manifest(saved_index, lambda m: m["files"].update({"link.txt": sha256_file(secret)}))
    with pytest.raises(ArtifactError, match="links outside"):
        mmrec.ItemIndex.load(saved_index)


def test_pickled_and_lying_arrays_are_refused(saved_index, tmp_path):
    _rewrite(saved_index, "alive.npy",
             lambda p: np.save(p, np.array([{"x": 1}] * 50, dtype=object), allow_pickle=True))
    with pytest.raises(ArtifactError, match="pickled Python objects"):
        mmrec.ItemIndex.load(saved_index)
    # a header claiming far more rows than the file holds: refused before any allocation
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((10, 4), dtype=np.float32))
    lying = tmp_path / "lying.npy"
    with open(lying, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (99_999_999, 4)})
        handle.write(np.zeros((10, 4), dtype=np.float32).tobytes())
    with pytest.raises(ArtifactError, match="header claims shape"):
        load_npy(lying)
    assert load_npy(good).shape == (10, 4)


def test_a_model_whose_manifest_claims_a_larger_network_is_refused_before_allocation(
        demo_items, demo_events, tmp_path, monkeypatch):
    model = mmrec.TwoTower(user_tower="mean", epochs=1, dim=16, max_len=20, batch_size=32,
                           max_valid_users=None).fit(demo_items, demo_events, show_progress=False)
    model.save(tmp_path / "m")
    _edit_network_config(tmp_path / "m", dim=4096)
    built = []
    real = network_part.TwoTowerNet

    def spy(*args, **kwargs):
        net = real(*args, **kwargs)
        built.append(next(net.buffers()).device.type)
        return net

    monkeypatch.setattr(network_part, "TwoTowerNet", spy)
    with pytest.raises(ArtifactError, match="saved configuration needs") as caught:
        mmrec.TwoTower.load(tmp_path / "m")
    assert built == ["meta"]  # only the shape plan was laid out; no real network was allocated
    assert str(tmp_path) not in str(caught.value)  # the message names the artifact, not where it lives
    monkeypatch.setattr(network_part, "TwoTowerNet", real)
    _edit_network_config(tmp_path / "m", dim=16)
    loaded = mmrec.TwoTower.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.encode_items(demo_items).fused, model.encode_items(demo_items).fused)


def test_shard_names_in_a_manifest_stay_in_the_shard_folder(tmp_path):
    from mmrec.vectors.shards import SHARD_DIR, shard_files

    assert shard_files(tmp_path, {"shards": [{"file": "part-0.parquet"}]}) == [
        tmp_path / SHARD_DIR / "part-0.parquet"]
    for name in ("../../events.csv", "/etc/hostname", "..", "", None, "sub/part.parquet"):
        with pytest.raises(ArtifactError, match="not a file name inside"):
            shard_files(tmp_path, {"shards": [{"file": name}]})
