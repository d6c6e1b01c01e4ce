"""Read tables (Parquet, CSV/TSV, JSON Lines) into pandas DataFrames."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mmrec.errors import SchemaError
from mmrec.registry import Registry

TABLE_READERS: Registry[Callable[[Path], pd.DataFrame]] = Registry("table format")


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    # Everything as text: ids such as "007" keep their zeros; numeric columns are parsed (and
    # reported per row) by the schema validation, not silently by the CSV parser.
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])


@TABLE_READERS.register(".csv")
def _read_csv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, ",")


@TABLE_READERS.register(".tsv", ".tab")
def _read_tsv(path: Path) -> pd.DataFrame:
    return _read_delimited(path, "\t")


@TABLE_READERS.register(".parquet", ".pq")
def _read_parquet(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


@TABLE_READERS.register(".jsonl", ".ndjson")
def _read_jsonl(path: Path) -> pd.DataFrame:
    return pd.read_json(path, lines=True, dtype=False)


@TABLE_READERS.register(".json")
def _read_json(path: Path) -> pd.DataFrame:
    # A JSON array of records ([{...}, {...}]) or a column mapping ({"col": [...]}).
    return pd.read_json(path, dtype=False)


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table from ``path``; the format comes from the file extension.

    Supported: ``.parquet``/``.pq``, ``.csv``, ``.tsv``/``.tab``, ``.jsonl``/``.ndjson``, ``.json``
    (an array of records).
    """
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"table file {str(path)!r} does not exist (cwd: {os.getcwd()}).")
    suffix = path.suffix.lower()
    if suffix not in TABLE_READERS:
        raise SchemaError(
            f"cannot read {str(path)!r}: unknown extension {suffix!r}; "
            f"use one of {', '.join(TABLE_READERS.names())} or pass a DataFrame."
        )
    try:
        return TABLE_READERS.get(suffix)(path)
    except (ValueError, OSError) as exc:  # parser errors of pandas/pyarrow
        raise SchemaError(f"cannot parse {str(path)!r} as {suffix}: {exc}") from exc


def read_user_attributes(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A user-attribute table (CSV, TSV, Parquet, JSON Lines) with a ``user`` or ``user_id`` column."""
    frame = read_table(path)
    if "user" not in frame.columns and "user_id" in frame.columns:
        frame = frame.rename(columns={"user_id": "user"})
    if "user" not in frame.columns:
        raise SchemaError(f"{path}: a user-attribute table needs a `user` (or `user_id`) column; it has "
                          f"{list(frame.columns)}.")
    return frame
