"""Images: open_clip image towers (CLIP ViT/ResNet), built from their configs, weights from local files.

CLIP weights cannot be downloaded here: ``weights`` must be a local open_clip checkpoint (a path or
``pkg:<module>/<file>``). Architectures are open_clip's built-in configs (``ViT-B-32``, ...) or a
JSON config file of your own (``config_file``, registered under its file name). The model's own
preprocessing (resize, crop, normalisation of that architecture) travels with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrec.encoders.base import ENCODERS, FileEncoder
from mmrec.encoders.media import load_image
from mmrec.encoders.weights import resolve_weights
from mmrec.errors import ConfigError, MissingDependencyError
from mmrec.utils.config import config_to_dict
from mmrec.utils.device import autocast, resolve_device
from mmrec.utils.seed import torch_seeded


@dataclass(frozen=True)
class ClipImageConfig:
    """Parameters of :class:`ClipImageEncoder` (see the ``image-clip-vit-b32`` preset)."""

    arch: str = "ViT-B-32"
    config_file: str | None = None
    weights: str | None = None
    normalize: bool = True
    autocast: bool = True
    seed: int = 0


@dataclass(frozen=True)
class ClipPreprocess:
    """Decode a file and apply the model's own transform; picklable for DataLoader workers."""

    transform: Any

    def __call__(self, raw: Path | None) -> torch.Tensor | None:
        return None if raw is None else self.transform(load_image(Path(raw)))


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise MissingDependencyError("CLIP image encoders need `pip install 'mmrec[clip]'`.") from exc
    return open_clip


@ENCODERS.register("clip", "open-clip", "open_clip")
class ClipImageEncoder(FileEncoder):
    """The image tower of an open_clip model: ``encode_image`` → (L2-normalised) embeddings."""

    modality = "image"
    config_class = ClipImageConfig

    def __init__(self, config: ClipImageConfig | None = None, *, device: Any = None) -> None:
        self.config = cfg = config or ClipImageConfig()
        self.device = resolve_device(device)
        open_clip = _open_clip()
        if cfg.config_file:
            config_path = resolve_weights(cfg.config_file)
            open_clip.add_model_config(str(config_path))
        if cfg.arch not in open_clip.list_models():
            raise ConfigError(
                f"unknown open_clip architecture {cfg.arch!r}; see open_clip.list_models() or pass "
                "config_file= with a JSON model config."
            )
        checkpoint = str(resolve_weights(cfg.weights)) if cfg.weights else None
        quiet = logging.getLogger()
        level = quiet.level
        quiet.setLevel(max(level, logging.ERROR))  # open_clip warns on the root logger when unweighted
        try:
            with torch_seeded(cfg.seed):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    cfg.arch, pretrained=checkpoint, pretrained_text=False, weights_only=True)
        except RuntimeError as exc:
            raise ConfigError(f"weights {cfg.weights} do not fit {cfg.arch}: {exc}") from None
        finally:
            quiet.setLevel(level)
        self.model = model.eval().to(self.device)
        self.preprocess = ClipPreprocess(preprocess)
        self._dim = int(self.model.visual.output_dim)

    @property
    def dim(self) -> int:
        return self._dim

    @torch.no_grad()
    def encode(self, batch: Sequence[torch.Tensor]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        images = torch.stack(list(batch)).to(self.device)
        with autocast(self.device, self.config.autocast):
            features = self.model.encode_image(images).float()
        if self.config.normalize:
            features = torch.nn.functional.normalize(features, dim=1)
        return np.ascontiguousarray(features.cpu().numpy(), dtype=np.float32)

    @property
    def random_init(self) -> bool:
        return not self.config.weights

    def weight_paths(self) -> list[Path]:
        cfg = self.config
        return [resolve_weights(spec) for spec in (cfg.config_file, cfg.weights) if spec]

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"config": config_to_dict(self.config)}
