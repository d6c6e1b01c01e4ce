"""Images: a torchvision CNN backbone as a feature extractor (globally pooled features)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrec.encoders.base import ENCODERS, Encoder
from mmrec.encoders.media import load_image
from mmrec.errors import ConfigError
from mmrec.utils.config import config_to_dict
from mmrec.utils.device import resolve_device
from mmrec.utils.seed import torch_seeded

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Attribute names under which torchvision models keep their classification head.
HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")


@dataclass(frozen=True)
class TorchvisionCnnConfig:
    """Parameters of :class:`TorchvisionCnnEncoder` (see the ``image-resnet18`` preset)."""

    arch: str = "resnet18"
    weights: str | None = None
    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))
        if self.crop > self.resize:
            raise ConfigError(f"crop ({self.crop}) cannot exceed resize ({self.resize}).")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights from ``.safetensors`` or a torch file loaded with ``weights_only=True`` (never pickle)."""
    if not path.is_file():
        raise ConfigError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise ConfigError(f"cannot load weights from {path} (weights_only=True): {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"{path} does not hold a state dict (got {type(state).__name__}).")
    return state


def _strip_head(model: torch.nn.Module) -> torch.nn.Module:
    for name in HEAD_ATTRIBUTES:
        if isinstance(getattr(model, name, None), torch.nn.Module):
            setattr(model, name, torch.nn.Identity())
            return model
    raise ConfigError(
        f"{type(model).__name__}: no classification head found under {HEAD_ATTRIBUTES}; "
        "this architecture cannot be used as a pooled feature extractor."
    )


@ENCODERS.register("torchvision-cnn", "cnn", "torchvision")
class TorchvisionCnnEncoder(Encoder):
    """Any torchvision classification backbone with its head removed → pooled features.

    Weights come from a local file (``weights=``: ``.safetensors``, or a ``.pt``/``.pth`` state dict
    loaded with ``weights_only=True``); the head's keys are ignored. Without weights the network is
    initialised randomly from ``seed`` (deterministic, but its features only reflect low-level colour
    and texture statistics). Images go through the model's own transform: resize the short side to
    ``resize``, centre-crop ``crop``, normalise by ``mean``/``std``.
    """

    modality = "image"
    config_class = TorchvisionCnnConfig

    def __init__(self, config: TorchvisionCnnConfig | None = None, *, device: Any = None) -> None:
        import torchvision

        self.config = cfg = config or TorchvisionCnnConfig()
        self.device = resolve_device(device)
        if cfg.arch not in torchvision.models.list_models(module=torchvision.models):
            raise ConfigError(
                f"unknown torchvision architecture {cfg.arch!r}; see torchvision.models.list_models()."
            )
        with torch_seeded(cfg.seed):
            model = torchvision.models.get_model(cfg.arch, weights=None)
        if cfg.weights:
            state = load_state_dict(Path(cfg.weights).expanduser())
            head_prefixes = tuple(f"{h}." for h in HEAD_ATTRIBUTES)
            missing, unexpected = model.load_state_dict(state, strict=False)
            body_missing = [k for k in missing if not k.startswith(head_prefixes)]
            if body_missing or unexpected:
                raise ConfigError(
                    f"weights {cfg.weights} do not fit {cfg.arch}: missing {body_missing[:5]}, "
                    f"unexpected {unexpected[:5]}."
                )
        self.model = _strip_head(model).eval().to(self.device)
        with torch.no_grad():
            probe = torch.zeros(1, 3, cfg.crop, cfg.crop, device=self.device)
            self._dim = int(self.model(probe).flatten(1).shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def transform(self, image: Any) -> torch.Tensor:
        """PIL RGB image → normalised ``(3, crop, crop)`` float32 tensor."""
        from torchvision.transforms.v2 import functional as F

        cfg = self.config
        tensor = F.pil_to_tensor(image)
        tensor = F.resize(tensor, [cfg.resize], antialias=True)
        tensor = F.center_crop(tensor, [cfg.crop, cfg.crop])
        tensor = F.to_dtype(tensor, torch.float32, scale=True)
        return F.normalize(tensor, mean=list(cfg.mean), std=list(cfg.std))

    def prepare(self, raw: Path | None) -> torch.Tensor | None:
        if raw is None:
            return None
        return self.transform(load_image(Path(raw)))

    @torch.no_grad()
    def encode(self, batch: Sequence[torch.Tensor]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        features = self.model(torch.stack(list(batch)).to(self.device)).flatten(1)
        return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"config": config_to_dict(self.config)}
