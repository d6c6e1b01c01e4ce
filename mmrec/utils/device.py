"""One resolver for device and dtype."""

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


def resolve_dtype(dtype: str | torch.dtype | None = None) -> torch.dtype:
    """Return ``dtype`` as a torch dtype; ``None`` means float32."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ConfigError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'float16' or 'bfloat16'.")
    return resolved


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """Mixed-precision context for inference: active on CUDA when ``enabled``, a no-op on CPU."""
    return torch.autocast(device.type, enabled=enabled and device.type == "cuda")
