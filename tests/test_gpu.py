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


def _two_tower_losses(demo_items, events, device: str, amp: bool, loss: str = "sampled") -> list[float]:
    model = mmrec.TwoTower(user_tower="transformer", fusion="gated", dim=16, max_len=20, n_layers=1,
                           dropout=0.0, epochs=2, loss=loss, n_negatives=64, device=device,
                           amp=amp, seed=1, id_dropout=0.0)
    split = mmrec.leave_last_out(events)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    return [e["loss"] for e in model.history_.epochs]


def test_two_tower_training_on_cuda_follows_cpu(demo_items, demo_events):
    # full softmax, no dropout: no random draw (CUDA and CPU generators give other streams for
    # one seed, so sampled negatives would differ), the same arithmetic on both devices
    cpu = _two_tower_losses(demo_items, demo_events, "cpu", amp=False, loss="full")
    assert cpu[1] < cpu[0]
    cuda = _two_tower_losses(demo_items, demo_events, "cuda", amp=False, loss="full")
    np.testing.assert_allclose(cuda, cpu, rtol=1e-3)
    # bfloat16 autocast: the same curve, looser
    bf16 = _two_tower_losses(demo_items, demo_events, "cuda", amp=True, loss="full")
    np.testing.assert_allclose(bf16, cpu, rtol=3e-2)


def test_nccl_process_group_trains_like_one_gpu(demo_items, demo_events):
    import os

    import torch.distributed as dist

    plain = _two_tower_losses(demo_items, demo_events, "cuda", amp=False)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29573")
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    try:  # DDP over nccl: every collective of the data-parallel loop runs on CUDA tensors
        grouped = _two_tower_losses(demo_items, demo_events, "cuda", amp=False)
    finally:
        dist.destroy_process_group()
    np.testing.assert_allclose(grouped, plain, rtol=1e-4)
