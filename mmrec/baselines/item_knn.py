"""Item-based collaborative filtering: cosine similarity of item columns of the interaction matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from mmrec.baselines.base import FittedItems, check_rows, user_rows
from mmrec.data.interactions import Interactions, as_interactions
from mmrec.data.matrix import interaction_matrix
from mmrec.errors import ConfigError
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["ItemKNN"]


class ItemKNN(FittedItems):
    """Item-KNN: ``score(u, i) = Σ_{j ∈ history(u) ∩ N(i)} sim(j, i)``, ``N(i)`` the ``neighbours``
    items most similar to the candidate ``i`` (RecBole's rule); ``sim`` = cosine of binary item
    columns, ``|a ∩ b| / (‖a‖‖b‖ + shrink)``. ``similarity_[j, i]`` holds ``sim(j, i)`` for ``j ∈ N(i)``."""

    artifact_name = "item_knn"

    def restore_state(self, state: dict, path: Path) -> None:
        super().restore_state(state, path)
        for axis in (0, 1):
            check_rows(path, "similarity_", self.similarity_, len(self._items()), axis)

    def __init__(self, neighbours: int = 100, shrink: float = 0.0, chunk: int = 2048) -> None:
        if neighbours < 1 or shrink < 0:
            raise ConfigError("ItemKNN: neighbours must be >= 1 and shrink >= 0, got "
                              f"{neighbours}, {shrink}.")
        self.neighbours, self.shrink, self.chunk = neighbours, shrink, chunk
        self.similarity_: csr_matrix | None = None

    def fit(self, items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
            valid: Interactions | None = None) -> ItemKNN:
        events = as_interactions(events, caller="ItemKNN.fit")
        self.item_ids_ = self._universe(items, events)
        matrix = interaction_matrix(events, events.users, self.item_ids_).tocsc()
        norms = np.sqrt(np.asarray(matrix.sum(axis=0), dtype=np.float64).ravel())
        n = matrix.shape[1]
        keep = min(self.neighbours, max(n - 1, 1))
        rows, cols, values = [], [], []
        transposed = matrix.T.tocsr()
        for start in range(0, n, self.chunk):
            stop = min(n, start + self.chunk)
            overlap = np.asarray((transposed[start:stop] @ matrix).todense(), dtype=np.float64)
            sim = overlap / (norms[start:stop, None] * norms[None, :] + self.shrink + 1e-12)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0  # an item is not its own neighbour
            best = np.argpartition(-sim, keep - 1, axis=1)[:, :keep] if keep < n else \
                np.tile(np.arange(n), (stop - start, 1))
            picked = np.take_along_axis(sim, best, axis=1)
            nonzero = picked > 0
            rows.append(np.repeat(np.arange(start, stop), keep)[nonzero.ravel()])
            cols.append(best[nonzero])
            values.append(picked[nonzero])
        # row = neighbour j, column = candidate i: a history row times it sums over N(i)
        self.similarity_ = csr_matrix((np.concatenate(values).astype(np.float32),
                                       (np.concatenate(cols), np.concatenate(rows))), shape=(n, n))
        return self

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        ids = self._items()
        assert self.similarity_ is not None
        history = interaction_matrix(events, user_rows(events, users), ids)
        return np.asarray((history @ self.similarity_).todense(), dtype=np.float32)
