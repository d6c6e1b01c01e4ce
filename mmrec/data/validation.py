"""Column checks shared by Catalog and Interactions; every error names row, column and reason."""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from mmrec.errors import ConfigError, SchemaError

_MAX_LISTED = 5


def is_finite_number(value: object) -> bool:
    """True for a real number (not a bool) that is finite, also an int too large for a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond 1e308
        return False


def positive_int(value: object, *, name: str) -> int:
    """``value`` as an ``int`` >= 1 (``k``, batch sizes); anything else is a :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def id_list(values: object, *, name: str) -> list[str]:
    """A list of ids (``users=``, ``item_ids=``) as ``str``; a lone string is an error, not its letters."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise SchemaError(f"{name} must be a list of ids, got {type(values).__name__} {values!r}; "
                          f"pass [{values!r}] for one.")
    return [str(v) for v in values]


def normalized_name(name: object) -> str:
    """A column name compared loosely: lower case, letters and digits only (``Item_ID`` → ``itemid``)."""
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def is_missing(value: object) -> bool:
    """True for None, NaN/NaT/pd.NA and empty or whitespace-only strings."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, what: str) -> None:
    """Raise a :class:`SchemaError` naming each absent column and the closest present ones."""
    present = [str(c) for c in frame.columns]
    for column in columns:
        if not isinstance(column, str):
            raise SchemaError(f"{what}: column name {column!r} is a {type(column).__name__}; name columns "
                              f"with strings (columns present: {present}).")
        if column not in frame.columns:
            close = difflib.get_close_matches(column, present, n=2)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise SchemaError(
                f"{what}: column {column!r} is not in the table.{hint} Columns present: {present}."
            )


def str_columns(frame: pd.DataFrame, *, what: str) -> pd.DataFrame:
    """``frame`` with ``str`` column labels (schemas name columns by string); two columns whose
    labels are equal as strings (``1`` and ``"1"``, or a repeated name) are a :class:`SchemaError`."""
    labels = [str(c) for c in frame.columns]
    repeated = sorted({c for c in labels if labels.count(c) > 1})
    if repeated:
        raise SchemaError(f"{what}: column {repeated[0]!r} appears more than once (column labels are "
                          "compared as strings); rename or drop the duplicate column.")
    if all(isinstance(c, str) for c in frame.columns):
        return frame
    return frame.set_axis(labels, axis=1)


def _rows(positions: Iterable[int]) -> str:
    positions = list(positions)
    shown = ", ".join(str(p) for p in positions[:_MAX_LISTED])
    more = f" and {len(positions) - _MAX_LISTED} more" if len(positions) > _MAX_LISTED else ""
    return f"row{'s' if len(positions) > 1 else ''} {shown}{more}"


def id_strings(series: pd.Series, *, column: str, what: str, unique: bool) -> np.ndarray:
    """Ids as an object array of ``str``; missing ids (and duplicates when ``unique``) are errors.

    Integral floats (``7.0``, as pandas makes of an int column with gaps) become ``"7"``.
    """
    missing = np.flatnonzero(missing_mask(series))
    if missing.size:
        raise SchemaError(
            f"{what}: {_rows(missing.tolist())}, column {column!r}: id is missing; every row needs an id."
        )
    kind = pd.api.types.infer_dtype(series, skipna=False)
    if kind == "string":  # fast paths for the common cases; same results as the loop below
        out = series.astype(object).str.strip().to_numpy(dtype=object)
    elif kind == "integer":  # str() of each, not via int64: ids beyond 2**63 stay exact
        out = series.astype(str).to_numpy(dtype=object)
    else:
        out = np.array([_id_string(v, row=i, column=column, what=what)
                        for i, v in enumerate(series.tolist())] or [], dtype=object)
    if unique:
        duplicated = pd.Series(out).duplicated(keep=False).to_numpy()
        if duplicated.any():
            first = out[np.flatnonzero(duplicated)[0]]
            rows = np.flatnonzero(out == first).tolist()
            n_dup = int(pd.Series(out).duplicated().sum())
            raise SchemaError(
                f"{what}: {_rows(rows)}, column {column!r}: duplicate id {first!r} "
                f"({n_dup} duplicated id(s) in all); ids must be unique - drop or merge duplicates."
            )
    return out


def _distinct_normalised(values: np.ndarray, normalise: Callable[[pd.Index], pd.Index]
                         ) -> tuple[np.ndarray, pd.Index]:
    """Codes (``-1`` where missing) and distinct strings, in order of first appearance, of an object
    array of ``str``, each distinct string normalised once instead of every row (a log of 20M events
    names ~1M users: stripping every row's string was most of reading it). Raw strings that
    normalise alike share a code."""
    codes, distinct = pd.factorize(values, sort=False)
    raw = pd.Index(distinct, dtype=object)
    clean = normalise(raw)
    if clean.equals(raw):
        return codes, raw
    merged, clean_distinct = pd.factorize(clean.to_numpy(dtype=object), sort=False)
    return np.where(codes >= 0, merged[codes], -1), pd.Index(clean_distinct, dtype=object)


def categorical_strings(values: np.ndarray) -> pd.Categorical:
    """An object array of strings as codes and its distinct strings in order of first appearance."""
    codes, distinct = pd.factorize(values, sort=False)
    return pd.Categorical.from_codes(codes, pd.Index(distinct, dtype=object))


def id_categorical(series: pd.Series, *, column: str, what: str) -> pd.Categorical:
    """:func:`id_strings` (``unique=False``) as codes and distinct ids in order of first appearance;
    a column of strings is stripped and checked once per distinct string."""
    if pd.api.types.infer_dtype(series, skipna=False) != "string":
        return categorical_strings(id_strings(series, column=column, what=what, unique=False))
    codes, ids = _distinct_normalised(series.to_numpy(dtype=object), lambda index: index.str.strip())
    missing = np.flatnonzero((codes < 0) | np.isin(codes, np.flatnonzero(ids == "")))  # None, NaN, blank
    if missing.size:
        raise SchemaError(
            f"{what}: {_rows(missing.tolist())}, column {column!r}: id is missing; every row needs an id."
        )
    return pd.Categorical.from_codes(codes, ids)


def label_categorical(series: pd.Series, *, column: str, what: str, default: str) -> pd.Categorical:
    """:func:`label_strings` as codes and distinct labels in order of first appearance; a column of
    strings is stripped and lower-cased once per distinct label."""
    if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        return categorical_strings(label_strings(series, column=column, what=what, default=default))
    codes, labels = _distinct_normalised(series.to_numpy(dtype=object),
                                         lambda index: index.str.strip().str.lower())
    missing = (codes < 0) | np.isin(codes, np.flatnonzero(labels == ""))
    if missing.any():  # blank or absent: the default label, in its place of first appearance
        out = np.full(len(codes), default, dtype=object)
        out[~missing] = labels.to_numpy(dtype=object)[codes[~missing]]
        return categorical_strings(out)
    return pd.Categorical.from_codes(codes, labels)


def _id_string(value: object, *, row: int, column: str, what: str) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, numbers.Real | bytes) or not hasattr(value, "__len__"):
        return str(value)
    raise SchemaError(
        f"{what}: row {row}, column {column!r}: id {value!r} is a {type(value).__name__}; "
        "ids must be strings or integers."
    )


def missing_mask(series: pd.Series) -> np.ndarray:
    """Vectorised :func:`is_missing` over a column (bool array)."""
    if isinstance(series.dtype, pd.CategoricalDtype):  # its blank strings are missing too
        series = series.astype(object)
    mask = series.isna().to_numpy(dtype=bool, copy=True)
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        if series.dtype != object or pd.api.types.infer_dtype(series, skipna=True) == "string":
            is_str = ~mask  # every present value is a str
        else:
            is_str = np.fromiter((isinstance(v, str) for v in series.tolist()), dtype=bool,
                                 count=len(series))
        if is_str.any():
            blank = series[is_str].astype(str).str.strip().eq("").to_numpy(dtype=bool)
            mask[np.flatnonzero(is_str)[blank]] = True
    return mask


def numeric_column(
    series: pd.Series, *, column: str, what: str, allow_missing: bool = True
) -> np.ndarray:
    """Parse a column as float64; text that is not a number, or inf, is an error naming the row."""
    parsed = pd.to_numeric(series, errors="coerce").astype("float64").to_numpy(copy=True)
    originally_missing = missing_mask(series)
    bad = np.flatnonzero(np.isnan(parsed) & ~originally_missing)
    if bad.size:
        row = int(bad[0])
        raise SchemaError(
            f"{what}: {_rows(bad.tolist())}, column {column!r}: value {series.iloc[row]!r} is not a "
            "number; fix or blank it."
        )
    infinite = np.flatnonzero(np.isinf(parsed))
    if infinite.size:
        raise SchemaError(
            f"{what}: {_rows(infinite.tolist())}, column {column!r}: value is infinite; "
            "use a finite number or leave it blank."
        )
    if not allow_missing and originally_missing.any():
        rows = np.flatnonzero(originally_missing).tolist()
        raise SchemaError(f"{what}: {_rows(rows)}, column {column!r}: value is missing (NaN/blank).")
    return parsed


def label_strings(series: pd.Series, *, column: str, what: str, default: str) -> np.ndarray:
    """A label column (event types) as stripped, lower-case ``str`` (``default`` where missing);
    numbers are formatted, anything else (bytes, lists, dicts) is an error naming the row."""
    if pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):  # the common case, vectorised
        out = series.astype(object).str.strip().str.lower().to_numpy(dtype=object, copy=True)
        out[missing_mask(series)] = default
        return out
    out = np.empty(len(series), dtype=object)
    for row, value in enumerate(series.tolist()):
        if is_missing(value):
            out[row] = default
        elif isinstance(value, str):
            out[row] = value.strip().lower()
        elif isinstance(value, numbers.Real) and not isinstance(value, bool):
            out[row] = _id_string(value, row=row, column=column, what=what).lower()
        else:
            raise SchemaError(
                f"{what}: row {row}, column {column!r}: expected a label (text), got "
                f"{type(value).__name__} ({str(value)[:60]!r}); write it as text."
            )
    return out


def text_value(value: object, *, row: int, column: str, what: str) -> str:
    """One text cell as ``str`` ('' when missing); numbers are formatted, lists of words joined."""
    if is_missing(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Number):
        return str(value)
    if isinstance(value, list | tuple | np.ndarray) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    raise SchemaError(
        f"{what}: row {row}, column {column!r}: expected text, got {type(value).__name__} "
        f"({str(value)[:60]!r})."
    )


def path_value(value: object, *, row: int, column: str, what: str) -> str | None:
    """One file-path cell as ``str`` or ``None`` when missing."""
    if is_missing(value):
        return None
    if isinstance(value, str):
        return value.strip()
    raise SchemaError(
        f"{what}: row {row}, column {column!r}: expected a file path (text), "
        f"got {type(value).__name__} ({str(value)[:60]!r})."
    )


def positions_of(id_index: pd.Index, item_ids: Sequence[str], *, what: str) -> np.ndarray:
    """Dense positions (int64) of ``item_ids`` in ``id_index``; an unknown id is a SchemaError."""
    wanted = pd.Index([str(i) for i in item_ids], dtype=object)
    positions = id_index.get_indexer(wanted).astype(np.int64)
    if (positions < 0).any():
        unknown = wanted[int(np.flatnonzero(positions < 0)[0])]
        raise SchemaError(f"{what}: unknown item id {unknown!r}.")
    return positions
