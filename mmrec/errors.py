"""mmrec's exceptions.

Every exception raised for bad user input is an :class:`MmrecError` and also subclasses the builtin
that a caller would catch without knowing mmrec (``ValueError``, ``ImportError``, ...). Messages say
what is wrong, where (row, column, item id, file) and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "MmrecError",
    "SchemaError",
    "ConfigError",
    "NotFittedError",
    "MissingDependencyError",
    "MediaError",
    "ArtifactError",
    "UnknownNameError",
]


class MmrecError(Exception):
    """Base class of every error mmrec raises on purpose."""


class SchemaError(MmrecError, ValueError):
    """A table (catalog, interactions) does not match its schema: names the row, column and reason."""


class ConfigError(MmrecError, ValueError):
    """A configuration or preset has an unknown key, a wrong type or an impossible value."""


class UnknownNameError(MmrecError, KeyError):
    """A registry lookup (encoder, preset, index spec) found no such name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NotFittedError(MmrecError, ValueError, AttributeError):
    """An estimator was used before ``fit``."""


class MissingDependencyError(MmrecError, ImportError):
    """An optional dependency is not installed; the message names the pip extra to install."""


class MediaError(MmrecError, OSError):
    """An image or audio file is missing, unreadable or corrupt."""


class ArtifactError(MmrecError, OSError):
    """A saved artifact (vectors, index) is missing, incomplete, tampered with or of another format."""
