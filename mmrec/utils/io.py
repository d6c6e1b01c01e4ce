"""Atomic writes, checksums and JSON manifests for saved artifacts.

Every file and folder mmrec saves goes through :func:`atomic_path` (one file) or
:func:`atomic_directory` (an artifact folder): written under a temporary name next to the target,
fsynced, then renamed over it, so a reader sees the old version or the new one, never half of one.
An artifact folder carries ``manifest.json`` (:func:`write_manifest`): its ``format`` and
``format_version``, the mmrec version, and the SHA-256 and size of every file; :func:`read_manifest`
checks all of it before a loader reads anything. Nothing is ever pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmrec._version import __version__
from mmrec.errors import ArtifactError

__all__ = ["MANIFEST", "sha256_file", "atomic_path", "atomic_directory", "atomic_write_text",
           "write_manifest", "read_manifest", "manifest_format", "require_files", "leftovers", "load_npy"]

MANIFEST = "manifest.json"
_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, streamed in 1 MiB blocks (memory stays flat for multi-GB files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- temporary names
# A temporary is ".<target name>.<pid>.<random>.tmp" (a backup of a replaced folder: "... .old") in
# the target's folder, so the final rename never crosses file systems and a leftover of a killed
# process can be recognised (and removed) by the next save of the same target.

def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def leftovers(target: str | os.PathLike[str]) -> list[Path]:
    """Temporaries of unfinished saves of ``target`` whose process is gone (killed mid-save)."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[a-z0-9_]{{8}}\.(tmp(\.[^.]*)?|old)")
    found = []
    for entry in target.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and not _pid_alive(int(match.group(1))):
            found.append(entry)
    return sorted(found)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync(path: Path, *, recursive: bool = True) -> None:
    """Flush a file, or a folder (its entries; with ``recursive`` every file and folder below it
    too), to stable storage. The parent of a renamed artifact is flushed with ``recursive=False``:
    only its entry list changed (a recursive flush of, say, /tmp touched every file there)."""
    if recursive and path.is_dir():
        for child in path.rglob("*"):
            _fsync(child, recursive=False)
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. folders cannot be opened on Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path next to ``target``; on success it is fsynced and renamed over it.

    The temporary keeps ``target``'s suffix, so writers that pick the format from it (``to_csv``,
    ``savefig``, ``Image.save``) behave the same. A crash inside the block leaves ``target`` as it
    was; the temporary is removed (or, after a SIGKILL, by the next save of ``target``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in leftovers(target):
        _remove(stale)
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=f".tmp{target.suffix}",
                                dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent, recursive=False)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, "utf-8")


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory next to ``target``; on success it replaces ``target`` at once.

    A crash inside the block leaves ``target`` as it was (old artifact or nothing), never half
    written. An existing ``target`` is moved aside, the new folder renamed in, then the old one
    deleted; if the swap fails the old folder is put back.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in leftovers(target):
        _remove(stale)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent))
    backup: Path | None = None
    try:
        yield tmp
        _fsync(tmp)
        if target.exists():
            backup = Path(tempfile.mkdtemp(prefix=_temp_prefix(target), suffix=".old", dir=target.parent))
            backup.rmdir()  # a unique free name: the old folder is renamed to it
            os.replace(target, backup)
        os.replace(tmp, target)
        _fsync(target.parent, recursive=False)
    except BaseException:
        if backup is not None and not target.exists():
            os.replace(backup, target)
            backup = None
        _remove(tmp)
        raise
    finally:
        if backup is not None:
            _remove(backup)


# ----------------------------------------------------------------------------- manifests
def write_manifest(directory: Path, kind: str, payload: dict[str, Any], files: list[str], *,
                   version: int = 1) -> None:
    """Write ``manifest.json`` into ``directory`` (an :func:`atomic_directory` temporary, written
    last): ``format`` (the artifact kind), ``format_version``, mmrec version, and per file its
    SHA-256 (``files``) and size in bytes (``sizes``), then ``payload``."""
    manifest = {
        "format": kind,
        "format_version": version,
        "mmrec_version": __version__,
        "files": {name: sha256_file(directory / name) for name in files},
        "sizes": {name: (directory / name).stat().st_size for name in files},
        **payload,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False), "utf-8")


def _missing_hint(directory: Path) -> str:
    left = leftovers(directory)
    if any(p.name.endswith(".old") for p in left):
        old = next(p for p in left if p.name.endswith(".old"))
        return (f" A save was killed while swapping folders; the previous version is {old}: "
                f"rename it to {directory.name}, or re-run the command that saves it.")
    if left:
        return (f" An unfinished save left {left[0].name} next to it (ignored, removed by the next "
                "save); re-run the command that saves it.")
    return " Re-run the command that saves it."


def require_files(directory: str | os.PathLike[str], manifest: dict[str, Any], names: Iterable[str]) -> None:
    """Check that ``manifest`` (from :func:`read_manifest`) lists every file in ``names``: a loader
    reads only files whose checksums were verified."""
    listed = manifest.get("files") or {}
    for name in names:
        if name not in listed:
            raise ArtifactError(f"{Path(directory) / name} is not listed in {MANIFEST}: the artifact is "
                                "incomplete or was edited; re-run the command that saves it.")


def _parse_manifest(directory: Path, kind: str) -> dict[str, Any]:
    """The manifest of ``directory`` as a dict (nothing checked beyond its existence and syntax)."""
    path = directory / MANIFEST
    if not path.is_file():
        what = "does not exist" if not directory.exists() else f"has no {MANIFEST}"
        raise ArtifactError(f"{directory} {what}: it is not a complete mmrec {kind} artifact "
                            f"({MANIFEST} is missing; it is written last, so the save did not finish "
                            f"or this is another kind of folder).{_missing_hint(directory)}")
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}): the artifact is corrupt; "
                            "re-run the command that saves it.") from exc
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is not an mmrec manifest (not a JSON object).")
    return manifest


def manifest_format(directory: str | os.PathLike[str], *, expected: str = "model") -> str:
    """The ``format`` a saved folder declares (which loader reads it); the files are checked later by
    that loader's :func:`read_manifest`. ``expected`` words the error for a folder without one."""
    manifest = _parse_manifest(Path(directory), expected)
    found = manifest.get("format", manifest.get("kind"))
    if not isinstance(found, str):
        raise ArtifactError(f"{Path(directory).name}/{MANIFEST} names no format; it is not an mmrec "
                            f"{expected} artifact.")
    return found


def _inside(directory: Path, name: Any) -> Path:
    """``directory / name`` for a file name a manifest lists, which must stay inside the folder (no
    absolute path, no ``..``, no link out): an edited manifest cannot make us read other files."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise ArtifactError(f"{directory.name}/{MANIFEST} lists {str(name)[:80]!r}, which is not a file "
                            "inside the artifact folder: the manifest was edited; re-save the artifact.")
    file = directory / name
    if not file.resolve().is_relative_to(directory.resolve()):
        raise ArtifactError(f"{directory.name}/{name} links outside the artifact folder; "
                            "re-save the artifact.")
    return file


def load_npy(path: str | os.PathLike[str], *, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array of numbers, its header checked against the file's size before anything is
    allocated; pickled (object) arrays are refused, never loaded."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(handle)
            offset = handle.tell()
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path.parent.name}/{path.name} is not a readable .npy array ({exc}); "
                            "re-save the artifact.") from None
    if dtype.hasobject:
        raise ArtifactError(f"{path.parent.name}/{path.name} holds pickled Python objects; mmrec never "
                            "loads pickles. Re-save the artifact with mmrec.")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if path.stat().st_size != expected:
        raise ArtifactError(f"{path.parent.name}/{path.name}: its header claims shape {list(shape)} of "
                            f"{dtype} ({expected} bytes with the header), the file has "
                            f"{path.stat().st_size}; it is corrupt or was edited. Re-save the artifact.")
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)


def read_manifest(directory: str | os.PathLike[str], kind: str, *, version: int = 1,
                  require: Iterable[str] = (), verify: bool = True) -> dict[str, Any]:
    """Read and check an artifact's manifest before anything else of it is read.

    Checks: the manifest exists and parses; it is a ``kind`` artifact of a ``format_version`` from 1
    to ``version``; every file in ``require`` is listed; every listed file exists with its recorded
    size and (with ``verify``, the default) its SHA-256. ``verify=False`` skips the checksums (sizes
    are still checked), for multi-GB files that are about to be memory-mapped.

    Raises
    ------
    ArtifactError
        Naming the file, what is wrong with it, and how to fix it.
    """
    directory = Path(directory)
    path = directory / MANIFEST
    manifest = _parse_manifest(directory, kind)
    found = manifest.get("format", manifest.get("kind"))  # "kind": manifests before format names
    if found != kind:
        raise ArtifactError(f"{directory} holds a {found!r} artifact, not {kind!r}: "
                            "pass the folder of the right kind.")
    found_version = manifest.get("format_version")
    if not isinstance(found_version, int) or found_version < 1:
        raise ArtifactError(f"{path} has no valid format_version ({found_version!r}); it is corrupt.")
    if found_version > version:
        raise ArtifactError(
            f"{directory} is a {kind} artifact of format_version {found_version}, written by mmrec "
            f"{manifest.get('mmrec_version', '?')}; this mmrec {__version__} reads format_version "
            f"up to {version}: upgrade mmrec (pip install -U mmrec).")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(f"{path} lists no files; it is corrupt. Re-run the command that saves it.")
    require_files(directory, manifest, require)
    sizes = manifest.get("sizes", {})
    for name, expected in files.items():
        file = _inside(directory, name)
        if not file.is_file():
            raise ArtifactError(f"{file} (listed in {MANIFEST}) is missing: the artifact is incomplete; "
                                "re-run the command that saves it.")
        size = file.stat().st_size
        if name in sizes and size != sizes[name]:
            raise ArtifactError(f"{file} does not match its checksum in {MANIFEST} (it has {size} bytes, "
                                f"not {sizes[name]}): it was truncated, tampered with or half-written; "
                                "re-run the command that saves it.")
        if verify and sha256_file(file) != expected:
            raise ArtifactError(f"{file} does not match its checksum in {MANIFEST}: it was tampered "
                                "with or half-written; re-run the command that saves it.")
    return manifest
