"""EASE (Steck, 2019): a closed-form item-item linear autoencoder, a strong full-ranking baseline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmrec.baselines.base import FittedItems, check_rows, user_rows
from mmrec.data.interactions import Interactions, as_interactions
from mmrec.data.matrix import interaction_matrix
from mmrec.errors import ConfigError
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["EASE"]


class EASE(FittedItems):
    """``B = I - P / diag(P)`` with ``P = (XᵀX + λI)⁻¹`` (zero diagonal); ``score = X_history B``.

    Dense in the number of items: ``max_items`` (default 30,000 ≈ 3.6 GB float32) guards memory.
    """

    artifact_name = "ease"

    def restore_state(self, state: dict, path: Path) -> None:
        super().restore_state(state, path)
        for axis in (0, 1):
            check_rows(path, "weights_", self.weights_, len(self._items()), axis)

    def __init__(self, l2: float = 250.0, max_items: int = 30_000) -> None:
        if l2 <= 0:
            raise ConfigError(f"EASE: l2 must be > 0, got {l2}.")
        self.l2, self.max_items = l2, max_items
        self.weights_: np.ndarray | None = None

    def fit(self, items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
            valid: Interactions | None = None) -> EASE:
        events = as_interactions(events, caller="EASE.fit")
        self.item_ids_ = self._universe(items, events)
        n = len(self.item_ids_)
        if n > self.max_items:
            raise ConfigError(f"EASE needs a dense {n}×{n} matrix; {n} items exceed max_items="
                              f"{self.max_items} (raise it if the memory is there).")
        matrix = interaction_matrix(events, events.users, self.item_ids_)
        gram = torch.from_numpy(np.asarray((matrix.T @ matrix).todense(), dtype=np.float64))
        gram += self.l2 * torch.eye(n, dtype=torch.float64)
        precision = torch.linalg.inv(gram)
        weights = -precision / torch.diagonal(precision)[None, :]
        weights.fill_diagonal_(0.0)
        self.weights_ = weights.to(torch.float32).numpy()
        return self

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        ids = self._items()
        assert self.weights_ is not None
        history = interaction_matrix(events, user_rows(events, users), ids)
        return np.asarray(history @ self.weights_, dtype=np.float32)
