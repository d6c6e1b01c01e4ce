"""A fitted model's state as an artifact folder: safetensors arrays, JSON ids, a checked manifest.

The state is a flat mapping of names to values of a few kinds, each stored without pickle:

- ``ndarray`` (numeric) → a tensor in ``state.safetensors``
- ``pd.Index`` of ids → a list in ``ids.json``
- ``pd.Series`` (numbers indexed by ids) → its values as a tensor, its index in ``ids.json``
- ``scipy.sparse`` CSR matrix → ``data`` / ``indices`` / ``indptr`` tensors and its shape
- ``int``, ``float``, ``str``, ``bool``, ``None``, lists of them and JSON dicts → the manifest

The manifest records every array's dtype and shape; :func:`load_state` checks them against the
safetensors header before any array is read, and the file checksums before that
(:func:`mmrec.utils.io.read_manifest`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.errors import ArtifactError, ConfigError
from mmrec.utils.io import atomic_directory, read_manifest, write_manifest

__all__ = ["save_state", "load_state", "tensor_shapes"]

TENSORS = "state.safetensors"
IDS = "ids.json"
FILES = [TENSORS, IDS]
SCALARS = (int, float, str, bool, type(None))


def _encode(name: str, value: Any, tensors: dict[str, np.ndarray], ids: dict[str, list[str]],
            plain: dict[str, Any]) -> dict[str, Any]:
    """Store one state entry; returns its manifest description."""
    from scipy.sparse import csr_matrix, issparse

    if isinstance(value, pd.Series):
        tensors[name] = np.ascontiguousarray(value.to_numpy(dtype=np.float64))
        ids[name] = [str(i) for i in value.index]
        return {"kind": "series"}
    if isinstance(value, pd.Index):
        ids[name] = [str(i) for i in value]
        return {"kind": "index"}
    if issparse(value):
        matrix = csr_matrix(value)
        for part in ("data", "indices", "indptr"):
            tensors[f"{name}.{part}"] = np.ascontiguousarray(getattr(matrix, part))
        return {"kind": "csr", "shape": list(matrix.shape)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ConfigError(f"state entry {name!r}: only numeric arrays can be saved, got {value.dtype}.")
        tensors[name] = value if value.flags.c_contiguous else np.ascontiguousarray(value)  # keeps 0-d
        return {"kind": "array"}
    if isinstance(value, SCALARS) or (isinstance(value, list | tuple)
                                      and all(isinstance(v, SCALARS) for v in value)):
        plain[name] = list(value) if isinstance(value, list | tuple) else value
        return {"kind": "plain"}
    if isinstance(value, dict):  # a record (a fitted part's settings): JSON through and through
        try:
            plain[name] = json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            message = f"state entry {name!r}: dicts are saved as JSON, this one is not ({exc})."
            raise ConfigError(message) from None
        return {"kind": "plain"}
    raise ConfigError(f"state entry {name!r} of type {type(value).__name__} cannot be saved.")


def save_state(path: str | os.PathLike[str], kind: str, *, params: Mapping[str, Any],
               state: Mapping[str, Any], version: int = 1) -> Path:
    """Write ``params`` (constructor arguments, JSON) and the fitted ``state`` into a folder,
    atomically; ``kind`` names the artifact (checked by :func:`load_state`)."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {}
    ids: dict[str, list[str]] = {}
    plain: dict[str, Any] = {}
    entries = {name: _encode(name, value, tensors, ids, plain) for name, value in state.items()}
    shapes = {name: {"dtype": str(array.dtype), "shape": list(array.shape)}
              for name, array in tensors.items()}
    path = Path(path)
    with atomic_directory(path) as tmp:
        save_file(tensors, str(tmp / TENSORS))
        (tmp / IDS).write_text(json.dumps(ids), "utf-8")
        write_manifest(tmp, kind, {"params": dict(params), "state": entries, "plain": plain,
                                   "tensors": shapes}, files=FILES, version=version)
    return path


def tensor_shapes(file: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """Name → shape of every tensor in a safetensors file, from its header alone (no data read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="numpy") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ArtifactError(f"{Path(file).parent.name}/{Path(file).name} is not a readable safetensors "
                            f"file ({type(exc).__name__}); re-save the model.") from None


def _check_header(path: Path, shapes: Mapping[str, Any]) -> None:
    """The safetensors header must hold exactly the recorded tensors, dtypes and shapes (read before
    any data, so an edited manifest or file cannot make us allocate what it claims)."""
    found = tensor_shapes(path / TENSORS)
    if set(found) != set(shapes):
        raise ArtifactError(f"{path.name}/{TENSORS}: holds {sorted(found)}, the manifest lists "
                            f"{sorted(shapes)}; re-save the model.")
    for name, shape in found.items():
        if list(shape) != list(shapes[name]["shape"]):
            raise ArtifactError(f"{path.name}/{TENSORS}: {name!r} has shape {list(shape)}, the manifest says "
                                f"{shapes[name]['shape']}; re-save the model.")


def load_state(path: str | os.PathLike[str], kind: str, *, version: int = 1
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, state)`` of a folder written by :func:`save_state` with the same ``kind``.

    Raises :class:`ArtifactError` naming the file when anything is missing, modified or
    inconsistent."""
    from safetensors.numpy import load_file
    from scipy.sparse import csr_matrix

    path = Path(path)
    manifest = read_manifest(path, kind, version=version, require=FILES)
    try:
        entries, plain, shapes = manifest["state"], manifest["plain"], manifest["tensors"]
        _check_header(path, shapes)
        tensors = load_file(str(path / TENSORS))
        ids = json.loads((path / IDS).read_text("utf-8"))
        state: dict[str, Any] = {}
        for name, entry in entries.items():
            if entry["kind"] == "array":
                state[name] = tensors[name]
            elif entry["kind"] == "index":
                state[name] = pd.Index(ids[name], dtype=object)
            elif entry["kind"] == "series":
                state[name] = pd.Series(tensors[name], index=pd.Index(ids[name], dtype=object))
            elif entry["kind"] == "csr":
                parts = [tensors[f"{name}.{part}"] for part in ("data", "indices", "indptr")]
                state[name] = csr_matrix(tuple(parts), shape=tuple(entry["shape"]))
            elif entry["kind"] == "plain":
                state[name] = plain[name]
            else:
                raise ArtifactError(f"{path}: unknown state entry kind {entry['kind']!r} for {name!r}.")
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ArtifactError(f"{path.name}: the model state cannot be read ({type(exc).__name__}: {exc}); "
                            "re-save the model.") from exc
    return dict(manifest["params"]), state
