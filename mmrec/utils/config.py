"""Config files (YAML/TOML) and frozen config dataclasses built from them, rejecting unknown keys."""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from mmrec.errors import ConfigError, MissingDependencyError

C = TypeVar("C")


def config_from_dict(cls: type[C], values: Mapping[str, Any], *, where: str = "") -> C:
    """Instantiate the dataclass ``cls`` from ``values``; an unknown key is a :class:`ConfigError`."""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [key for key in values if key not in fields]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        place = f" in {where}" if where else ""
        raise ConfigError(
            f"unknown key(s) {', '.join(hints)}{place}; {cls.__name__} accepts: {', '.join(sorted(fields))}."
        )
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        place = f" in {where}" if where else ""
        raise ConfigError(f"invalid {cls.__name__}{place}: {exc}") from exc


_SIMPLE_TYPES: dict[str, type] = {"int": numbers.Integral, "float": numbers.Real, "str": str, "bool": bool}


def check_field_types(config: Any) -> None:
    """A :class:`ConfigError` for a field of a config dataclass whose value does not match its simple
    annotation (``int``, ``float``, ``str``, ``bool``, optionally ``| None``); a float must be finite
    and a bool is not a number. Fields with other annotations are left to the class's own checks."""
    for field in dataclasses.fields(config):
        annotation = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        options = [option.strip() for option in annotation.split("|")]
        value = getattr(config, field.name)
        kinds = [_SIMPLE_TYPES[o] for o in options if o in _SIMPLE_TYPES]
        if len(kinds) != len([o for o in options if o != "None"]) or (value is None and "None" in options):
            continue
        ok = any(isinstance(value, kind) and (kind is bool or not isinstance(value, bool)) for kind in kinds)
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
        if not ok:
            raise ConfigError(f"{type(config).__name__}.{field.name} must be {annotation} (finite), got "
                              f"{value!r} ({type(value).__name__}).")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def _read_toml(text: str) -> Any:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError as exc:
            raise MissingDependencyError("reading TOML on Python 3.10 needs `pip install tomli`; "
                                         "or write the config as YAML.") from exc
    return tomllib.loads(text)


def read_config_file(path: str | os.PathLike[str], *, what: str = "config") -> dict[str, Any]:
    """The top-level mapping of a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist.")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc}); save the {what} as UTF-8.") from None
    kind = "TOML" if path.suffix == ".toml" else "YAML"
    try:
        values = _read_toml(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:  # TOMLDecodeError is a ValueError
        raise ConfigError(f"{path}: not valid {kind}: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level.")
    return values
