"""What every recommender in the evaluation harness offers, and the interaction matrix they share.

A recommender is fitted on training events (``fit(items, events, valid=None)``), knows its items
(``item_ids_``, a ``pd.Index``) and scores them for users from their histories
(``score_items(events, users=...)`` → ``(n_users, n_items)`` float32, seen items not masked).
:class:`mmrec.TwoTower` has the same three members, so learned models and baselines run through
the same harness, splits and metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from mmrec.data.interactions import Interactions
from mmrec.errors import NotFittedError
from mmrec.item_vectors import ItemVectors

__all__ = ["Recommender", "RatingPredictor", "interaction_matrix", "user_rows", "FittedItems"]


@runtime_checkable
class Recommender(Protocol):
    """The harness's view of a model (baselines and :class:`mmrec.TwoTower` alike)."""

    item_ids_: pd.Index | None

    def fit(self, items: ItemVectors | None, events: Interactions, *,
            valid: Interactions | None = None) -> Recommender: ...

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray: ...


@runtime_checkable
class RatingPredictor(Protocol):
    """A model that also predicts explicit ratings (RMSE/MAE/accuracy in the harness)."""

    def predict_ratings(self, history: Interactions, pairs: pd.DataFrame) -> np.ndarray: ...


def user_rows(events: Interactions, users: Sequence[str] | None) -> np.ndarray:
    """The user ids a score matrix has rows for: ``users`` or every user of ``events``."""
    if users is None:
        return events.users
    return np.asarray([str(u) for u in users], dtype=object)


def interaction_matrix(events: Interactions, users: np.ndarray, items: pd.Index, *,
                       binary: bool = True) -> csr_matrix:
    """``(len(users), len(items))`` float32 CSR of who touched what (events on unknown users or
    items are left out); ``binary`` counts a (user, item) pair once however many events it has."""
    frame = events.frame
    rows = pd.Index(users).get_indexer(frame["user"].to_numpy(dtype=object))
    cols = items.get_indexer(frame["item"].to_numpy(dtype=object))
    keep = (rows >= 0) & (cols >= 0)
    matrix = csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
                        shape=(len(users), len(items)), dtype=np.float32)
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix


class FittedItems:
    """Mixin: the fitted item universe and a guard for use before :meth:`fit`."""

    item_ids_: pd.Index | None = None

    def _items(self) -> pd.Index:
        if self.item_ids_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(items, events) first.")
        return self.item_ids_

    @staticmethod
    def _universe(items: ItemVectors | None, events: Interactions) -> pd.Index:
        """Items of the training events, plus every item with vectors (content models)."""
        ids = pd.unique(events.frame["item"].to_numpy(dtype=object))
        if items is not None:
            ids = pd.unique(np.concatenate([ids, np.asarray(items.ids, dtype=object)]))
        return pd.Index(ids)
