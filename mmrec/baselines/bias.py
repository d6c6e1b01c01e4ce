"""Rating baseline: global mean + user bias + item bias, fitted by regularised alternating means."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mmrec.baselines.base import FittedItems, user_rows
from mmrec.data.interactions import EventWeights, Interactions, as_interactions
from mmrec.errors import ConfigError
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["BiasBaseline"]


def _rated(events: Interactions, explicit: tuple[str, ...]) -> pd.DataFrame:
    frame = events.frame
    keep = frame["event"].isin(explicit).to_numpy() & frame["value"].notna().to_numpy()
    return frame.loc[keep, ["user", "item", "value"]]


class BiasBaseline(FittedItems):
    """``r̂(u, i) = μ + b_u + b_i`` (Koren's baseline predictor); ranks items by ``b_i``. The biases
    shrink towards 0 with ``reg`` pseudo-ratings, so an item rated once does not top the list."""

    artifact_name = "bias"

    def __init__(self, reg: float = 10.0, sweeps: int = 10,
                 event_weights: EventWeights | Mapping[str, Any] | None = None) -> None:
        if reg < 0 or sweeps < 1:
            raise ConfigError(f"BiasBaseline: reg must be >= 0 and sweeps >= 1, got {reg}, {sweeps}.")
        self.reg, self.sweeps = reg, sweeps
        self.event_weights = EventWeights.coerce(event_weights)
        self.explicit = self.event_weights.explicit
        self.mean_ = 0.0
        self.user_bias_: pd.Series | None = None
        self.item_bias_: pd.Series | None = None

    def fit(self, items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
            valid: Interactions | None = None) -> BiasBaseline:
        events = as_interactions(events, caller="BiasBaseline.fit")
        self.item_ids_ = self._universe(items, events)
        rated = _rated(events, self.explicit)
        if rated.empty:
            raise ConfigError(f"BiasBaseline needs explicit events ({list(self.explicit)}) with values.")
        values = rated["value"].to_numpy(np.float64)
        users, items_ = rated["user"].to_numpy(dtype=object), rated["item"].to_numpy(dtype=object)
        self.mean_ = float(values.mean())
        user_bias = pd.Series(0.0, index=pd.unique(users))
        item_bias = pd.Series(0.0, index=pd.unique(items_))
        for _ in range(self.sweeps):
            residual = values - self.mean_ - user_bias.reindex(users).to_numpy()
            grouped = pd.Series(residual).groupby(items_)
            item_bias = grouped.sum() / (grouped.size() + self.reg)
            residual = values - self.mean_ - item_bias.reindex(items_).to_numpy()
            grouped = pd.Series(residual).groupby(users)
            user_bias = grouped.sum() / (grouped.size() + self.reg)
        self.user_bias_, self.item_bias_ = user_bias, item_bias
        return self

    def predict_ratings(self, history: Interactions, pairs: pd.DataFrame) -> np.ndarray:
        """Predicted rating for each ``(user, item)`` row of ``pairs`` (unknown ids: bias 0)."""
        self._items()
        assert self.user_bias_ is not None and self.item_bias_ is not None
        user = self.user_bias_.reindex(pairs["user"].to_numpy(dtype=object)).fillna(0.0).to_numpy()
        item = self.item_bias_.reindex(pairs["item"].to_numpy(dtype=object)).fillna(0.0).to_numpy()
        return self.mean_ + user + item

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        ids = self._items()
        assert self.item_bias_ is not None
        bias = self.item_bias_.reindex(ids).fillna(-np.inf).to_numpy(np.float32)
        return np.broadcast_to(bias, (len(user_rows(events, users)), len(ids))).copy()
