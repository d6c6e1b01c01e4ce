"""Row-wise array outputs that live in memory or stream to a ``.npy`` file on disk."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

# Flush written pages to disk and drop them from this process's memory after this many bytes.
RELEASE_EVERY_BYTES = 16 << 20


class RowSink:
    """A ``(rows, cols)`` array filled by row blocks: in memory, or a ``.npy`` file written as it goes.

    On disk, written pages are flushed and released every ``RELEASE_EVERY_BYTES`` so resident memory
    stays flat however many rows there are. ``array`` is the result (an ndarray or a read-only
    memmap once :meth:`close` has run).
    """

    def __init__(self, shape: tuple[int, int], dtype: np.dtype | type, path: Path | None = None):
        self.path = path
        self._pending = 0
        if path is None:
            self.array: np.ndarray = np.zeros(shape, dtype=dtype)
        else:
            self.array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)

    def write(self, rows: np.ndarray | slice, values: np.ndarray) -> None:
        """``array[rows] = values``, releasing written pages now and then when on disk."""
        self.array[rows] = values
        if self.path is not None:
            self._pending += np.asarray(values).nbytes
            if self._pending >= RELEASE_EVERY_BYTES:
                self.release()

    __setitem__ = write

    def release(self) -> None:
        """Flush to disk and drop the mapped pages from resident memory (disk sinks only)."""
        if self.path is None or not isinstance(self.array, np.memmap):
            return
        self.array.flush()
        handle = getattr(self.array, "_mmap", None)
        if isinstance(handle, mmap.mmap) and hasattr(handle, "madvise"):
            handle.madvise(mmap.MADV_DONTNEED)
        self._pending = 0

    def close(self) -> np.ndarray:
        """Finish writing; a disk sink is reopened read-only and memory-mapped."""
        if self.path is None:
            return self.array
        self.release()
        del self.array
        self.array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self.array


def npy_path(folder: Path, name: str) -> Path:
    """``folder/name.npy`` with the name made filesystem-safe."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return folder / f"{safe}.npy"


__all__ = ["RowSink", "npy_path", "RELEASE_EVERY_BYTES"]
