"""User attributes (age, gender, occupation, country …) as inputs of the user tower.

:class:`UserFeatureSchema` is fitted once on a table of user attributes: categorical columns get a
vocabulary (index 0 = missing, 1 = a value not seen at fit), numeric columns a mean and a scale.
It turns any later table into integer codes and z-scored floats, aligned with a list of user ids;
what it cannot read is an error naming the column and the user, and what it maps to "unknown"
(new categories, users without a row) is counted and reported, never silently misaligned.
:class:`AttributeEncoder` embeds the codes (one table per column, summed with a linear map of the
numbers) into one vector per user, the tower's view of who the user is before any event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmrec.errors import SchemaError

__all__ = ["UserFeatureSchema", "UserCodes", "AttributeEncoder", "as_attribute_table"]

logger = logging.getLogger(__name__)

MISSING, UNSEEN = 0, 1  # reserved codes of every categorical column
MIN_COUNT = 2  # a category seen fewer times at fit shares the "unseen" code (zip codes of one user)


def as_attribute_table(frame: Any, *, where: str = "user attributes") -> pd.DataFrame:
    """``frame`` as a DataFrame indexed by user id (str): indexed already, or with a ``user``
    column. Duplicate ids and empty tables are errors."""
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(f"{where}: expected a pandas DataFrame of user attributes, got "
                          f"{type(frame).__name__}.")
    table = frame.set_index("user") if "user" in frame.columns else frame.copy()
    table.index = pd.Index([str(u) for u in table.index], dtype=object, name="user")
    if table.shape[1] == 0:
        raise SchemaError(f"{where}: the table has no attribute column (only the user ids).")
    duplicated = table.index[table.index.duplicated()]
    if len(duplicated):
        raise SchemaError(f"{where}: user {duplicated[0]!r} has {int((table.index == duplicated[0]).sum())} "
                          "rows; give one row per user.")
    return table


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


@dataclass(frozen=True)
class UserCodes:
    """Attributes of a list of users: ``categories`` ``(n, C)`` int64 codes, ``numbers`` ``(n, N)``
    float32 (z-scored, 0 where missing), ``known`` ``(n,)`` whether the user has a row at all."""

    categories: np.ndarray
    numbers: np.ndarray
    known: np.ndarray

    def rows(self, index: np.ndarray) -> UserCodes:
        return UserCodes(self.categories[index], self.numbers[index], self.known[index])

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(self.categories).to(device), torch.from_numpy(self.numbers).to(device))


@dataclass(frozen=True)
class UserFeatureSchema:
    """Fitted description of the user-attribute columns (saved with the model as JSON)."""

    categorical: dict[str, list[str]]        # column -> vocabulary (code = position + 2)
    numeric: dict[str, tuple[float, float]]  # column -> (mean, scale)

    @classmethod
    def fit(cls, table: pd.DataFrame) -> UserFeatureSchema:
        """Learn vocabularies and numeric statistics from ``table`` (see :func:`as_attribute_table`)."""
        table = as_attribute_table(table)
        categorical: dict[str, list[str]] = {}
        numeric: dict[str, tuple[float, float]] = {}
        for name in table.columns:
            column = table[name]
            if column.notna().sum() == 0:
                raise SchemaError(f"user attributes: column {name!r} has no value for any user; drop it.")
            if _is_numeric(column):
                values = column.to_numpy(np.float64)
                bad = ~np.isfinite(values) & ~np.isnan(values)
                if bad.any():
                    user = table.index[np.flatnonzero(bad)[0]]
                    raise SchemaError(f"user attributes: column {name!r} of user {user!r} is "
                                      f"{values[bad][0]}; numbers must be finite (NaN means missing).")
                mean, scale = float(np.nanmean(values)), float(np.nanstd(values))
                numeric[str(name)] = (mean, scale if scale > 0 else 1.0)
            else:
                counts = column.dropna().astype(str).value_counts(sort=False)
                vocabulary = sorted(counts.index[counts >= MIN_COUNT].tolist())
                categorical[str(name)] = vocabulary
        return cls(categorical, numeric)

    @property
    def columns(self) -> list[str]:
        return [*self.categorical, *self.numeric]

    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows per categorical column (vocabulary + missing + unseen)."""
        return [len(v) + 2 for v in self.categorical.values()]

    def to_dict(self) -> dict[str, Any]:
        return {"categorical": self.categorical, "numeric": {k: list(v) for k, v in self.numeric.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserFeatureSchema:
        return cls({str(k): [str(v) for v in vocab] for k, vocab in data["categorical"].items()},
                   {str(k): (float(v[0]), float(v[1])) for k, v in data["numeric"].items()})

    def encode(self, table: pd.DataFrame | None, users: np.ndarray, *, where: str = "user attributes"
               ) -> UserCodes:
        """Codes for ``users`` (in that order) from ``table``; users without a row get missing
        codes (``known`` False). Columns the schema needs must be present; NaN is missing;
        categories not seen at fit map to the "unseen" code and are reported."""
        n = len(users)
        categories = np.zeros((n, len(self.categorical)), dtype=np.int64)
        numbers = np.zeros((n, len(self.numeric)), dtype=np.float32)
        if table is None or n == 0:
            return UserCodes(categories, numbers, np.zeros(n, dtype=bool))
        absent = [c for c in self.columns if c not in table.columns]
        if absent:
            raise SchemaError(f"{where}: column(s) {absent} are missing; the model was fitted with "
                              f"{self.columns}.")
        rows = table.index.get_indexer(pd.Index(np.asarray(users, dtype=object)))
        known = rows >= 0
        picked = table.iloc[rows[known]]
        for j, (name, vocabulary) in enumerate(self.categorical.items()):
            values = picked[name]
            codes = pd.Index(vocabulary).get_indexer(values.astype(str).to_numpy(dtype=object)) + 2
            codes = np.where(codes >= 2, codes, UNSEEN)
            codes = np.where(values.isna().to_numpy(), MISSING, codes)
            unseen = np.flatnonzero(codes == UNSEEN)
            if unseen.size:
                logger.info("%s: %d user(s) have a %r value not seen at fit (e.g. %r of user %r); it is "
                            "read as unknown", where, unseen.size, name, values.iloc[unseen[0]],
                            picked.index[unseen[0]])
            categories[known, j] = codes
        for j, (name, (mean, scale)) in enumerate(self.numeric.items()):
            column = picked[name]
            if not _is_numeric(column) and column.notna().any():
                raise SchemaError(f"{where}: column {name!r} must be numeric (it was at fit); user "
                                  f"{picked.index[0]!r} has {column.iloc[0]!r}.")
            values = column.to_numpy(np.float64)
            bad = np.isinf(values)
            if bad.any():
                user = picked.index[np.flatnonzero(bad)[0]]
                raise SchemaError(f"{where}: column {name!r} of user {user!r} is infinite.")
            numbers[known, j] = np.nan_to_num((values - mean) / scale, nan=0.0).astype(np.float32)
        return UserCodes(categories, numbers, known)


class AttributeEncoder(nn.Module):
    """Codes → one ``dim`` vector per user: summed column embeddings (missing = a zero row) plus a
    linear map of the numeric columns."""

    def __init__(self, cardinalities: list[int], n_numeric: int, dim: int) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(size, dim, padding_idx=MISSING)
                                        for size in cardinalities)
        for table in self.embeddings:
            nn.init.normal_(table.weight, std=0.1)
            with torch.no_grad():
                table.weight[MISSING].zero_()
        self.numeric = nn.Linear(n_numeric, dim, bias=False) if n_numeric else None

    def forward(self, categories: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(categories.shape[0], self._dim(), device=categories.device)
        for j, table in enumerate(self.embeddings):
            total = total + table(categories[:, j])
        if self.numeric is not None:
            total = total + self.numeric(numbers)
        return total

    def _dim(self) -> int:
        if len(self.embeddings):
            return self.embeddings[0].embedding_dim
        assert self.numeric is not None
        return self.numeric.out_features
