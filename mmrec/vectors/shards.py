"""Item vectors as Parquet shards: written batch by batch, opened lazily, read in row-group chunks.

The layout a distributed encode writes (``encode_items(..., engine="ray", out=...)``)::

    manifest.json          kind "item_vectors", layout "parquet-shards", the shards and their rows
    shards/part-00000.parquet   item_id, vectors.<m> (fixed-size list of float32), mask.<m>, fused
    scaler.<m>.npy         the fusion scalers (mean, scale) fitted on all items
    report.json            the encode report

``ItemVectors.load`` reads ids and masks (small) and
leaves every matrix on disk as a :class:`ShardedColumn`: a read-only ``(n, d)`` float32 array-like
whose row slices and fancy indices read only the row groups they touch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import ArtifactError, SchemaError

__all__ = ["ARTIFACT_KIND", "LAYOUT", "ShardedColumn", "ShardWriter", "write_fused_shards",
           "write_sharded_artifact"]

ARTIFACT_KIND = "item_vectors"  # the manifest kind of every ItemVectors folder, sharded or not
LAYOUT = "parquet-shards"
SHARD_DIR = "shards"
ID_COLUMN = "item_id"
DEFAULT_SHARD_ROWS = 65_536
DEFAULT_ROW_GROUP_ROWS = 8_192


def _pa() -> Any:
    import pyarrow as pa

    return pa


def _pq() -> Any:
    import pyarrow.parquet as pq

    return pq


def vector_array(matrix: np.ndarray) -> Any:
    """An ``(n, d)`` float32 matrix as an Arrow fixed-size-list column (zero copy)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return _pa().FixedSizeListArray.from_arrays(matrix.reshape(-1), int(matrix.shape[1]))


def column_matrix(column: Any, dim: int) -> np.ndarray:
    """A fixed-size-list (or chunked) Arrow column back as an ``(n, dim)`` float32 matrix."""
    pa = _pa()
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(values, dtype=np.float32).reshape(len(column), dim)


class ShardWriter:
    """Appends row blocks to numbered Parquet shards of ``shard_rows`` rows each, in order."""

    def __init__(self, folder: Path, *, shard_rows: int = DEFAULT_SHARD_ROWS,
                 row_group_rows: int = DEFAULT_ROW_GROUP_ROWS) -> None:
        if shard_rows < 1 or row_group_rows < 1:
            raise SchemaError(f"shard_rows and row_group_rows must be >= 1, got {shard_rows}, "
                              f"{row_group_rows}.")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_rows = shard_rows
        self.row_group_rows = min(row_group_rows, shard_rows)
        self.shards: list[dict[str, Any]] = []  # {"file": relative name, "rows": n}
        self._pending: list[Any] = []
        self._pending_rows = 0

    def write(self, table: Any) -> None:
        """Append an Arrow table (same schema every call)."""
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.shard_rows:
            self._flush(self.shard_rows)

    def close(self) -> list[dict[str, Any]]:
        """Write the last (short) shard; returns the shards written."""
        if self._pending_rows:
            self._flush(self._pending_rows)
        return self.shards

    def _flush(self, rows: int) -> None:
        pa = _pa()
        table = pa.concat_tables(self._pending)
        head, rest = table.slice(0, rows), table.slice(rows)
        name = f"part-{len(self.shards):05d}.parquet"
        _pq().write_table(head, self.folder / name, row_group_size=self.row_group_rows)
        self.shards.append({"file": name, "rows": int(head.num_rows)})
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = int(rest.num_rows)


class ShardedColumn:
    """A read-only ``(n, d)`` float32 matrix stored as one column of consecutive Parquet shards.

    Supports ``len``, ``shape``, ``dtype``, integer / slice / int-array row indexing (reading only
    the row groups those rows lie in; the last row group read is kept) and ``np.asarray`` (reads it
    all). ``reads`` counts row groups decoded.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, files: list[Path], column: str, dim: int) -> None:
        pq = _pq()
        self.column = column
        self.dim = int(dim)
        self._groups: list[tuple[Path, int]] = []  # (file, row group)
        starts = [0]
        for file in files:
            meta = pq.ParquetFile(file).metadata
            for g in range(meta.num_row_groups):
                self._groups.append((file, g))
                starts.append(starts[-1] + meta.row_group(g).num_rows)
        self._starts = np.asarray(starts, dtype=np.int64)
        self.shape = (int(self._starts[-1]), self.dim)
        self._cached: tuple[int, np.ndarray] | None = None
        self.reads = 0

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"ShardedColumn({self.column!r}, shape={self.shape}, {len(self._groups)} row groups)"

    def _group(self, g: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != g:
            file, group = self._groups[g]
            table = _pq().ParquetFile(file).read_row_group(group, columns=[self.column])
            self._cached = (g, column_matrix(table.column(0), self.dim))
            self.reads += 1
        return self._cached[1]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as a new float32 array."""
        start, stop = max(0, start), min(len(self), stop)
        out = np.empty((max(0, stop - start), self.dim), dtype=np.float32)
        if stop <= start:
            return out
        first = int(np.searchsorted(self._starts, start, side="right")) - 1
        g = first
        while g < len(self._groups) and self._starts[g] < stop:
            lo, hi = max(start, self._starts[g]), min(stop, self._starts[g + 1])
            out[lo - start : hi - start] = self._group(g)[lo - self._starts[g] : hi - self._starts[g]]
            g += 1
        return out

    def take(self, positions: np.ndarray) -> np.ndarray:
        """Rows at int ``positions`` (any order, repeats allowed)."""
        positions = np.asarray(positions, dtype=np.int64).ravel()
        if positions.size and (positions.min() < -len(self) or positions.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows.")
        positions = np.where(positions < 0, positions + len(self), positions)
        out = np.empty((len(positions), self.dim), dtype=np.float32)
        groups = np.searchsorted(self._starts, positions, side="right") - 1
        for g in np.unique(groups):
            hit = groups == g
            out[hit] = self._group(int(g))[positions[hit] - self._starts[g]]
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):  # (rows, columns): rows first, then numpy on the block
            rows, *rest = key
            return self[rows][(slice(None), *rest)]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self.rows(start, stop)
            return self.take(np.arange(start, stop, step))
        if isinstance(key, int | np.integer):
            return self.take(np.asarray([key]))[0]
        key = np.asarray(key)
        if key.dtype == bool:
            return self.take(np.flatnonzero(key))
        return self.take(key)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        whole = self.rows(0, len(self))
        return whole if dtype is None else whole.astype(dtype, copy=False)

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(start row, block)`` per row group, in order."""
        for g in range(len(self._groups)):
            yield int(self._starts[g]), self._group(g)


def shard_files(path: Path, manifest: Mapping[str, Any]) -> list[Path]:
    """The shard files a manifest lists: plain names inside the shard folder, nothing else."""
    names = [shard.get("file") if isinstance(shard, Mapping) else None for shard in manifest["shards"]]
    for name in names:
        if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
            raise ArtifactError(f"{path.name}/manifest.json lists the shard {str(name)[:80]!r}, which is not "
                                f"a file name inside {SHARD_DIR}/: the manifest was edited; re-create it.")
    return [path / SHARD_DIR / name for name in names]


def write_fused_shards(
    raw_files: list[Path],
    out_folder: Path,
    dims: Mapping[str, int],
    *,
    weights: Mapping[str, float] | None,
    scalers: Mapping[str, Any],
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
) -> list[dict[str, Any]]:
    """Rewrite shards of ``item_id, vectors.<m>, mask.<m>`` into ``out_folder`` with their ``fused``
    column added (:func:`mmrec.vectors.fixed_fusion.concat_fusion` with the given, corpus-wide
    ``scalers``), one shard in memory at a time; each raw shard is deleted once rewritten."""
    from mmrec.vectors.fixed_fusion import concat_fusion

    pq = _pq()
    out_folder.mkdir(parents=True, exist_ok=True)
    shards = []
    for number, raw in enumerate(raw_files):
        table = pq.read_table(raw)
        vectors = {m: column_matrix(table.column(f"vectors.{m}"), d) for m, d in dims.items()}
        masks = {m: table.column(f"mask.{m}").to_numpy(zero_copy_only=False).astype(bool) for m in dims}
        fused = concat_fusion(vectors, masks, weights=weights, scalers=scalers)
        name = f"part-{number:05d}.parquet"
        pq.write_table(table.append_column("fused", vector_array(fused)), out_folder / name,
                       row_group_size=row_group_rows)
        shards.append({"file": name, "rows": int(table.num_rows)})
        del table, vectors, fused
        raw.unlink()
    return shards


def write_sharded_artifact(
    folder: Path,
    raw_files: list[Path],
    dims: Mapping[str, int],
    *,
    n_items: int,
    weights: Mapping[str, float],
    scalers: Mapping[str, Any],
    report: Any,
    encoders: Mapping[str, Any],
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
) -> None:
    """Finish a ``parquet-shards`` ItemVectors folder from its raw shards: the fused shards, the
    scalers, the report and the manifest (the one place that writes this layout's manifest)."""
    from mmrec.utils.arrays import npy_path
    from mmrec.utils.io import write_manifest

    shards = write_fused_shards(raw_files, folder / SHARD_DIR, dims, weights=weights, scalers=scalers,
                                row_group_rows=row_group_rows)
    files = [f"{SHARD_DIR}/{shard['file']}" for shard in shards]
    for m in dims:
        path = npy_path(folder, f"scaler.{m}")
        np.save(path, np.stack([scalers[m].mean, scalers[m].scale]), allow_pickle=False)
        files.append(path.name)
    (folder / "report.json").write_text(json.dumps(report.to_dict(), indent=1), "utf-8")
    files.append("report.json")
    write_manifest(folder, ARTIFACT_KIND, {
        "layout": LAYOUT,
        "n_items": n_items,
        "modalities": dict(dims),
        "fused_dim": sum(dims.values()),
        "fusion": {"kind": "concat", "weights": dict(weights)},
        "encoders": dict(encoders),
        "shards": shards,
    }, files)
