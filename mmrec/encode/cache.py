"""A content-hash cache of encoded vectors, so unchanged items are never encoded twice.

An entry is keyed by the encoder's *fingerprint* (its class, config, the digests of its weight files
and, for encoders fitted on the catalog, of the fitting corpus) and the item's *content key* (the
SHA-256 of its prepared text, or of its media file's bytes). Entries are committed batch by batch,
so an interrupted ``encode_items`` resumes where it stopped. Stored in one SQLite file
(``cache.sqlite``); file digests are memoised by (path, size, mtime).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrec._version import __version__

__all__ = ["EncodeCache", "content_key", "digest_path"]

_QUERY_CHUNK = 500


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_path(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and bytes, sorted)."""
    from mmrec.utils.io import sha256_file

    if path.is_dir():
        parts = [f"{p.relative_to(path)}:{sha256_file(p)}" for p in sorted(path.rglob("*")) if p.is_file()]
        return _sha256("\n".join(parts).encode())
    return sha256_file(path)


def content_key(value: Any) -> str:
    """Content key of a non-file input (e.g. a prepared text: list of (text, weight))."""
    return _sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode())


class EncodeCache:
    """Vectors by (encoder fingerprint, content key) in ``<folder>/cache.sqlite``."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.folder / "cache.sqlite"))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("""CREATE TABLE IF NOT EXISTS vectors (
            fingerprint TEXT NOT NULL, key TEXT NOT NULL, vector BLOB NOT NULL,
            PRIMARY KEY (fingerprint, key))""")
        self._db.execute("""CREATE TABLE IF NOT EXISTS files (
            path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL)""")
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EncodeCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- keys
    def file_key(self, path: Path) -> str | None:
        """Digest of a file's bytes (memoised by path, size and mtime), or of a folder's files;
        ``None`` when nothing is there."""
        try:
            stat = path.stat()
        except OSError:
            return None
        if path.is_dir():
            parts = [f"{p.relative_to(path)}:{self.file_key(p)}" for p in sorted(path.rglob("*"))
                     if p.is_file()]
            return _sha256("\n".join(parts).encode())
        if not path.is_file():
            return None
        row = self._db.execute("SELECT size, mtime_ns, sha256 FROM files WHERE path = ?",
                               (str(path),)).fetchone()
        if row is not None and row[0] == stat.st_size and row[1] == stat.st_mtime_ns:
            return row[2]
        digest = digest_path(path)
        self._db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                         (str(path), stat.st_size, stat.st_mtime_ns, digest))
        return digest

    @staticmethod
    def fingerprint(description: dict[str, Any], *extra: str) -> str:
        """An encoder's fingerprint from its JSON description and extra digests."""
        payload = json.dumps({"mmrec": __version__, "encoder": description, "extra": extra},
                             sort_keys=True, default=str)
        return _sha256(payload.encode())

    # ----------------------------------------------------------------------------- vectors
    def get_many(self, fingerprint: str, keys: Sequence[str], dim: int) -> dict[str, np.ndarray]:
        """Cached vectors of ``keys`` (missing keys are absent from the result)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _QUERY_CHUNK):
            chunk = unique[start : start + _QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, vector FROM vectors WHERE fingerprint = ? AND key IN ({marks})",
                (fingerprint, *chunk))
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.shape == (dim,):
                    found[key] = vector
        return found

    def put_many(self, fingerprint: str, entries: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store vectors and commit (a resume point)."""
        self._db.executemany(
            "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
            [(fingerprint, key, np.ascontiguousarray(v, dtype=np.float32).tobytes())
             for key, v in entries])
        self._db.commit()

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
