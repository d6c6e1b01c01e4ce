"""Batched MFCC and log-mel features in torch, numerically matching librosa's defaults.

Clips of different lengths are zero-padded into one batch; ``lengths`` says how many samples of each
are real. librosa pads each clip with ``n_fft // 2`` zeros on both sides (``center=True``,
``pad_mode="constant"``), so the first ``1 + length // hop_length`` frames of a padded clip equal
librosa's frames of the clip alone; only those frames enter the statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "MfccConfig",
    "mel_filterbank",
    "power_spectrogram",
    "log_mel",
    "mfcc",
    "savgol_delta",
    "masked_mean_std",
    "mfcc_stats",
    "log_mel_windows",
]


@dataclass(frozen=True)
class MfccConfig:
    """MFCC parameters; the defaults are ``librosa.feature.mfcc``'s."""

    sample_rate: int = 22050
    n_mfcc: int = 20
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    top_db: float | None = 80.0
    delta_order: int = 2  # 0: MFCC only; 1: + delta; 2: + delta and delta-delta
    delta_width: int = 9

    def __post_init__(self) -> None:
        if self.delta_order not in (0, 1, 2):
            raise ValueError(f"delta_order must be 0, 1 or 2, got {self.delta_order}")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ValueError(f"delta_width must be odd and >= 3, got {self.delta_width}")
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc ({self.n_mfcc}) cannot exceed n_mels ({self.n_mels})")

    @property
    def stats_dim(self) -> int:
        """Length of :func:`mfcc_stats` output: mean and std of each coefficient (and its deltas)."""
        return 2 * self.n_mfcc * (1 + self.delta_order)


def _hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as librosa with ``htk=False``."""
    freqs = np.asarray(freqs, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mels = freqs / f_sp
    above = freqs >= min_log_hz
    mels[above] = min_log_mel + np.log(freqs[above] / min_log_hz) / logstep
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * mels
    above = mels >= min_log_mel
    freqs[above] = min_log_hz * np.exp(logstep * (mels[above] - min_log_mel))
    return freqs


@lru_cache(maxsize=16)
def _mel_filterbank_np(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0],
                                        _hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    spacing = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / spacing[:-1, None]
    upper = ramps[2:] / spacing[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]  # Slaney area normalisation
    return weights


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None,
    *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Slaney-normalised triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    weights = _mel_filterbank_np(int(sample_rate), int(n_fft), int(n_mels), float(fmin), fmax)
    return torch.as_tensor(weights, dtype=dtype, device=device)


def frame_counts(lengths: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Number of centred STFT frames of clips of ``lengths`` samples."""
    return 1 + torch.div(lengths, hop_length, rounding_mode="floor")


def power_spectrogram(waves: torch.Tensor, *, n_fft: int, hop_length: int) -> torch.Tensor:
    """``|STFT|**2`` of a batch ``(B, L)`` → ``(B, n_fft // 2 + 1, T)`` (periodic Hann, centred)."""
    window = torch.hann_window(n_fft, periodic=True, device=waves.device, dtype=waves.dtype)
    if waves.shape[-1] <= n_fft // 2:  # reflect-free centring needs nothing special, but stft needs >0
        waves = torch.nn.functional.pad(waves, (0, n_fft // 2 + 1 - waves.shape[-1]))
    spec = torch.stft(waves, n_fft=n_fft, hop_length=hop_length, window=window, center=True,
                      pad_mode="constant", return_complex=True)
    return spec.real.square().add_(spec.imag.square())  # in place: ~3x faster than a + b


def frame_mask(lengths: torch.Tensor, n_frames: int, hop_length: int) -> torch.Tensor:
    """``(B, T)`` bool: which frames belong to each clip (not to batch padding)."""
    counts = frame_counts(lengths, hop_length)
    return torch.arange(n_frames, device=lengths.device)[None, :] < counts[:, None]


def log_mel(
    waves: torch.Tensor, lengths: torch.Tensor, config: MfccConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel power in dB, ``(B, n_mels, T)``, and the ``(B, T)`` frame mask.

    As ``librosa.power_to_db(ref=1.0, amin=1e-10, top_db=80)``, the floor ``max - top_db`` taken
    per clip over its own frames.
    """
    power = power_spectrogram(waves, n_fft=config.n_fft, hop_length=config.hop_length)
    fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax,
                        device=waves.device, dtype=waves.dtype)
    mel = torch.einsum("mf,bft->bmt", fb, power)
    db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
    mask = frame_mask(lengths, db.shape[-1], config.hop_length)
    if config.top_db is not None:
        peak = db.masked_fill(~mask[:, None, :], float("-inf")).amax(dim=(1, 2), keepdim=True)
        db = torch.maximum(db, peak - config.top_db)
    return db, mask


@lru_cache(maxsize=8)
def _dct_matrix_np(n_mfcc: int, n_mels: int) -> np.ndarray:
    """Orthonormal DCT-II basis ``(n_mfcc, n_mels)`` (``scipy.fft.dct(norm='ortho')``)."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return basis


def mfcc(
    waves: torch.Tensor, lengths: torch.Tensor, config: MfccConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """MFCCs ``(B, n_mfcc, T)`` and the frame mask, as ``librosa.feature.mfcc`` per clip."""
    db, mask = log_mel(waves, lengths, config)
    dct = torch.as_tensor(_dct_matrix_np(config.n_mfcc, config.n_mels), dtype=db.dtype,
                          device=db.device)
    return torch.einsum("km,bmt->bkt", dct, db), mask


@lru_cache(maxsize=8)
def _savgol_kernel(width: int, order: int) -> np.ndarray:
    from scipy.signal import savgol_coeffs

    return savgol_coeffs(width, polyorder=order, deriv=order, use="conv")


def savgol_delta(
    features: torch.Tensor, counts: torch.Tensor, *, order: int = 1, width: int = 9
) -> torch.Tensor:
    """``order``-th derivative along time, as ``librosa.feature.delta(width, order, mode='interp')``.

    With ``polyorder == deriv`` the fitted polynomial's derivative is constant over a window, so
    librosa's edge interpolation equals the first/last full window's value: frames closer than
    ``width // 2`` to a clip's ends copy it. Clips shorter than ``width`` use the longest odd window
    that fits (zeros when none does), where librosa would raise.
    """
    batch, n_coef, n_frames = features.shape
    out = torch.zeros_like(features)
    for clip_width in sorted({_fit_width(int(c), width, order) for c in counts.tolist()}):
        rows = torch.tensor([_fit_width(int(c), width, order) == clip_width for c in counts.tolist()],
                            device=features.device)
        if clip_width == 0:
            continue
        half = clip_width // 2
        kernel = torch.as_tensor(_savgol_kernel(clip_width, order), dtype=features.dtype,
                                 device=features.device)
        x = features[rows]
        # conv1d is a correlation; the savgol "conv" kernel is flipped for it.
        conv = torch.nn.functional.conv1d(
            x.reshape(-1, 1, n_frames), kernel.flip(0).view(1, 1, -1)
        ).reshape(x.shape[0], n_coef, -1)
        last_valid = (counts[rows] - 1 - half).clamp(min=half)
        t = torch.arange(n_frames, device=features.device)[None, :]
        source = torch.minimum(t.clamp(min=half), last_valid[:, None]) - half
        out[rows] = torch.gather(conv, 2, source[:, None, :].expand(-1, n_coef, -1))
    return out


def _fit_width(count: int, width: int, order: int) -> int:
    clip_width = min(width, count if count % 2 else count - 1)
    return clip_width if clip_width > order else 0


def masked_mean_std(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std over time of ``(B, C, T)`` features, counting only masked-in frames."""
    weights = mask[:, None, :].to(features.dtype)
    count = weights.sum(dim=-1).clamp(min=1.0)
    mean = (features * weights).sum(dim=-1) / count
    var = ((features - mean[..., None]).square() * weights).sum(dim=-1) / count
    return mean, var.sqrt()


def mfcc_stats(
    waves: list[np.ndarray] | torch.Tensor,
    config: MfccConfig = MfccConfig(),
    *,
    lengths: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Per clip: mean and std over time of the MFCCs and their deltas, ``(B, config.stats_dim)``.

    ``waves`` is a list of 1-D float arrays (any lengths) or a zero-padded ``(B, L)`` tensor with
    ``lengths``. Layout: ``[mean(mfcc), mean(d1), mean(d2), std(mfcc), std(d1), std(d2)]``.
    """
    if not isinstance(waves, torch.Tensor):
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.int64)
        padded = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
        for i, wave in enumerate(waves):
            padded[i, : len(wave)] = torch.as_tensor(np.asarray(wave, dtype=np.float32))
        waves = padded
    elif lengths is None:
        lengths = torch.full((waves.shape[0],), waves.shape[-1], dtype=torch.int64)
    waves = waves.to(device=device, dtype=torch.float32)
    lengths = lengths.to(device)
    coefs, mask = mfcc(waves, lengths, config)
    counts = frame_counts(lengths, config.hop_length)
    blocks = [coefs] + [
        savgol_delta(coefs, counts, order=order, width=config.delta_width)
        for order in range(1, config.delta_order + 1)
    ]
    stacked = torch.cat(blocks, dim=1)
    mean, std = masked_mean_std(stacked, mask)
    return torch.cat([mean, std], dim=1)


def log_mel_windows(
    waves: list[np.ndarray],
    config: MfccConfig,
    *,
    window_frames: int,
    window_hop: int,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-size log-mel patches of every clip, for a classifier over variable-length audio.

    Each clip's log-mel (dB) is taken relative to its own peak and scaled to about [-1, 1]
    (``(db - peak) / top_db * 2 + 1``), so loudness does not matter; it is cut into windows of
    ``window_frames`` frames every ``window_hop`` frames (a clip shorter than one window is padded
    with its floor). Returns ``windows`` of shape ``(W, 1, n_mels, window_frames)`` and ``owner``
    ``(W,)`` int64, the clip index of each window.
    """
    top_db = config.top_db or 80.0
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.int64)
    padded = torch.zeros(len(waves), int(lengths.max()), dtype=torch.float32)
    for i, wave in enumerate(waves):
        padded[i, : len(wave)] = torch.as_tensor(np.asarray(wave, dtype=np.float32))
    db, mask = log_mel(padded.to(device), lengths.to(device), config)
    counts = mask.sum(dim=1).tolist()
    patches, owners = [], []
    for i, count in enumerate(counts):
        clip = db[i, :, :count]
        peak = clip.max()
        clip = ((clip - peak) / top_db * 2.0 + 1.0).clamp(min=-1.0)
        if count < window_frames:
            clip = torch.nn.functional.pad(clip, (0, window_frames - count), value=-1.0)
        windows = clip.unfold(1, window_frames, window_hop)  # (n_mels, W, window_frames)
        if (clip.shape[1] - window_frames) % window_hop:  # keep the tail of the clip too
            windows = torch.cat([windows, clip[:, -window_frames:].unsqueeze(1)], dim=1)
        patches.append(windows.permute(1, 0, 2))
        owners.append(torch.full((windows.shape[1],), i, dtype=torch.int64))
    return torch.cat(patches).unsqueeze(1), torch.cat(owners).to(device)
