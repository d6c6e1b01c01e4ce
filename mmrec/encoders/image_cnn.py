"""Images: CNN backbones (torchvision, EfficientNet-Lite) as feature extractors (pooled features)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrec.encoders.base import ENCODERS, FileEncoder
from mmrec.encoders.media import load_image
from mmrec.encoders.weights import load_state_dict, resolve_weights
from mmrec.errors import ConfigError, MissingDependencyError
from mmrec.registry import Registry
from mmrec.utils.config import config_to_dict
from mmrec.utils.device import autocast, resolve_device
from mmrec.utils.seed import torch_seeded

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class CnnConfig:
    """Parameters of :class:`CnnEncoder` (see the ``image-*`` presets for meanings)."""

    family: str = "torchvision"
    arch: str = "resnet18"
    weights: str | None = None
    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    autocast: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(self.mean))
        object.__setattr__(self, "std", tuple(self.std))
        if self.crop > self.resize:
            raise ConfigError(f"crop ({self.crop}) cannot exceed resize ({self.resize}).")


@dataclass(frozen=True)
class Backbone:
    """A classification network, how to turn it into a pooled feature extractor, and its head keys."""

    model: torch.nn.Module
    features: Callable[[torch.nn.Module], torch.nn.Module]
    head_prefixes: tuple[str, ...]


BACKBONES: Registry[Callable[[str], Backbone]] = Registry("CNN family")
# Attribute names under which torchvision models keep their classification head.
TORCHVISION_HEADS = ("fc", "classifier", "heads", "head")


@BACKBONES.register("torchvision")
def _torchvision_backbone(arch: str) -> Backbone:
    import torchvision

    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(
            f"unknown torchvision architecture {arch!r}; see torchvision.models.list_models()."
        )
    model = torchvision.models.get_model(arch, weights=None)

    def strip_head(network: torch.nn.Module) -> torch.nn.Module:
        for name in TORCHVISION_HEADS:
            if isinstance(getattr(network, name, None), torch.nn.Module):
                setattr(network, name, torch.nn.Identity())
                return network
        raise ConfigError(f"{arch}: no classification head under {TORCHVISION_HEADS}.")

    return Backbone(model, strip_head, tuple(f"{h}." for h in TORCHVISION_HEADS))


class _PooledEfficientNet(torch.nn.Module):
    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.extract_features(images).mean(dim=(2, 3))


@BACKBONES.register("efficientnet-lite", "efficientnet_lite")
def _efficientnet_lite_backbone(arch: str) -> Backbone:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise MissingDependencyError(
            "the efficientnet-lite family needs `pip install efficientnet-lite-pytorch` "
            "(or `pip install 'mmrec[pretrained]'`)."
        ) from exc
    try:
        model = EfficientNet.from_name(arch)
    except (ValueError, KeyError, AssertionError) as exc:
        raise ConfigError(f"unknown EfficientNet-Lite architecture {arch!r}: {exc}") from None
    return Backbone(model, _PooledEfficientNet, ("_fc.",))


@dataclass(frozen=True)
class ImagePreprocess:
    """Decode a file and apply the model's transform; picklable, so it can run in DataLoader workers."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def resize_crop(self, image: Any) -> torch.Tensor:
        """PIL RGB image → resized, centre-cropped ``(3, crop, crop)`` uint8 tensor."""
        from torchvision.transforms.v2 import functional as F

        tensor = F.pil_to_tensor(image)
        tensor = F.resize(tensor, [self.resize], antialias=True)
        return F.center_crop(tensor, [self.crop, self.crop]).contiguous()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images ``(..., 3, H, W)`` → float32 scaled to [0, 1] and normalised by mean/std."""
        mean = torch.tensor(self.mean, device=images.device).view(3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(3, 1, 1)
        return (images.to(torch.float32) / 255.0 - mean) / std

    def transform(self, image: Any) -> torch.Tensor:
        """PIL RGB image → normalised ``(3, crop, crop)`` float32 tensor."""
        return self.normalize(self.resize_crop(image))

    def __call__(self, raw: Path | None) -> torch.Tensor | None:
        """Decode + resize + crop to uint8: 4x less to ship from a worker than float32; the
        normalisation runs batched where the model is (see :meth:`CnnEncoder.encode`)."""
        return None if raw is None else self.resize_crop(load_image(Path(raw)))


@ENCODERS.register("cnn", "torchvision-cnn", "torchvision")
class CnnEncoder(FileEncoder):
    """A CNN classification backbone with its head removed → globally pooled features.

    ``family`` picks the model zoo (``torchvision``: any ``torchvision.models`` classifier;
    ``efficientnet-lite``: EfficientNet-Lite0..4). Weights come from a local file or an installed
    package (``weights=``, see :mod:`mmrec.encoders.weights`); the head's keys are ignored. Without
    weights the network is initialised randomly from ``seed`` (deterministic, but its features only
    reflect low-level colour and texture). Images go through the model's own transform: resize the
    short side to ``resize``, centre-crop ``crop``, normalise by ``mean``/``std``.
    """

    modality = "image"
    config_class = CnnConfig

    def __init__(self, config: CnnConfig | None = None, *, device: Any = None) -> None:
        self.config = cfg = config or CnnConfig()
        self.device = resolve_device(device)
        with torch_seeded(cfg.seed):
            backbone = BACKBONES.get(cfg.family)(cfg.arch)
        model = backbone.model
        if cfg.weights:
            state = load_state_dict(resolve_weights(cfg.weights))
            missing, unexpected = model.load_state_dict(state, strict=False)
            body_missing = [k for k in missing if not k.startswith(backbone.head_prefixes)]
            if body_missing or unexpected:
                raise ConfigError(
                    f"weights {cfg.weights} do not fit {cfg.arch}: missing {body_missing[:5]}, "
                    f"unexpected {unexpected[:5]}."
                )
        self.model = backbone.features(model).eval().to(self.device)
        self.preprocess = ImagePreprocess(cfg.resize, cfg.crop, cfg.mean, cfg.std)
        with torch.no_grad():
            probe = torch.zeros(1, 3, cfg.crop, cfg.crop, device=self.device)
            self._dim = int(self.model(probe).flatten(1).shape[1])

    @property
    def dim(self) -> int:
        return self._dim

    def transform(self, image: Any) -> torch.Tensor:
        """PIL RGB image → normalised ``(3, crop, crop)`` float32 tensor."""
        return self.preprocess.transform(image)

    @torch.no_grad()
    def encode(self, batch: Sequence[torch.Tensor]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        images = torch.stack(list(batch)).to(self.device)
        if images.dtype == torch.uint8:  # from the preparer; `transform` output is already float
            images = self.preprocess.normalize(images)
        with autocast(self.device, self.config.autocast):
            features = self.model(images).flatten(1)
        return np.ascontiguousarray(features.float().cpu().numpy(), dtype=np.float32)

    @property
    def random_init(self) -> bool:
        return not self.config.weights

    def weight_paths(self) -> list[Path]:
        return [resolve_weights(self.config.weights)] if self.config.weights else []

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"config": config_to_dict(self.config)}
