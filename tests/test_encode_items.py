import json

import numpy as np
import pandas as pd
import pytest

import mmrec
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.testing.worlds import FAST_IMAGE, fast_choice


def test_counts_add_up_and_broken_files_are_reported(demo_items):
    n = len(demo_items)
    for modality, counts in demo_items.report.counts.items():
        assert sum(counts.values()) == n, modality
        assert counts["encoded"] == int(demo_items.masks[modality].sum())
    issues = {(i.item_id, i.modality): i.reason for i in demo_items.report.issues}
    assert "not a readable image" in issues[("item0003", "image")]
    assert "audio file not found" in issues[("item0005", "audio")]
    assert not demo_items.masks["image"][3] and not demo_items.masks["audio"][5]
    frame = demo_items.report.to_frame()
    assert list(frame.columns) == ["item_id", "modality", "reason"] and len(frame) == 2


def test_shapes_dtypes_and_fused_vectors(demo_items):
    n = len(demo_items)
    assert demo_items.modalities == ["audio", "image", "text"]
    dims = {m: v.shape for m, v in demo_items.vectors.items()}
    assert dims == {"audio": (n, 120), "image": (n, 512), "text": (n, 128)}
    for modality, matrix in demo_items.vectors.items():
        assert matrix.dtype == np.float32 and matrix.flags["C_CONTIGUOUS"]
        assert np.all(matrix[~demo_items.masks[modality]] == 0)
    assert demo_items.fused.shape == (n, 760) and demo_items.fused.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(demo_items.fused, axis=1), 1.0, rtol=1e-5)
    # the fused block of a missing modality is zero
    audio_block = demo_items.fused[:, :120]
    assert np.all(audio_block[~demo_items.masks["audio"]] == 0)


def test_fused_dot_product_is_weighted_mean_of_modality_cosines():
    rng = np.random.default_rng(0)
    vectors = {"a": rng.normal(size=(5, 3)).astype(np.float32),
               "b": rng.normal(size=(5, 4)).astype(np.float32)}
    masks = {"a": np.ones(5, bool), "b": np.ones(5, bool)}
    items = mmrec.ItemVectors([f"i{i}" for i in range(5)], vectors, masks,
                              fusion_weights={"a": 3.0, "b": 1.0})

    def cos(m):
        z = items.scalers[m].transform(vectors[m])
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        return z @ z.T

    expected = (3.0 * cos("a") + 1.0 * cos("b")) / 4.0
    np.testing.assert_allclose(items.fused @ items.fused.T, expected, atol=1e-5)


def test_save_load_round_trip_is_exact(demo_items, tmp_path):
    path = demo_items.save(tmp_path / "vecs")
    loaded = mmrec.ItemVectors.load(path)
    assert loaded.ids.tolist() == demo_items.ids.tolist()
    for m in demo_items.modalities:
        np.testing.assert_array_equal(loaded.vectors[m], demo_items.vectors[m])
        np.testing.assert_array_equal(loaded.masks[m], demo_items.masks[m])
    np.testing.assert_array_equal(loaded.fused, demo_items.fused)
    assert loaded.report.counts == demo_items.report.counts
    assert loaded.report.issues == demo_items.report.issues
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "item_vectors" and manifest["encoders"]["text"]["preset"] == "text-tfidf-svd"
    assert not list(tmp_path.glob(".vecs*")), "temporary folders are cleaned up"


def test_tampered_or_incomplete_artifacts_are_refused(demo_items, tmp_path):
    path = demo_items.save(tmp_path / "vecs")
    ids = json.loads((path / "ids.json").read_text())
    (path / "ids.json").write_text(json.dumps(ids[::-1]))
    with pytest.raises(ArtifactError, match="does not match its checksum"):
        mmrec.ItemVectors.load(path)
    (path / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        mmrec.ItemVectors.load(path)


def test_failed_save_leaves_previous_artifact(demo_items, tmp_path, monkeypatch):
    path = demo_items.save(tmp_path / "vecs")
    before = (path / "fused.npy").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("mmrec.vectors.item_vectors.write_manifest", boom)
    with pytest.raises(OSError, match="disk full"):
        demo_items.save(path)
    assert (path / "fused.npy").read_bytes() == before
    mmrec.ItemVectors.load(path)


def test_text_only_catalog_and_modality_selection(tmp_path):
    df = pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["sea boat", "", "forest tree"]})
    items = mmrec.encode_items(mmrec.Catalog.from_frame(df))
    assert items.modalities == ["text"]
    assert items.masks["text"].tolist() == [True, False, True]
    assert items.report.counts["text"] == {"encoded": 2, "absent": 1, "failed": 0}
    with pytest.raises(ConfigError, match="no image column"):
        mmrec.encode_items(mmrec.Catalog.from_frame(df), encoders={"image": "image-resnet18"})
    with pytest.raises(ConfigError, match="nothing to encode"):
        mmrec.encode_items(mmrec.Catalog.from_frame(df), encoders={"text": None})
    with pytest.raises(KeyError, match="unknown modality 'smell'"):
        mmrec.encode_items(mmrec.Catalog.from_frame(df), encoders={"smell": "x"})
    with pytest.raises(SchemaError, match="expects a mmrec.Catalog, a DataFrame or a catalog file"):
        mmrec.encode_items(df.to_dict("records"))
    from_frame = mmrec.encode_items(df)  # a DataFrame is read as Catalog.from_frame reads it
    np.testing.assert_array_equal(from_frame.vectors["text"], items.vectors["text"])


def test_encoder_of_wrong_modality_is_refused():
    df = pd.DataFrame({"item_id": ["a"], "title": ["x"]})
    with pytest.raises(ConfigError, match="is a 'audio' encoder"):
        mmrec.encode_items(mmrec.Catalog.from_frame(df), encoders={"text": "audio-mfcc-stats"})


def test_same_catalog_same_vectors(demo, demo_items, fast_encoders):
    again = mmrec.encode_items(mmrec.Catalog.from_path(demo.catalog), encoders=fast_encoders,
                               batch_size=7)
    for m in demo_items.modalities:  # other batches, other summation order: float32 rounding only
        # (MFCC statistics reach ~350, where one unit in the last place is 3e-05)
        np.testing.assert_allclose(again.vectors[m], demo_items.vectors[m], rtol=1e-6, atol=1e-5)


def test_decoding_in_worker_processes_gives_the_same_result(demo, demo_items):
    from mmrec.encoders import create_encoder

    catalog = mmrec.Catalog.from_path(demo.catalog)
    image = create_encoder("image-resnet18", overrides={"resize": 64, "crop": 64})
    parallel = mmrec.encode_items(catalog, encoders=fast_choice(image), num_workers=2, batch_size=16)
    for m in demo_items.modalities:
        np.testing.assert_allclose(parallel.vectors[m], demo_items.vectors[m], atol=1e-5)
        np.testing.assert_array_equal(parallel.masks[m], demo_items.masks[m])
    assert parallel.report.issues == demo_items.report.issues
    with pytest.raises(ConfigError, match="num_workers"):
        mmrec.encode_items(catalog, num_workers=-1)


def test_streaming_output_equals_in_memory_result(demo, demo_items, tmp_path, monkeypatch):
    from mmrec.encoders import create_encoder
    from mmrec.utils import arrays

    monkeypatch.setattr(arrays, "RELEASE_EVERY_BYTES", 4096)  # release pages many times
    catalog = mmrec.Catalog.from_path(demo.catalog)
    image = create_encoder("image-resnet18", overrides={"resize": 64, "crop": 64})
    streamed = mmrec.encode_items(catalog, encoders=fast_choice(image), out=tmp_path / "items")
    assert isinstance(streamed.vectors["image"], np.memmap) or isinstance(
        streamed.vectors["image"].base, np.memmap)
    for m in demo_items.modalities:
        np.testing.assert_allclose(streamed.vectors[m], demo_items.vectors[m], atol=1e-5)
        np.testing.assert_array_equal(streamed.masks[m], demo_items.masks[m])
    np.testing.assert_allclose(streamed.fused, demo_items.fused, atol=1e-5)
    assert streamed.report.issues == demo_items.report.issues
    reloaded = mmrec.ItemVectors.load(tmp_path / "items")
    np.testing.assert_array_equal(reloaded.fused, np.asarray(streamed.fused))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_row_sink_on_disk(tmp_path, monkeypatch):
    from mmrec.utils import arrays

    monkeypatch.setattr(arrays, "RELEASE_EVERY_BYTES", 64)
    sink = arrays.RowSink((10, 4), np.float32, tmp_path / "x.npy")
    sink.write([7, 2], np.ones((2, 4), np.float32))
    sink[slice(0, 1)] = np.full((1, 4), 3.0, np.float32)
    result = sink.close()
    expected = np.zeros((10, 4), np.float32)
    expected[[7, 2]] = 1.0
    expected[0] = 3.0
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), expected)


def test_num_threads_applies_during_the_call_only():
    import torch

    before = torch.get_num_threads()
    frame = pd.DataFrame({"item_id": ["a", "b"], "title": ["sea boat", "forest tree"]})
    mmrec.encode_items(mmrec.Catalog.from_frame(frame), num_threads=1)
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="num_threads"):
        mmrec.encode_items(mmrec.Catalog.from_frame(frame), num_threads=0)


def test_default_encoders_prefer_installed_pretrained_presets(monkeypatch):
    import mmrec.encoders.presets as encode

    assert encode.DEFAULT_ENCODERS["text"] == ("text-minilm-l6", "text-tfidf-svd")
    monkeypatch.setattr(encode, "preset_available", lambda name: name != "text-minilm-l6")
    assert encode.default_encoder("text") == "text-tfidf-svd"
    monkeypatch.setattr(encode, "preset_available", lambda name: True)
    assert encode.default_encoder("image") == "image-efficientnet-lite0"
    monkeypatch.setattr(encode, "preset_available", lambda name: False)
    assert encode.default_encoder("image") == "image-resnet18"  # the last resort needs nothing


def test_random_image_weights_are_said_loudly(demo, tmp_path, caplog):
    """Without pretrained weights the image encoder says so in the report and the log."""
    import logging

    catalog = mmrec.Catalog.from_path(demo.catalog)
    image = mmrec.create_encoder("image-resnet18", overrides=FAST_IMAGE)
    with caplog.at_level(logging.WARNING, logger="mmrec"):
        items = mmrec.encode_items(catalog, encoders={"text": None, "image": image, "audio": None},
                                   show_progress=False)
    assert [w.split(":")[0] for w in items.report.warnings] == ["image"]
    assert "RANDOM weights" in items.report.warnings[0] and "RANDOM weights" in caplog.text
    assert str(items.report).startswith("WARNING: image: ") and items.encoders["image"]["random_init"]
    items.save(tmp_path / "vectors")
    assert mmrec.ItemVectors.load(tmp_path / "vectors").report.warnings == items.report.warnings


def test_image_weights_from_a_file_are_not_random(tmp_path):
    import torch
    import torchvision
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = torchvision.models.mobilenet_v3_small(weights=None).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    assert mmrec.create_encoder("image-mobilenet-v3-small").random_init
    weights = {"weights": str(tmp_path / "w.safetensors")}
    loaded = mmrec.create_encoder("image-mobilenet-v3-small", overrides=weights)
    assert not loaded.random_init
    assert not mmrec.create_encoder("text-tfidf-svd").random_init
