"""The Recommender contract: what every model implements, the learned ones and the baselines alike.

Owned by its consumers (the harness, ``mmrec recommend`` / ``evaluate`` / ``serve``, the registry);
models implement it structurally and import nothing from here.

A recommender

- is fitted on training events: ``fit(items, events, *, valid=None)`` (``items`` are the
  :class:`~mmrec.ItemVectors` of content models, ``None`` for id-only ones; ``events`` an
  :class:`~mmrec.Interactions` or a DataFrame of events);
- knows its items: ``item_ids_``, a ``pd.Index`` of raw ids (the score columns);
- scores them for users from their histories: ``score_items(events, *, users=None)`` →
  ``(n_users, n_items)`` float32, seen items not masked;
- recommends with one fallback and one set of columns: ``recommend(events, *, users=None, k=10,
  exclude_seen=True)`` → DataFrame ``user, rank, item, score, source`` (``source`` is ``"model"``, or
  ``"popularity"`` for a user without a known event), as :func:`mmrec.recommend` returns;
- saves and loads: ``save(path)`` writes a folder (safetensors arrays, JSON ids and settings, a
  checksummed manifest; no pickle), ``load(path)`` (a classmethod) reads it back, checked.
  :func:`mmrec.evaluation.registry.load_model` opens any saved model by its manifest.

Vector models (two-tower, LightGCN, BPR, content mean) also implement :class:`VectorRecommender`:
their scores are inner products of user and item vectors, so an ANN index serves them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["Recommender", "VectorRecommender", "RatingPredictor"]


@runtime_checkable
class Recommender(Protocol):
    """Every model: fit, score, recommend, save and load (see the module doc)."""

    item_ids_: pd.Index | None

    def fit(self, items: ItemVectors | None, events: Interactions, *,
            valid: Interactions | None = None) -> Any: ...

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray: ...

    def recommend(self, events: Interactions, *, users: Sequence[str] | None = None, k: int = 10,
                  exclude_seen: bool = True) -> pd.DataFrame: ...

    def save(self, path: str | os.PathLike[str]) -> Path: ...

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any: ...


@runtime_checkable
class VectorRecommender(Recommender, Protocol):
    """A model whose scores are ``user_vector · item_vector``."""

    def user_item_vectors(self, events: Interactions, *, users: Sequence[str] | None = None
                          ) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class RatingPredictor(Protocol):
    """A model that also predicts explicit ratings (RMSE/MAE/accuracy in the harness)."""

    def predict_ratings(self, history: Interactions, pairs: pd.DataFrame) -> np.ndarray: ...
