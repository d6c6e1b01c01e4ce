"""Atomic writes, checksums and JSON manifests for saved artifacts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmrec._version import __version__
from mmrec.errors import ArtifactError

MANIFEST = "manifest.json"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to ``target``; on success it replaces ``target`` at once.

    A crash inside the block leaves ``target`` as it was (old artifact or nothing), never half written.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        backup = None
        if target.exists():
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, backup)
        os.replace(tmp, target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_manifest(directory: Path, kind: str, payload: dict[str, Any], files: list[str]) -> None:
    """Write ``manifest.json`` describing an artifact: kind, format, mmrec version, file checksums."""
    manifest = {
        "kind": kind,
        "format_version": 1,
        "mmrec_version": __version__,
        "files": {name: sha256_file(directory / name) for name in files},
        **payload,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False), "utf-8")


def read_manifest(directory: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read and verify a manifest: right kind and format, every listed file present and unchanged."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory} is not an mmrec {kind} artifact: {MANIFEST} is missing.")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); the artifact is corrupt.") from exc
    if manifest.get("kind") != kind:
        raise ArtifactError(f"{directory} holds a {manifest.get('kind')!r} artifact, not {kind!r}.")
    if manifest.get("format_version") != 1:
        raise ArtifactError(
            f"{directory} has format_version {manifest.get('format_version')!r}; this mmrec reads 1."
        )
    for name, expected in manifest.get("files", {}).items():
        file = directory / name
        if not file.is_file():
            raise ArtifactError(f"{file} listed in {MANIFEST} is missing; re-create the artifact.")
        if sha256_file(file) != expected:
            raise ArtifactError(f"{file} does not match its checksum in {MANIFEST}; it was modified.")
    return manifest
