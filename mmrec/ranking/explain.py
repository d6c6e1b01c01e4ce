"""Why an item was recommended: which modality and which history items drove it.

For a trained :class:`mmrec.TwoTower`:

- **modalities**: the fusion layer's weight of each modality for the item, times how close the
  item is, in that modality's own content space, to the user's history (cosine of the item's
  vector with the mean of the history items' vectors, floored at 0); normalised to shares. The id
  embedding, when the model has one, counts with its fusion weight and the cosine of the learned
  vectors.
- **history items**: the user's history items whose learned item vectors are closest to the
  recommended one, each with its cosine and its share: a softmax of the cosines over the whole
  history at ``temperature`` (0.1 by default), i.e. how much of a soft nearest-neighbour vote the
  item holds. (Shares of the raw cosines would be ~1/len(history) each for a long history; the
  softmax concentrates the credit on the items that are actually close, as attention would.)

Both are descriptive (they say what the item has in common with the history), not an exact
decomposition of the tower's score; a mean tower's score is exactly the average of the history
similarities, a sequence tower's is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.errors import ConfigError, SchemaError
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["Explainer", "Explanation", "explain", "explain_recommendations"]


@dataclass(frozen=True)
class Explanation:
    """Modality shares (sum to 1 when any is positive) and the history items that drove a score:
    ``because`` holds ``(item, share, cosine)`` from the closest down."""

    user: str
    item: str
    modalities: dict[str, float]
    because: list[tuple[str, float, float]]

    def __str__(self) -> str:
        ranked = sorted(self.modalities.items(), key=lambda pair: -pair[1])
        shares = ", ".join(f"{m} {s:.0%}" for m, s in ranked if s)
        history = (", ".join(f"{i} ({s:.0%}, cos {c:.2f})" for i, s, c in self.because)
                   or "nothing in the history")
        return f"{self.item}: modalities [{shares or 'none'}]; because of {history}"


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1.0)


class Explainer:
    """Shares the learned vectors, fusion weights and content across many explanations."""

    def __init__(self, model, items: ItemVectors | None, temperature: float = 0.1) -> None:
        if temperature <= 0:
            raise ConfigError(f"explain: temperature must be > 0, got {temperature}.")
        self.items, self.temperature = items, temperature
        learned = model.encode_items(items)
        self.ids = pd.Index(learned.ids)
        fused = np.asarray(learned.fused, dtype=np.float64)
        width = getattr(getattr(model, "config", None), "dim", None)  # the learned part, not a cold blend
        self.learned = _unit(fused[:, :width] if width else fused)
        self.weights = model.modality_weights(items)

    def explain(self, user: str, item: str, history_items: np.ndarray, top: int) -> Explanation:
        row = self.ids.get_indexer([item])[0]
        if row < 0:
            raise SchemaError(f"explain: item {item!r} has no vector (not in the model's items).")
        known = self.ids.get_indexer(history_items)
        history_rows = known[known >= 0]
        if not len(history_rows):
            return Explanation(user, item, {}, [])
        similarity = self.learned[history_rows] @ self.learned[row]
        order = np.argsort(-similarity, kind="stable")[:top]
        vote = np.exp((similarity - similarity.max()) / self.temperature)
        share = vote / vote.sum()
        because = [(str(self.ids[history_rows[i]]), float(share[i]), float(similarity[i])) for i in order]
        return Explanation(user, item, self._modalities(row, history_rows), because)

    def _modalities(self, row: int, history_rows: np.ndarray) -> dict[str, float]:
        weights = self.weights.iloc[row]
        raw: dict[str, float] = {}
        for token, weight in weights.items():
            if token == "id":
                closeness = float(_unit(self.learned[history_rows].mean(axis=0)) @ self.learned[row])
            else:
                closeness = self._content_closeness(str(token), row, history_rows)
            raw[str(token)] = float(weight) * max(closeness, 0.0)
        total = sum(raw.values())
        return {k: v / total if total > 0 else 0.0 for k, v in raw.items()}

    def _content_closeness(self, modality: str, row: int, history_rows: np.ndarray) -> float:
        if self.items is None or modality not in self.items.vectors:
            return 0.0
        positions = self.items.positions(list(self.ids[np.append(history_rows, row)]))
        vectors = np.asarray(self.items.vectors[modality][positions], dtype=np.float64)
        present = np.asarray(self.items.masks[modality][positions], dtype=bool)
        if not present[-1] or not present[:-1].any():
            return 0.0
        centre = _unit(_unit(vectors[:-1][present[:-1]]).mean(axis=0))
        return float(centre @ _unit(vectors[-1]))


def _history_items(history: Interactions, user: str) -> np.ndarray:
    frame = history.frame
    return pd.unique(frame.loc[frame["user"] == user, "item"].to_numpy(dtype=object))


def explain(model, items: ItemVectors | None, history: Interactions, user: str, item: str, *,
            top: int = 3, temperature: float = 0.1) -> Explanation:
    """Why ``model`` scores ``item`` for ``user`` given their ``history`` (see the module doc)."""
    user = str(user)
    return Explainer(model, items, temperature).explain(user, str(item), _history_items(history, user), top)


def explain_recommendations(model, items: ItemVectors | None, history: Interactions,
                            recommendations: pd.DataFrame, *, top: int = 2,
                            labels: Mapping[str, str] | None = None,
                            temperature: float = 0.1) -> pd.DataFrame:
    """``recommendations`` (``user, rank, item, ...``) plus ``modalities`` (each modality's share)
    and ``because`` (the closest history items with their shares), as text; ``labels`` maps item
    ids to what to print for them (titles)."""
    labels = labels or {}
    explainer = Explainer(model, items, temperature)
    histories = {u: _history_items(history, u) for u in pd.unique(recommendations["user"])}
    modalities, because = [], []
    for user, item in recommendations[["user", "item"]].itertuples(index=False):
        why = explainer.explain(str(user), str(item), histories[user], top)
        ranked = sorted(why.modalities.items(), key=lambda x: -x[1])
        modalities.append(", ".join(f"{m} {s:.0%}" for m, s in ranked if s >= 0.005))
        because.append(", ".join(f"{labels.get(i, i)} {s:.0%} (cos {c:.2f})"
                                 for i, s, c in why.because))
    return recommendations.assign(modalities=modalities, because=because)
