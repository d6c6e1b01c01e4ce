"""Audio: statistics of MFCCs (and their deltas) computed in batched torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.encoders.base import ENCODERS, FileEncoder
from mmrec.encoders.media import load_audio
from mmrec.features.audio import MfccConfig, mfcc_stats
from mmrec.utils.config import config_to_dict
from mmrec.utils.device import resolve_device

STFT_CHUNK = 16  # clips per STFT call


@dataclass(frozen=True)
class MfccStatsConfig(MfccConfig):
    """:class:`~mmrec.features.audio.MfccConfig` plus how much of each file is read."""

    max_seconds: float | None = 30.0

    def mfcc(self) -> MfccConfig:
        return MfccConfig(**{f.name: getattr(self, f.name) for f in fields(MfccConfig)})


@dataclass(frozen=True)
class AudioPreprocess:
    """Decode a file to mono float32 at ``sample_rate`` (first ``max_seconds``); picklable."""

    sample_rate: int
    max_seconds: float | None

    def __call__(self, raw: Path | None) -> np.ndarray | None:
        if raw is None:
            return None
        return load_audio(Path(raw), sample_rate=self.sample_rate, max_seconds=self.max_seconds)


@ENCODERS.register("mfcc-stats", "mfcc")
class MfccStatsEncoder(FileEncoder):
    """Mean and std over time of MFCCs, deltas and delta-deltas (librosa-compatible, batched torch).

    Files are decoded to mono at ``sample_rate`` (resampled when needed); only the first
    ``max_seconds`` are read.
    """

    modality = "audio"
    config_class = MfccStatsConfig

    def __init__(self, config: MfccStatsConfig | None = None, *, device: Any = None) -> None:
        self.config = config or MfccStatsConfig()
        self.device = resolve_device(device)
        self._mfcc = self.config.mfcc()
        self.preprocess = AudioPreprocess(self.config.sample_rate, self.config.max_seconds)

    @property
    def dim(self) -> int:
        return self._mfcc.stats_dim


    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        clips = list(batch)
        # Sub-batches bound the STFT's memory (complex bins × frames × clips) and, on CPU, are
        # faster than one large batch (measured: 16 clips of 5 s beat 64 by 1.7x on 2 cores).
        stats = [mfcc_stats(clips[i : i + STFT_CHUNK], self._mfcc, device=self.device).cpu().numpy()
                 for i in range(0, len(clips), STFT_CHUNK)]
        return np.ascontiguousarray(np.concatenate(stats), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"config": config_to_dict(self.config)}
