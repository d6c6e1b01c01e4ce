"""Catalog attributes (genres, brand, year, price …) as one more content modality.

Text encoders read a genre list as words and a year as a token; a new item's genre set and release
year are often what places it best. :func:`add_attribute_modality` turns the chosen catalog
columns into an ``attributes`` modality of an :class:`ItemVectors`: a numeric column becomes a
one-hot of its quantile bin (plus "missing"), any other column a multi-hot of its tokens (split on
``|``, ``,``, ``;`` or whitespace; tokens seen at least ``min_count`` times, the ``max_tokens``
most frequent per column). The two-tower embeds it like any modality (and cold items are placed by
it too)::

    items = mmrec.encode_items(catalog)
    items = add_attribute_modality(items, catalog, columns=["genres", "year"])
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmrec.data.catalog import Catalog
from mmrec.errors import SchemaError
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["attribute_matrix", "add_attribute_modality", "encode_attributes", "fit_attribute_spec",
           "ATTRIBUTES"]

ATTRIBUTES = "attributes"  # the modality's name
TOKEN_SPLIT = re.compile(r"[|,;\s]+")


def _tokens(values: pd.Series) -> list[list[str]]:
    return [[t for t in TOKEN_SPLIT.split(str(v).strip().lower()) if t] if pd.notna(v) else []
            for v in values]


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def fit_attribute_spec(frame: pd.DataFrame, columns: Sequence[str], *, bins: int = 10, min_count: int = 2,
                       max_tokens: int = 200) -> dict:
    """Per column, the quantile-bin edges (numeric) or the token vocabulary (anything else):
    JSON-able, stored with the vectors so that new items are encoded the same way."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"attribute columns {missing} are not in the catalog (it has "
                          f"{list(frame.columns)}).")
    if not columns:
        raise SchemaError("add_attribute_modality: name at least one catalog column.")
    blocks = []
    for column in columns:
        values = frame[column]
        if _is_numeric(values):
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
            numbers = numbers[np.isfinite(numbers)]
            edges = np.unique(np.quantile(numbers, np.linspace(0, 1, bins + 1)[1:-1])) if len(numbers) else []
            blocks.append({"column": column, "kind": "numeric", "edges": [float(e) for e in edges]})
        else:
            counts = pd.Series([t for row in _tokens(values) for t in set(row)], dtype=object).value_counts()
            kept = sorted(((-int(n), str(t)) for t, n in counts.items() if n >= min_count))  # ties by token
            blocks.append({"column": column, "kind": "tokens",
                           "vocabulary": [t for _, t in kept[:max_tokens]]})
    return {"columns": list(columns), "blocks": blocks}


def attribute_matrix(frame: pd.DataFrame, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(n, d)`` float32 attribute vectors of ``frame``'s rows under ``spec`` and a bool mask (rows
    with at least one attribute). A numeric bin has one extra "missing" column."""
    out = []
    for block in spec["blocks"]:
        if block["column"] not in frame.columns:
            raise SchemaError(f"attribute column {block['column']!r} is not in the catalog.")
        values = frame[block["column"]]
        if block["kind"] == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
            present = np.isfinite(numbers)
            edges = np.asarray(block["edges"], dtype=np.float64)
            matrix = np.zeros((len(values), len(edges) + 2), dtype=np.float32)
            matrix[np.flatnonzero(present), np.searchsorted(edges, numbers[present], side="right")] = 1.0
            matrix[~present, len(edges) + 1] = 1.0
        else:
            vocabulary = pd.Index(block["vocabulary"], dtype=object)
            matrix = np.zeros((len(values), len(vocabulary)), dtype=np.float32)
            for row, words in enumerate(_tokens(values)):
                hits = vocabulary.get_indexer(words)
                matrix[row, hits[hits >= 0]] = 1.0
        out.append(matrix)
    present = frame[[b["column"] for b in spec["blocks"]]].notna().any(axis=1).to_numpy()
    return np.hstack(out).astype(np.float32), present


def add_attribute_modality(items: ItemVectors, catalog: Catalog, *, columns: Sequence[str] | None = None,
                           bins: int = 10, min_count: int = 2, max_tokens: int = 200) -> ItemVectors:
    """``items`` with an ``attributes`` modality made from ``columns`` of ``catalog`` (default: its
    schema's categorical and numeric columns), aligned by item id; the spec is kept in
    ``items.encoders["attributes"]`` (new items are encoded with it)."""
    columns = list(columns if columns is not None else [*catalog.schema.categorical, *catalog.schema.numeric])
    frame = _by_id(catalog)
    absent = pd.Index(items.ids).difference(frame.index)
    if len(absent):
        raise SchemaError(f"{len(absent)} item(s) of the vectors are not in the catalog (e.g. "
                          f"{absent[0]!r}).")
    frame = frame.loc[items.ids]
    spec = fit_attribute_spec(frame, columns, bins=bins, min_count=min_count, max_tokens=max_tokens)
    matrix, present = attribute_matrix(frame, spec)
    vectors = {**items.vectors, ATTRIBUTES: matrix}
    masks = {**items.masks, ATTRIBUTES: present}
    return ItemVectors(items.ids, vectors, masks, fusion_weights=items.fusion_weights,
                       encoders={**items.encoders, ATTRIBUTES: {"spec": spec}})


def encode_attributes(catalog: Catalog, spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """New items' attribute vectors under a stored ``spec`` (rows: ``catalog.ids``)."""
    return attribute_matrix(_by_id(catalog).loc[[str(i) for i in catalog.ids]], spec)


def _by_id(catalog: Catalog) -> pd.DataFrame:
    frame = catalog.frame.set_index(catalog.schema.id)
    frame.index = frame.index.map(str)
    return frame
