"""The open_clip path with a tiny randomly initialised architecture (no CLIP weights install here)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import mmrec
from mmrec.encoders import create_encoder

open_clip = pytest.importorskip("open_clip")

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "mmrec-tiny-clip.json"
    path.write_text(json.dumps(TINY))
    return {"arch": "mmrec-tiny-clip", "config_file": str(path)}


def images(tmp_path):
    paths = []
    for i, color in enumerate(["red", (0, 120, 255), "yellow"]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (48 + 10 * i, 40), color).save(paths[-1])
    return paths


def test_tiny_clip_encodes_with_its_own_preprocessing(tiny_config, tmp_path):
    encoder = create_encoder("image-clip-vit-b32", overrides=tiny_config)
    assert encoder.dim == 16
    batch = [encoder.prepare(p) for p in images(tmp_path)]
    assert batch[0].shape == (3, 32, 32)  # the architecture's image_size, not a preset's
    out = encoder.encode(batch)
    assert out.shape == (3, 16) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    again = create_encoder("image-clip-vit-b32", overrides=tiny_config).encode(batch)
    np.testing.assert_array_equal(out, again)  # seeded initialisation


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_is_loaded(tiny_config, tmp_path, suffix):
    torch.manual_seed(7)
    reference = open_clip.create_model("mmrec-tiny-clip", pretrained=None).eval()
    path = tmp_path / f"tiny{suffix}"
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    encoder = create_encoder("image-clip-vit-b32", overrides={**tiny_config, "weights": str(path)})
    x = encoder.prepare(images(tmp_path)[0])[None]
    with torch.no_grad():
        expected = torch.nn.functional.normalize(reference.encode_image(x), dim=1).numpy()
    np.testing.assert_allclose(encoder.encode([x[0]]), expected, atol=1e-5)


def test_clip_errors(tiny_config, tmp_path):
    with pytest.raises(mmrec.ConfigError, match="unknown open_clip architecture"):
        create_encoder("image-clip-vit-b32", overrides={"arch": "ViT-Q-99"})
    with pytest.raises(mmrec.ConfigError, match="weights not found"):
        create_encoder("image-clip-vit-b32", overrides={**tiny_config, "weights": str(tmp_path / "x.pt")})
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"visual.bogus": torch.zeros(2)}, str(wrong))
    with pytest.raises(mmrec.ConfigError, match="do not fit"):
        create_encoder("image-clip-vit-b32", overrides={**tiny_config, "weights": str(wrong)})


def test_encode_items_with_clip(tiny_config, demo):
    encoder = create_encoder("image-clip-vit-b32", overrides=tiny_config)
    catalog = mmrec.Catalog.from_path(demo.catalog)
    items = mmrec.encode_items(catalog, encoders={"image": encoder, "text": None, "audio": None})
    assert items.vectors["image"].shape == (len(catalog), 16)
    assert items.report.counts["image"]["failed"] == 1  # the demo's corrupt image
