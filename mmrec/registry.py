"""A small generic name → object registry (encoders, index specs, ...)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from mmrec.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names (and aliases) to objects, with close-name suggestions on a miss.

    Examples
    --------
    >>> things = Registry[type]("thing")
    >>> @things.register("box", "crate")
    ... class Box: ...
    >>> things.get("crate") is Box
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        """Decorator registering an object under ``name`` and ``aliases``."""

        def decorator(obj: T) -> T:
            self.add(name, obj, *aliases)
            return obj

        return decorator

    def add(self, name: str, obj: T, *aliases: str) -> None:
        """Register ``obj`` under ``name``; re-registering a name replaces it."""
        key = name.lower()
        self._entries[key] = obj
        for alias in aliases:
            self._aliases[alias.lower()] = key

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` (case-insensitive)."""
        key = name.lower()
        key = self._aliases.get(key, key)
        if key in self._entries:
            return self._entries[key]
        known = sorted(set(self._entries) | set(self._aliases))
        close = difflib.get_close_matches(key, known, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(sorted(self._entries))}."
        )

    def names(self) -> list[str]:
        """Sorted canonical names."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return self._aliases.get(key, key) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
