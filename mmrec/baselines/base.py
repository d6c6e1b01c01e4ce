"""What every baseline shares: the fitted item universe, ``recommend``, ``save`` and ``load``.

The contract itself (:class:`mmrec.evaluation.protocol.Recommender`) is the harness's; a baseline
implements ``fit`` and ``score_items`` and gets the rest from :class:`FittedItems`:
``recommend`` through :func:`mmrec.ranking.scored.recommend_by_scores` (the same fallback and
columns as :func:`mmrec.recommend`), ``save`` / ``load`` through :mod:`mmrec.utils.state`
(constructor arguments + every fitted ``*_`` attribute; safetensors, JSON, a checked manifest).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.errors import ArtifactError, ConfigError, NotFittedError
from mmrec.ranking.scored import recommend_by_scores
from mmrec.utils.state import load_state, save_state
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["user_rows", "FittedItems", "FactorModel", "check_rows", "ARTIFACT_PREFIX"]

ARTIFACT_PREFIX = "model."  # manifest format of a saved baseline: "model.<artifact_name>"
Model = TypeVar("Model", bound="FittedItems")


def user_rows(events: Interactions, users: Sequence[str] | None) -> np.ndarray:
    """The user ids a score matrix has rows for: ``users`` or every user of ``events``."""
    if users is None:
        return events.users
    return np.asarray([str(u) for u in users], dtype=object)


class FittedItems:
    """Mixin: the fitted item universe, a guard for use before :meth:`fit`, and the shared
    ``recommend`` / ``save`` / ``load`` (see the module doc)."""

    item_ids_: pd.Index | None = None
    artifact_name: ClassVar[str] = ""  # set by each baseline: its saved folders' format name
    state_version: ClassVar[int] = 1

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

    # ----------------------------------------------------------------------------- serving
    def recommend(self, events: Interactions | pd.DataFrame, *, users: Sequence[str] | None = None,
                  k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` items per user: columns ``user, rank, item, score, source``; users without a
        known event get popular unseen items (``source="popularity"``)."""
        return recommend_by_scores(self, events, users=users, k=k, exclude_seen=exclude_seen)

    # ----------------------------------------------------------------------------- persistence
    def get_params(self) -> dict[str, Any]:
        """The constructor arguments (stored under their own names, as in scikit-learn)."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        params = {name: getattr(self, name) for name in names}
        return {name: value.to_dict() if hasattr(value, "to_dict") else value  # EventWeights
                for name, value in params.items()}

    def fitted_state(self) -> dict[str, Any]:
        """What :meth:`fit` computed: every public attribute whose name ends in ``_``."""
        return {name: value for name, value in vars(self).items()
                if name.endswith("_") and not name.startswith("_")}

    def restore_state(self, state: dict[str, Any], path: Path) -> None:
        """Set the loaded ``state``; subclasses check shapes against the ids (``path`` for errors)."""
        for name, value in state.items():
            setattr(self, name, value)
        self._items()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model into a folder, atomically: constructor arguments and ids as JSON, arrays
        as safetensors, a manifest with checksums and shapes (no pickle)."""
        self._items()
        return save_state(path, ARTIFACT_PREFIX + self.artifact_name, params=self.get_params(),
                          state=self.fitted_state(), version=self.state_version)

    @classmethod
    def load(cls: type[Model], path: str | os.PathLike[str]) -> Model:
        """Read a folder written by :meth:`save` (checked before use; an :class:`ArtifactError`
        names what is wrong)."""
        path = Path(path)
        params, state = load_state(path, ARTIFACT_PREFIX + cls.artifact_name, version=cls.state_version)
        try:
            model = cls(**params)
        except (TypeError, ConfigError) as exc:
            raise ArtifactError(f"{path.name}: saved settings do not fit {cls.__name__} ({exc}).") from exc
        model.restore_state(state, path)
        return model


class FactorModel(FittedItems):
    """Mixin of models with ``user_factors_`` (rows: ``user_ids_``) and ``item_factors_`` (rows:
    ``item_ids_``): a load checks both against the saved ids."""

    user_ids_: pd.Index | None = None
    user_factors_: np.ndarray | None = None
    item_factors_: np.ndarray | None = None

    def user_item_vectors(self, events: Interactions, *, users: Sequence[str] | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """User vectors (:meth:`user_factors_of`) and item vectors (rows of :attr:`item_ids_`),
        float32: the scores are their inner products, so an inner-product index over the item
        vectors (:func:`mmrec.index.arrays.inner_product_items`) serves the same ranking."""
        self._items()
        assert self.item_factors_ is not None
        return (np.asarray(self.user_factors_of(events, users=users), dtype=np.float32),
                np.asarray(self.item_factors_, dtype=np.float32))

    def user_factors_of(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        """Each user's trained factors; a user absent from training gets zeros (every item ties)."""
        assert self.user_ids_ is not None and self.user_factors_ is not None
        rows = self.user_ids_.get_indexer(user_rows(events, users))
        return np.where((rows >= 0)[:, None], self.user_factors_[np.maximum(rows, 0)], 0.0)

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        queries, items = self.user_item_vectors(events, users=users)
        return (queries @ items.T).astype(np.float32)

    def restore_state(self, state: dict[str, Any], path: Path) -> None:
        super().restore_state(state, path)
        check_rows(path, "item_factors_", self.item_factors_, len(self._items()))
        check_rows(path, "user_factors_", self.user_factors_,
                   len(self.user_ids_) if self.user_ids_ is not None else -1)


def check_rows(path: Path, name: str, array: Any, expected: int, axis: int = 0) -> None:
    """An :class:`ArtifactError` unless ``array`` has ``expected`` entries along ``axis``."""
    if array is None or array.shape[axis] != expected:
        found = None if array is None else array.shape
        raise ArtifactError(f"{path.name}: {name} has shape {found}, expected {expected} along axis "
                            f"{axis} (the saved ids); re-save the model.")
