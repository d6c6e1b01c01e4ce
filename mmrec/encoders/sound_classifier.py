"""Audio: a small CNN sound classifier over log-mel patches; its embedding and class posteriors
describe a clip.

``SoundClassifier`` is trainable on any labelled clips (``fit(paths, labels)``); variable-length
clips are cut into fixed windows whose embeddings and posteriors are averaged. A trained model is
one ``.safetensors`` file whose metadata carries its config and class names. The encoder
``sound-classifier`` (preset ``audio-sound-classifier``) loads such a file and outputs the
embedding, the posteriors, or both.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mmrec.encoders.audio_mfcc import AudioPreprocess
from mmrec.encoders.base import ENCODERS, FileEncoder
from mmrec.encoders.weights import resolve_weights
from mmrec.errors import ArtifactError, ConfigError, NotFittedError
from mmrec.features.audio import MfccConfig, log_mel_windows
from mmrec.utils.config import config_from_dict
from mmrec.utils.device import resolve_device
from mmrec.utils.io import atomic_path
from mmrec.utils.seed import torch_seeded

logger = logging.getLogger(__name__)

OUTPUTS = ("embedding", "posteriors", "both")


@dataclass(frozen=True)
class SoundClassifierConfig:
    """Features and architecture of a :class:`SoundClassifier` (saved with its weights).

    The mel range stops at ``fmax`` = 4 kHz by default so that band-limited sources (telephone
    speech at 8 kHz) and full-band ones look alike to the model.
    """

    classes: tuple[str, ...] = ()
    sample_rate: int = 16_000
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 4000.0
    top_db: float = 80.0
    window_frames: int = 100
    window_hop: int = 50
    channels: tuple[int, ...] = (16, 32, 64)
    embedding_dim: int = 128
    dropout: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    def mel(self) -> MfccConfig:
        return MfccConfig(sample_rate=self.sample_rate, n_mfcc=1, n_fft=self.n_fft,
                          hop_length=self.hop_length, n_mels=self.n_mels, fmin=self.fmin,
                          fmax=self.fmax, top_db=self.top_db)


class SoundClassifierNet(nn.Module):
    """Conv blocks (conv-BN-ReLU-pool) → global average → embedding (ReLU) → class logits."""

    def __init__(self, config: SoundClassifierConfig) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        previous = 1
        for width in config.channels:
            blocks += [nn.Conv2d(previous, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                       nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(previous, config.embedding_dim), nn.ReLU())
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.embedding_dim, len(config.classes))

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W, 1, n_mels, frames)`` → embeddings ``(W, embedding_dim)`` and logits ``(W, C)``."""
        pooled = self.features(windows).mean(dim=(2, 3), keepdim=True)
        embedding = self.embed(pooled)
        return embedding, self.head(self.dropout(embedding))


def clip_mean(values: torch.Tensor, owner: torch.Tensor, n_clips: int) -> torch.Tensor:
    """Average per-window rows into per-clip rows."""
    sums = torch.zeros(n_clips, values.shape[1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, owner, values)
    counts = torch.bincount(owner, minlength=n_clips).clamp(min=1).to(values.dtype)
    return sums / counts[:, None]


class SoundClassifier:
    """Train, apply, save and load a sound classifier (scikit-learn style: ``fit`` then predict)."""

    def __init__(self, config: SoundClassifierConfig | None = None, *, device: Any = None,
                 seed: int = 0) -> None:
        self.config = config or SoundClassifierConfig()
        self.device = resolve_device(device)
        self.seed = seed

    # ----------------------------------------------------------------------------- data
    def load_clips(self, paths: Sequence[str | os.PathLike[str]], *, max_seconds: float | None = 60.0
                   ) -> list[np.ndarray]:
        """Decode files at the model's sample rate (MediaError names a bad file)."""
        prepare = AudioPreprocess(self.config.sample_rate, max_seconds)
        return [prepare(Path(p)) for p in paths]

    def windows(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        return log_mel_windows(waves, cfg.mel(), window_frames=cfg.window_frames,
                               window_hop=cfg.window_hop, device=self.device)

    # ----------------------------------------------------------------------------- training
    def fit(
        self,
        clips: Sequence[str | os.PathLike[str]] | list[np.ndarray],
        labels: Sequence[str],
        *,
        epochs: int = 15,
        batch_size: int = 64,
        learning_rate: float = 2e-3,
        max_windows_per_clip: int = 8,
    ) -> SoundClassifier:
        """Train on labelled clips (file paths or decoded waveforms at ``config.sample_rate``).

        Every clip contributes at most ``max_windows_per_clip`` windows (chosen with the seed), and
        the loss weighs classes inversely to their window counts, so long music tracks do not drown
        short effects.
        """
        if len(clips) != len(labels) or not len(clips):
            raise ConfigError(f"fit needs one label per clip; got {len(clips)} clips, {len(labels)} labels.")
        classes = tuple(sorted(set(map(str, labels))))
        if len(classes) < 2:
            raise ConfigError(f"fit needs at least two classes, got {classes}.")
        self.config = config_from_dict(SoundClassifierConfig, {**asdict(self.config), "classes": classes})
        waves = clips if isinstance(clips[0], np.ndarray) else self.load_clips(clips)
        rng = np.random.default_rng(self.seed)
        inputs, targets = [], []
        for start in range(0, len(waves), 32):
            windows, owner = self.windows(list(waves[start : start + 32]))
            owner = owner.cpu().numpy()
            for clip in np.unique(owner):
                rows = np.flatnonzero(owner == clip)
                if len(rows) > max_windows_per_clip:
                    rows = np.sort(rng.choice(rows, size=max_windows_per_clip, replace=False))
                inputs.append(windows[rows].cpu())
                targets += [classes.index(str(labels[start + clip]))] * len(rows)
        x = torch.cat(inputs)
        y = torch.tensor(targets, dtype=torch.int64)
        counts = torch.bincount(y, minlength=len(classes)).to(torch.float32)
        class_weights = (counts.sum() / counts.clamp(min=1) / len(classes)).to(self.device)
        with torch_seeded(self.seed):  # initialisation and dropout masks: same seed, same model
            self._train(x, y, class_weights, epochs=epochs, batch_size=batch_size,
                        learning_rate=learning_rate)
        self.net_.eval()
        return self


    def _train(self, x: torch.Tensor, y: torch.Tensor, class_weights: torch.Tensor, *, epochs: int,
               batch_size: int, learning_rate: float) -> None:
        self.net_ = SoundClassifierNet(self.config).to(self.device)
        optimizer = torch.optim.AdamW(self.net_.parameters(), lr=learning_rate, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=learning_rate, total_steps=epochs * -(-len(x) // batch_size))
        generator = torch.Generator().manual_seed(self.seed)
        self.history_ = []
        for epoch in range(epochs):
            self.net_.train()
            order = torch.randperm(len(x), generator=generator)
            total = 0.0
            for s in range(0, len(x), batch_size):
                rows = order[s : s + batch_size]
                _, logits = self.net_(x[rows].to(self.device))
                loss = nn.functional.cross_entropy(logits, y[rows].to(self.device), weight=class_weights)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(rows)
            self.history_.append(total / len(x))
            logger.info("sound classifier epoch %d/%d: loss %.4f", epoch + 1, epochs, self.history_[-1])

    # ----------------------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError("SoundClassifier is not fitted; call fit(...) or SoundClassifier.load(...).")

    @torch.no_grad()
    def transform(self, waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per clip: mean window embedding ``(n, embedding_dim)`` and mean posteriors ``(n, C)``."""
        self._check_fitted()
        if not waves:
            return (np.zeros((0, self.config.embedding_dim), np.float32),
                    np.zeros((0, len(self.config.classes)), np.float32))
        windows, owner = self.windows(list(waves))
        embedding, logits = self.net_(windows)
        n = len(waves)
        per_clip = (clip_mean(embedding, owner, n), clip_mean(logits.softmax(dim=1), owner, n))
        return tuple(np.ascontiguousarray(t.float().cpu().numpy(), dtype=np.float32) for t in per_clip)

    def predict_proba(self, clips: Sequence[str | os.PathLike[str]] | list[np.ndarray]) -> np.ndarray:
        """Class posteriors per clip, columns in ``config.classes`` order."""
        waves = clips if clips and isinstance(clips[0], np.ndarray) else self.load_clips(clips)
        return self.transform(list(waves))[1]

    def predict(self, clips: Sequence[str | os.PathLike[str]] | list[np.ndarray]) -> list[str]:
        """The most likely class name per clip."""
        return [self.config.classes[i] for i in self.predict_proba(clips).argmax(axis=1)]

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """One ``.safetensors`` file: weights + config (JSON metadata); written atomically."""
        from safetensors.torch import save_file

        self._check_fitted()
        path = Path(path)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata={"mmrec_sound_classifier": json.dumps(asdict(self.config))})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: Any = None) -> SoundClassifier:
        """Load a file written by :meth:`save`."""
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"sound classifier weights not found: {path}")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            state = load_file(str(path))
        except SafetensorError as exc:
            raise ArtifactError(f"{path} is not a readable safetensors file ({exc}): truncated or "
                                "corrupt; save or copy it again.") from exc
        if "mmrec_sound_classifier" not in metadata:
            raise ConfigError(f"{path} is not an mmrec sound classifier (no config in its metadata).")
        config = config_from_dict(SoundClassifierConfig, json.loads(metadata["mmrec_sound_classifier"]),
                                  where=str(path))
        model = cls(config, device=device)
        model.net_ = SoundClassifierNet(config)
        model.net_.load_state_dict(state)
        model.net_.eval().to(model.device)
        return model


@dataclass(frozen=True)
class SoundClassifierEncoderConfig:
    """Parameters of :class:`SoundClassifierEncoder` (see the ``audio-sound-classifier`` preset)."""

    weights: str = "pkg:mmrec/weights/sound-classifier-v1.safetensors"
    output: str = "both"
    max_seconds: float | None = 30.0

    def __post_init__(self) -> None:
        if self.output not in OUTPUTS:
            raise ConfigError(f"output must be one of {OUTPUTS}, got {self.output!r}.")


@ENCODERS.register("sound-classifier", "sound-cnn")
class SoundClassifierEncoder(FileEncoder):
    """A trained :class:`SoundClassifier`'s clip embedding and/or class posteriors as audio vectors.

    With ``output="both"`` the vector is ``[embedding, posteriors]``; ``classes`` names the
    posterior columns (the last ``len(classes)`` dimensions), interpretable per item.
    """

    modality = "audio"
    config_class = SoundClassifierEncoderConfig

    def __init__(self, config: SoundClassifierEncoderConfig | None = None, *, device: Any = None) -> None:
        self.config = config or SoundClassifierEncoderConfig()
        self.classifier = SoundClassifier.load(resolve_weights(self.config.weights), device=device)
        self.preprocess = AudioPreprocess(self.classifier.config.sample_rate, self.config.max_seconds)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classifier.config.classes

    @property
    def dim(self) -> int:
        sizes = {"embedding": self.classifier.config.embedding_dim, "posteriors": len(self.classes)}
        return sum(sizes.values()) if self.config.output == "both" else sizes[self.config.output]

    def encode(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        embedding, posteriors = self.classifier.transform(list(batch))
        parts = {"embedding": [embedding], "posteriors": [posteriors], "both": [embedding, posteriors]}
        return np.ascontiguousarray(np.concatenate(parts[self.config.output], axis=1), dtype=np.float32)

    def weight_paths(self) -> list[Path]:
        return [resolve_weights(self.config.weights)]

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"config": asdict(self.config), "classes": list(self.classes),
                                     "classifier": asdict(self.classifier.config)}


__all__ = ["SoundClassifier", "SoundClassifierConfig", "SoundClassifierNet", "SoundClassifierEncoder",
           "clip_mean"]
