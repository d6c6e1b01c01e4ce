"""User segments from an attribute table, and an item's popularity within a user's segments.

Every value of every attribute column is a segment (``gender=F``, ``occupation=writer``); a numeric
column with more than ``max_values`` distinct values (ages in years, incomes) is cut into
``n_bins`` quantile bins first (``age in [25, 31)``), so a segment holds enough users to count.
A numeric column with few values (MovieLens-1M's seven age bands) keeps one segment per value.

:func:`summed_shares` is the one scoring rule of demographic popularity: per item, the summed
share of each segment's users who touched it, or overall popularity when that sums to zero.
:func:`count_segments` counts, per kept segment, its training users and the distinct ones per item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mmrec.errors import ConfigError, SchemaError

__all__ = ["SegmentRule", "SegmentCounts", "count_segments", "segment_positions", "summed_shares",
           "weighted_rows"]


def weighted_rows(counts: np.ndarray | sp.spmatrix, weights: np.ndarray, n_items: int) -> np.ndarray:
    """``Σ_s weights[s] * counts[s]`` as a dense float64 ``(n_items,)`` vector, for dense or sparse
    ``(segments, items)`` counts (a sparse matrix is never densified)."""
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    counts = (counts.astype(np.float64) if sp.issparse(counts)
              else np.asarray(counts, dtype=np.float64).reshape(-1, n_items))
    if counts.shape[0] != len(weights):
        raise SchemaError(f"{counts.shape[0]} segment count row(s) but {len(weights)} member count(s).")
    return np.asarray(counts.T @ weights, dtype=np.float64).reshape(n_items)


def summed_shares(overall: np.ndarray, counts: np.ndarray | sp.spmatrix, members: np.ndarray) -> np.ndarray:
    """Per item: ``Σ_s counts[s] / members[s]`` over the user's segments (``counts`` is
    ``(segments, items)`` distinct users, dense or sparse, ``members`` the users of each segment);
    ``overall`` (distinct users per item) when there is no segment or no segment user touched
    anything."""
    members = np.maximum(np.asarray(members, dtype=np.float64).reshape(-1), 1.0)
    total = weighted_rows(counts, 1.0 / members, len(overall))
    return total if total.any() else np.asarray(overall, dtype=np.float64)


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _number(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class SegmentRule:
    """How attribute values become segment keys: ``edges`` maps each binned numeric column to its
    inner quantile edges (fitted once, so later tables are cut alike)."""

    edges: dict[str, list[float]]

    @classmethod
    def fit(cls, table: pd.DataFrame, *, n_bins: int = 5, max_values: int = 10) -> SegmentRule:
        """Quantile edges for the numeric columns of ``table`` with more than ``max_values``
        distinct values (edges shared by several quantiles are merged)."""
        if n_bins < 2 or max_values < 1:
            raise ConfigError(f"SegmentRule: n_bins must be >= 2 and max_values >= 1, got {n_bins} and "
                              f"{max_values}.")
        edges: dict[str, list[float]] = {}
        for name in table.columns:
            column = table[name]
            if _is_numeric(column) and column.nunique(dropna=True) > max_values:
                values = column.to_numpy(np.float64)
                inner = np.nanquantile(values, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
                edges[str(name)] = sorted({float(e) for e in inner})
        return cls(edges)

    def keys(self, table: pd.DataFrame) -> dict[str, list[str]]:
        """User id → the segment keys of their non-missing attributes (``table`` indexed by user)."""
        parts = []
        for name in table.columns:
            column = table[name]
            if str(name) in self.edges:
                parts.append(self._binned(str(name), column))
            elif _is_numeric(column):
                parts.append(column.map(lambda v, n=name: np.nan if pd.isna(v) else f"{n}={_number(v)}"))
            else:
                parts.append(column.map(lambda v, n=name: np.nan if pd.isna(v) else f"{n}={v}"))
        if not parts:
            return {str(user): [] for user in table.index}
        frame = pd.concat(parts, axis=1).to_numpy(dtype=object)
        return {str(user): [k for k in row if isinstance(k, str)]
                for user, row in zip(table.index, frame, strict=True)}

    def _binned(self, name: str, column: pd.Series) -> pd.Series:
        numbers = pd.to_numeric(column, errors="coerce") if not _is_numeric(column) else column
        bad = (numbers.isna() & column.notna()).to_numpy()
        if bad.any():
            user = column.index[np.flatnonzero(bad)[0]]
            raise SchemaError(f"user attributes: column {name!r} must be numeric (it was cut into "
                              f"quantile bins at fit); user {user!r} has {column.loc[user]!r}.")
        bounds = [-np.inf, *self.edges[name], np.inf]
        labels = [f"{name} in [{_number(lo)}, {_number(hi)})"
                  for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
        values = numbers.to_numpy(np.float64)
        where = np.searchsorted(np.asarray(self.edges[name], dtype=np.float64), values, side="right")
        return pd.Series(np.where(np.isnan(values), np.nan, np.asarray(labels, dtype=object)[where]),
                         index=column.index, dtype=object)


@dataclass(frozen=True)
class SegmentCounts:
    """Kept segments (``keys``, sorted), their training users (``members``) and the distinct ones
    who touched each item (``counts``, a sparse ``(segments, items)`` CSR matrix: a segment's users
    touch a sliver of a large catalog, and dense rows would cost segments × items)."""

    keys: pd.Index
    counts: sp.csr_matrix
    members: np.ndarray


def segment_positions(keys: dict[str, list[str]], segments: pd.Index) -> dict[str, np.ndarray]:
    """User → the rows of ``segments`` their keys name (keys of dropped segments left out)."""
    positions = {}
    for user, row in keys.items():
        hits = segments.get_indexer(pd.Index(row, dtype=object))
        positions[user] = np.unique(hits[hits >= 0]).astype(np.int64)
    return positions


def count_segments(keys: dict[str, list[str]], user_codes: np.ndarray, users: pd.Index,
                   item_rows: np.ndarray, n_items: int, *, min_users: int = 10) -> SegmentCounts:
    """Per segment with at least ``min_users`` of ``users`` (``keys``: their segment keys): its
    users and, per item, the distinct ones among them with an event on it (events as
    ``user_codes`` into ``users`` and ``item_rows``; rows < 0 are skipped)."""
    known = {user: row for user, row in keys.items() if user in users}
    members = pd.Series([k for row in known.values() for k in row], dtype=object).value_counts()
    kept = pd.Index(sorted(members.index[members >= min_users]), dtype=object)
    positions = segment_positions(known, kept)
    rows = np.concatenate([np.full(len(p), users.get_loc(u), dtype=np.int64) for u, p in positions.items()]
                          + [np.empty(0, dtype=np.int64)])
    cols = np.concatenate([*positions.values(), np.empty(0, dtype=np.int64)])
    membership = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(users), len(kept)))
    valid = np.asarray(item_rows) >= 0
    seen = sp.csr_matrix((np.ones(int(valid.sum()), np.float32),
                          (np.asarray(user_codes)[valid], np.asarray(item_rows)[valid])),
                         shape=(len(users), n_items))
    seen.sum_duplicates()
    seen.data[:] = 1.0
    counts = sp.csr_matrix(membership.T @ seen, dtype=np.float32, shape=(len(kept), n_items))
    counts.sort_indices()
    return SegmentCounts(kept, counts, members.reindex(kept).to_numpy(np.float32))
