"""Content-only recommendation: the user vector is the weighted mean of their items' content vectors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.baselines.base import FittedItems, check_rows, user_rows
from mmrec.data.interactions import EventWeights, Interactions, as_interactions
from mmrec.errors import ConfigError
from mmrec.index import ItemIndex, build_index
from mmrec.ranking.topk import user_vectors
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["ContentMean"]


class ContentMean(FittedItems):
    """No training: cosine between each item's fused content vector (from :func:`mmrec.encode_items`)
    and the event-weighted mean of the user's history vectors (the foundation's ``mmrec.recommend``).
    Scores every item with content, including items no one has touched yet."""

    artifact_name = "content_mean"

    def __init__(self, event_weights: EventWeights | Mapping[str, Any] | None = None,
                 half_life: float | None = None) -> None:
        self.event_weights, self.half_life = EventWeights.coerce(event_weights), half_life
        self.index_: ItemIndex | None = None
        self.item_vectors_: np.ndarray | None = None  # rows of item_ids_, fixed at fit

    def fit(self, items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
            valid: Interactions | None = None) -> ContentMean:
        events = as_interactions(events, caller="ContentMean.fit")
        if items is None:
            raise ConfigError("ContentMean needs item vectors (mmrec.encode_items(catalog)).")
        self.index_ = build_index(items, spec="Flat")
        self.item_ids_ = self._universe(items, events.restrict_to_items(items.ids))
        positions = self.index_.positions(list(self.item_ids_))
        self.item_vectors_ = np.asarray(self.index_.vectors[positions], dtype=np.float32)
        return self

    def fitted_state(self) -> dict[str, Any]:
        """The item ids and their vectors (the index is rebuilt from them at load)."""
        return {"item_ids_": self._items(), "item_vectors_": self.item_vectors_}

    def restore_state(self, state: dict[str, Any], path: Path) -> None:
        super().restore_state(state, path)
        check_rows(path, "item_vectors_", self.item_vectors_, len(self._items()))
        self.index_ = build_index(np.asarray(self.item_vectors_, dtype=np.float32),
                                  ids=list(self._items()), spec="Flat")

    def user_item_vectors(self, events: Interactions, *, users: Sequence[str] | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """L2-normalised user vectors and item vectors (rows of :attr:`item_ids_`): the scores are
        their inner products, so an ANN index over the item vectors serves the same ranking."""
        self._items()
        assert self.index_ is not None and self.item_vectors_ is not None
        profile = user_vectors(self.index_, events, users=list(user_rows(events, users)),
                               event_weights=self.event_weights, half_life=self.half_life)
        return profile.vectors.astype(np.float32), self.item_vectors_

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        queries, items = self.user_item_vectors(events, users=users)
        return queries @ items.T
