"""The torch MFCC pipeline against librosa, the numerical reference.

Tolerance: MFCCs within 1e-3 dB-scaled units absolute (values reach ~±400; float32 STFT), deltas
and statistics within 1e-3 absolute. Measured on these clips: ~6e-5 and ~5e-6.
"""

import numpy as np
import pytest
import torch

from mmrec.features.audio import (
    MfccConfig,
    frame_counts,
    masked_mean_std,
    mel_filterbank,
    mfcc,
    mfcc_stats,
    savgol_delta,
)

librosa = pytest.importorskip("librosa")
SR = 22050
ATOL = 1e-3


def clips():
    rng = np.random.default_rng(0)
    t = np.arange(int(SR * 1.3)) / SR
    tone = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(t.size)
    chirp = 0.3 * np.sin(2 * np.pi * (200 + 900 * t[: int(SR * 0.7)]) * t[: int(SR * 0.7)])
    noise = 0.05 * rng.standard_normal(int(SR * 0.45))
    return [c.astype(np.float32) for c in (tone, chirp, noise)]


def padded(waves):
    lengths = torch.tensor([len(w) for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        batch[i, : len(w)] = torch.from_numpy(w)
    return batch, lengths


@pytest.mark.parametrize("n_mels,fmax", [(128, None), (40, 8000.0)])
def test_mel_filterbank_matches_librosa(n_mels, fmax):
    ours = mel_filterbank(SR, 2048, n_mels, 0.0, fmax).numpy()
    ref = librosa.filters.mel(sr=SR, n_fft=2048, n_mels=n_mels, fmax=fmax)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_batched_mfcc_matches_librosa_per_clip():
    waves = clips()
    batch, lengths = padded(waves)
    ours, mask = mfcc(batch, lengths, MfccConfig())
    for i, wave in enumerate(waves):
        ref = librosa.feature.mfcc(y=wave, sr=SR)
        assert int(mask[i].sum()) == ref.shape[1]
        np.testing.assert_allclose(ours[i, :, : ref.shape[1]].numpy(), ref, atol=ATOL)


@pytest.mark.parametrize("order", [1, 2])
def test_deltas_match_librosa_including_edges(order):
    ref_mfcc = librosa.feature.mfcc(y=clips()[0], sr=SR)
    ours = savgol_delta(torch.from_numpy(ref_mfcc)[None], torch.tensor([ref_mfcc.shape[1]]), order=order)
    np.testing.assert_allclose(ours[0].numpy(), librosa.feature.delta(ref_mfcc, order=order), atol=ATOL)


def test_deltas_of_shorter_clips_ignore_batch_padding():
    ref_mfcc = librosa.feature.mfcc(y=clips()[1], sr=SR)
    t = ref_mfcc.shape[1]
    padded_feats = torch.zeros(2, ref_mfcc.shape[0], t + 17)
    padded_feats[0, :, :t] = torch.from_numpy(ref_mfcc)
    padded_feats[1] = torch.randn(ref_mfcc.shape[0], t + 17)
    ours = savgol_delta(padded_feats, torch.tensor([t, t + 17]))
    np.testing.assert_allclose(ours[0, :, :t].numpy(), librosa.feature.delta(ref_mfcc), atol=ATOL)


def test_stats_layout_matches_librosa_pipeline():
    waves = clips()
    stats = mfcc_stats(waves).numpy()
    assert stats.shape == (3, MfccConfig().stats_dim) == (3, 120)
    for i, wave in enumerate(waves):
        m = librosa.feature.mfcc(y=wave, sr=SR)
        full = np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)])
        np.testing.assert_allclose(stats[i], np.concatenate([full.mean(1), full.std(1)]), atol=ATOL)


def test_batch_composition_does_not_change_a_clip():
    waves = clips()
    alone = mfcc_stats([waves[2]]).numpy()
    together = mfcc_stats(waves).numpy()[2]
    np.testing.assert_allclose(alone[0], together, atol=1e-4)


def test_very_short_clip_gives_finite_features():
    stats = mfcc_stats([np.zeros(300, np.float32), np.ones(1000, np.float32) * 0.1])
    assert torch.isfinite(stats).all()
    assert frame_counts(torch.tensor([300]), 512).item() == 1


def test_masked_mean_std_hand_computed():
    x = torch.tensor([[[1.0, 3.0, 100.0]]])
    mean, std = masked_mean_std(x, torch.tensor([[True, True, False]]))
    assert mean.item() == 2.0 and std.item() == 1.0
