"""One resolver for the device, and the inference autocast."""

from __future__ import annotations

import torch

from mmrec.errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` as a :class:`torch.device`; ``None`` or ``"auto"`` picks CUDA when present."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} was asked for but CUDA is not available; use 'cpu'.")
    return resolved


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """Mixed-precision context for inference: active on CUDA when ``enabled``, a no-op on CPU."""
    return torch.autocast(device.type, enabled=enabled and device.type == "cuda")
