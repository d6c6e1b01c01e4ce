"""Build frozen config dataclasses from plain mappings, rejecting unknown keys."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from mmrec.errors import ConfigError

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


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)
