"""CUDA paths: the same results as on CPU within tolerance. Skipped without a GPU."""

import numpy as np
import pytest
import torch

import mmrec
from mmrec.features.audio import mfcc_stats

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_mfcc_on_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (20000, 33000)]
    cpu = mfcc_stats(waves, device="cpu").numpy()
    gpu = mfcc_stats(waves, device="cuda").cpu().numpy()
    np.testing.assert_allclose(gpu, cpu, atol=1e-2, rtol=1e-3)


def test_encode_items_on_cuda_matches_cpu(demo):
    catalog = mmrec.Catalog.from_path(demo.catalog)
    small = {"resize": 64, "crop": 64, "autocast": False}  # fp32 on both for a tight comparison
    runs = {
        device: mmrec.encode_items(catalog, device=device, encoders={
            "image": mmrec.create_encoder("image-resnet18", overrides=small, device=device)})
        for device in ("cpu", "cuda")
    }
    for modality in runs["cpu"].modalities:
        np.testing.assert_allclose(runs["cuda"].vectors[modality], runs["cpu"].vectors[modality],
                                   atol=1e-2, rtol=1e-3)


def test_cnn_autocast_on_cuda_stays_close_to_fp32():
    encoder = mmrec.create_encoder("image-resnet18", overrides={"resize": 64, "crop": 64}, device="cuda")
    exact = mmrec.create_encoder("image-resnet18", overrides={"resize": 64, "crop": 64,
                                                               "autocast": False}, device="cuda")
    batch = [torch.randn(3, 64, 64) for _ in range(4)]
    a, b = encoder.encode(batch), exact.encode(batch)
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert (cosine > 0.999).all()
