"""Online interest: new feedback moves a user's recommendations at once, with no retraining and no
index rebuild.

Each user's vector is ``normalise((1 - α) · long + α · short)``:

- ``long`` is the trained tower's output over the user's history, computed once (lazily) and
  again on :meth:`OnlineRecommender.refresh` or every ``refresh_every`` new events;
- ``short`` is an exponentially decayed, event-weighted sum of the learned vectors of the items
  observed since: ``short ← 0.5^(Δt / half_life) · short + w(event) · item`` — O(dim) work per
  event, so :meth:`observe` costs microseconds whatever the history length.

Items come from the model's item table, or — for items added later from their content — from the
index the recommender serves (``index.add`` of ``model.encode_items(new_items)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmrec.data.interactions import EventWeights, Interactions
from mmrec.errors import ConfigError, SchemaError
from mmrec.index import ItemIndex
from mmrec.recommend import popular_order, top_unseen

__all__ = ["OnlineRecommender", "UserState"]

COLUMNS = ["user", "item", "timestamp", "event", "value"]


@dataclass
class UserState:
    """What the recommender keeps per user (ids and vectors only, never raw event text)."""

    long: np.ndarray | None = None          # tower vector at the last refresh (None: not yet computed)
    short: np.ndarray | None = None         # decayed sum of observed item vectors since then
    last_time: float | None = None          # timestamp of the last observed event
    new_events: int = 0                     # events since the last refresh


class OnlineRecommender:
    """Serve a trained :class:`mmrec.TwoTower` from an index and fold in feedback as it arrives.

    Parameters
    ----------
    model : TwoTower
        Its ``encode_users`` gives the long-term vectors; its learned item vectors the short-term.
    index : ItemIndex
        Built from ``model.encode_items(items)``; new items may be added to it at any time.
    history : Interactions, optional
        Behaviour so far (the users' long-term histories); observed events are appended to it.
    alpha : float
        Weight of the short-term vector (0: frozen long-term vector, 1: only the new events).
    half_life : float
        Seconds for an observed event's weight in the short-term vector to halve.
    refresh_every : int, optional
        Re-run the tower over the whole history after this many new events of a user.
    """

    def __init__(self, model, index: ItemIndex, *, history: Interactions | None = None,
                 alpha: float = 0.5, half_life: float = 3600.0, refresh_every: int | None = None,
                 event_weights: EventWeights | None = None) -> None:
        if not 0 <= alpha <= 1 or half_life <= 0 or (refresh_every is not None and refresh_every < 1):
            raise ConfigError(f"OnlineRecommender: alpha must be in [0, 1], half_life > 0 and "
                              f"refresh_every >= 1; got {alpha}, {half_life}, {refresh_every}.")
        if model.config.dim != index.dim:
            raise ConfigError(f"the model's vectors have {model.config.dim} dimensions, the index "
                              f"{index.dim}; build the index from model.encode_items(...).")
        self.model, self.index = model, index
        self.alpha, self.half_life, self.refresh_every = alpha, half_life, refresh_every
        self.event_weights = event_weights or model.event_weights
        self._base = history.frame if history is not None else pd.DataFrame(columns=COLUMNS)
        self._observed: list[tuple[str, str, float, str, float]] = []
        self._items_of = self._base.groupby("user", sort=False)["item"].agg(set).to_dict()
        self._states: dict[str, UserState] = {}

    # ----------------------------------------------------------------------------- state
    @property
    def history(self) -> Interactions:
        """Every event so far: the initial history plus what was observed (and not forgotten)."""
        if self._observed:
            self._base = pd.concat([self._base, pd.DataFrame(self._observed, columns=COLUMNS)],
                                   ignore_index=True)
            self._observed = []
        return Interactions(self._base)

    def _state(self, user: str) -> UserState:
        return self._states.setdefault(user, UserState())

    def refresh(self, user: str) -> None:
        """Recompute the user's long-term vector with the tower over their whole history."""
        state = self._state(str(user))
        frame = self.history.frame
        events = Interactions(frame.loc[(frame["user"] == str(user)).to_numpy()])
        profile = self.model.encode_users(events, users=[str(user)])
        state.long = profile.vectors[0] if profile.has_signal[0] else None
        state.short, state.new_events = None, 0

    def _item_vector(self, item: str) -> np.ndarray:
        position = self.index.positions([item])[0] if self.index.contains([item])[0] else -1
        if position < 0:
            raise SchemaError(f"observe: item {item!r} is not in the index; add it first "
                              "(index.add(model.encode_items(new_items))).")
        return np.asarray(self.index.vectors[position], dtype=np.float32)

    # ----------------------------------------------------------------------------- feedback
    def observe(self, user: str, item: str, event: str = "click", value: float = 1.0,
                timestamp: float | None = None) -> None:
        """Fold one event into ``user``'s short-term interest (and history) at once."""
        user, item = str(user), str(item)
        if value is None or not np.isfinite(value):
            raise SchemaError(f"observe: event {event!r} of user {user!r} on {item!r} has value {value}.")
        vector = self._item_vector(item)
        state = self._state(user)
        if state.long is None and state.new_events == 0 and self._items_of.get(user):
            self.refresh(user)  # first touch of a user with a history: the tower runs once
        now = float(timestamp) if timestamp is not None else (state.last_time or 0.0) + 1.0
        weight = float(self.event_weights.positive(np.array([event], dtype=object),
                                                   np.array([value], dtype=np.float64))[0])
        elapsed = max(now - state.last_time, 0.0) if state.last_time is not None else 0.0
        decay = 0.5 ** (elapsed / self.half_life)
        state.short = (decay * state.short if state.short is not None else 0.0) + weight * vector
        state.last_time, state.new_events = now, state.new_events + 1
        self._items_of.setdefault(user, set()).add(item)
        self._observed.append((user, item, now, str(event), float(value)))
        if self.refresh_every is not None and state.new_events >= self.refresh_every:
            self.refresh(user)

    def user_vector(self, user: str) -> np.ndarray | None:
        """The current interest vector (L2-normalised), or None for a user with no signal."""
        state = self._state(str(user))
        if state.long is None and state.new_events == 0 and self._items_of.get(str(user)):
            self.refresh(str(user))
        parts = []
        if state.long is not None:
            parts.append((1 - self.alpha if state.short is not None else 1.0) * state.long)
        if state.short is not None and np.linalg.norm(state.short) > 0:
            short = state.short / np.linalg.norm(state.short)
            parts.append((self.alpha if state.long is not None else 1.0) * short)
        if not parts:
            return None
        combined = np.sum(parts, axis=0)
        norm = np.linalg.norm(combined)
        return (combined / norm).astype(np.float32) if norm > 0 else None

    def recommend(self, user: str, k: int = 10, *, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` for ``user`` now (``user, rank, item, score, source``); users with no signal
        get the most popular items of the history (``source`` says which)."""
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}.")
        user = str(user)
        vector = self.user_vector(user)
        seen = sorted(self._items_of.get(user, ())) if exclude_seen else []
        in_index = self.index.contains(seen) if seen else []
        seen_labels = self.index.positions([i for i, ok in zip(seen, in_index, strict=True) if ok])
        if vector is not None:
            scores, labels = self.index.search(vector[None, :], k, exclude_idx=[seen_labels])
            keep = labels[0] >= 0
            return pd.DataFrame({"user": user, "rank": np.arange(1, int(keep.sum()) + 1),
                                 "item": self.index.ids[labels[0][keep]],
                                 "score": scores[0][keep].astype(np.float64), "source": "online"})
        pop, order = popular_order(self.index, self.history)
        picks = top_unseen(order, set(seen_labels.tolist()), k)
        return pd.DataFrame({"user": user, "rank": np.arange(1, len(picks) + 1),
                             "item": self.index.ids[picks], "score": pop[picks], "source": "popularity"})

    # ----------------------------------------------------------------------------- privacy
    def forget(self, user: str) -> int:
        """Remove every event and all state of ``user``; returns how many events were removed."""
        user = str(user)
        frame = self.history.frame
        mine = (frame["user"] == user).to_numpy()
        self._base = frame.loc[~mine].reset_index(drop=True)
        self._states.pop(user, None)
        self._items_of.pop(user, None)
        return int(mine.sum())

    def users(self) -> Sequence[str]:
        """Users with events or state."""
        return sorted(set(self._items_of) | set(self._states))
