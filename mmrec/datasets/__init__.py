"""Real datasets read from installed packages or local paths (never downloaded).

``load_dataset(name)`` returns an object with ``catalog`` (:class:`mmrec.Catalog`) and ``events``
(:class:`mmrec.Interactions`); :data:`DATASETS` lists the names.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from mmrec.datasets.movielens import MovieLens, load_movielens
from mmrec.registry import Registry

__all__ = ["MovieLens", "load_movielens", "load_dataset", "DATASETS"]

DATASETS: Registry[Callable[..., Any]] = Registry("dataset")
DATASETS.add("ml-1m", partial(load_movielens, "ml-1m"), "movielens-1m", "ml1m")
DATASETS.add("ml-100k", partial(load_movielens, "ml-100k"), "movielens-100k", "ml100k")


def load_dataset(name: str, **options: Any) -> Any:
    """The dataset registered as ``name`` (``ml-1m``, ``ml-100k``, ...), with its loader's options."""
    return DATASETS.get(name)(**options)
