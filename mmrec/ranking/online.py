"""Online interest: new feedback moves a user's recommendations at once, with no retraining and no
index rebuild.

Each user's vector is ``normalise((1 - α) · long + α · short)``:

- ``long`` is the trained tower's output over the user's history, computed once (lazily) and
  again on :meth:`OnlineRecommender.refresh` or every ``refresh_every`` new events;
- ``short`` is an exponentially decayed, event-weighted sum of the learned vectors of the items
  observed since: ``short ← 0.5^(Δt / half_life) · short + w(event) · item`` — O(dim) work per
  event, so :meth:`observe` costs microseconds whatever the history length.

A user without a training history is served by the tower over their first ``new_user_events``
events (re-run on each, milliseconds for a handful of events; :meth:`OnlineRecommender.observe_many`
runs it once per batch for every user the batch touched) and by the popularity fallback
(:class:`mmrec.ranking.popularity.PopularityFallback`: per segment, diversified) before their first event.

Items come from the model's item table, or — for items added later from their content — from the
index the recommender serves (``index.add`` of ``model.encode_items(new_items)``).

Memory is bounded per user: the observed events kept are the newest ``max_events_per_user`` (by
default the model's ``max_len``, all the tower ever reads), plus one vector pair and the set of
distinct items the user touched (for seen-item exclusion; at most the catalog). For a fixed set of
users memory stays flat however many events stream in; :meth:`OnlineRecommender.forget` frees all
of a user's state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.interactions import EventWeights, Interactions, as_interactions
from mmrec.data.validation import is_finite_number
from mmrec.errors import ConfigError, SchemaError
from mmrec.index import ItemIndex
from mmrec.ranking.options import RankingOptions, reject_options, resolve_options
from mmrec.ranking.popularity import PopularityFallback
from mmrec.ranking.prior import label_log_popularity, search_with_prior
from mmrec.ranking.rerank import READS_EXPOSURE, ExposureLedger, candidate_count
from mmrec.ranking.topk import diversified

__all__ = ["OnlineRecommender", "UserState", "LiveHistory"]

COLUMNS = ["user", "item", "timestamp", "event", "value"]
EXPOSURE_WINDOW = 1_000  # lists: the recent traffic rerank="exposure" counts in a live recommender


@dataclass
class UserState:
    """What the recommender keeps per user (ids and vectors only, never raw event text)."""

    long: np.ndarray | None = None          # tower vector at the last refresh (None: not yet computed)
    short: np.ndarray | None = None         # decayed sum of observed item vectors since then
    last_time: float | None = None          # timestamp of the last observed event
    new_events: int = 0                     # events since the last refresh
    observed: int = 0                       # events observed in all (only the newest few are kept)


@dataclass
class _PendingRefresh:
    """A refresh a batch deferred to its end: the user's short-term state when it fell due (kept
    in case the tower finds no signal) and how many of their events came after it."""

    short: np.ndarray | None
    time: float | None
    new_events: int
    after: int = 0


class LiveHistory:
    """The behaviour a live recommender keeps: the initial log, each user's newest observed events
    (at most ``max_events_per_user``) and the distinct items each user touched."""

    def __init__(self, history: Interactions | pd.DataFrame | None, max_events_per_user: int) -> None:
        self.max_events_per_user = int(max_events_per_user)
        history = as_interactions(history, caller="the live history") if history is not None else None
        self._set_base(history.frame if history is not None else pd.DataFrame(columns=COLUMNS))
        self._observed: dict[str, deque[tuple[str, str, float, str, float]]] = {}
        self._items_of = self._base.groupby("user", sort=False)["item"].agg(set).to_dict()

    def _set_base(self, frame: pd.DataFrame) -> None:
        self._base = frame.reset_index(drop=True)
        self._base_rows = self._base.groupby("user", sort=False).indices

    @property
    def history(self) -> Interactions:
        """The initial history plus the observed events kept (the newest ``max_events_per_user`` of
        each user), without forgotten users."""
        observed = [event for events in self._observed.values() for event in events]
        if not observed:
            return Interactions(self._base)
        return Interactions(pd.concat([self._base, pd.DataFrame(observed, columns=COLUMNS)],
                                      ignore_index=True))

    def events_of(self, user: str) -> Interactions:
        """The user's events (history and the observed events kept), without touching the others'."""
        return self.events_of_many([user])

    def events_of_many(self, users: Sequence[str],
                       drop_last: Mapping[str, int] | None = None) -> Interactions:
        """The events of ``users`` (history and observed events kept) as one log, without each
        user's newest ``drop_last[user]`` observed events."""
        drop_last = drop_last or {}
        base_rows = [self._base_rows.get(user, np.empty(0, np.int64)) for user in users]
        observed = []
        for user in users:
            kept = list(self._observed.get(user, ()))
            observed.extend(kept[: len(kept) - drop_last.get(user, 0)])
        parts = [self._base.iloc[np.concatenate([np.empty(0, np.int64), *base_rows])]]
        if observed:
            parts.append(pd.DataFrame(observed, columns=COLUMNS))
        return Interactions(pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0])

    def last_times(self) -> dict[str, float]:
        """Each user's newest timestamp (history and observed events kept; users whose events
        carry none are left out)."""
        newest = self._base.groupby("user", sort=False)["timestamp"].max().dropna().to_dict()
        for user, kept in self._observed.items():  # observed events always carry a time
            newest[user] = max([newest.get(user, -np.inf), *(event[2] for event in kept)])
        return newest

    def _keep(self, user: str, item: str, now: float, event: str, value: float) -> bool:
        """Record an observed event; True when the item is new to the user."""
        kept = self._observed.setdefault(user, deque(maxlen=self.max_events_per_user))
        kept.append((user, item, now, str(event), float(value)))  # the oldest beyond the window goes
        seen = self._items_of.setdefault(user, set())
        if item in seen:
            return False
        seen.add(item)
        return True

    def _drop(self, user: str) -> tuple[int, list[str]]:
        """Remove the user's events; returns how many went and the items they had touched."""
        mine = self._base_rows.get(user, np.empty(0, np.int64))
        removed = len(mine) + len(self._observed.pop(user, []))
        if len(mine):
            self._set_base(self._base.drop(index=mine))
        return removed, sorted(self._items_of.pop(user, set()))

    def most_active(self, limit: int) -> list[str]:
        """Up to ``limit`` users with the most distinct items, ties by id."""
        ranked = sorted(self._items_of.items(), key=lambda pair: (-len(pair[1]), pair[0]))
        return [user for user, _ in ranked[:limit]]


def live_options(options: RankingOptions | None, k: int | None, overrides: Mapping[str, Any], *,
                 caller: str) -> RankingOptions:
    """A live request's options: ``options`` with ``k`` (when given) and the keyword ``overrides``
    replacing its fields. ``event_weights`` and ``half_life`` are refused (a :class:`ConfigError`):
    the live state folds each event in as it arrives, with the weights and decay it was built with."""
    options = resolve_options(options, overrides if k is None else {**overrides, "k": k}, caller=caller)
    reject_options(options, ("event_weights", "half_life"), caller=caller,
                   why="a live recommender weighs and decays events as they arrive, as it was built to "
                   "(OnlineRecommender(event_weights=..., half_life=...))")
    return options


def check_event_numbers(user: str, item: str, event: str, value: Any, timestamp: Any) -> None:
    """A :class:`SchemaError` unless the event's value and timestamp (if any) are finite numbers."""
    for name, number in (("value", value), ("timestamp", timestamp)):
        if (number is None and name == "timestamp") or is_finite_number(number):
            continue
        raise SchemaError(f"observe: event {event!r} of user {user!r} on {item!r} has {name} "
                          f"{number!r}; it must be a finite number.")


class OnlineRecommender(LiveHistory):
    """Serve a trained :class:`mmrec.TwoTower` from an index and fold in feedback as it arrives.

    Parameters
    ----------
    model : TwoTower
        Its ``encode_users`` gives the long-term vectors; its learned item vectors the short-term.
    index : ItemIndex
        Built from ``model.encode_items(items)``; new items may be added to it at any time.
    history : Interactions, optional
        Behaviour so far (the users' long-term histories); observed events are added to it.
    alpha : float
        Weight of the short-term vector (0: frozen long-term vector, 1: only the new events).
    half_life : float
        Seconds for an observed event's weight in the short-term vector to halve.
    refresh_every : int, optional
        Re-run the tower over the whole history after this many new events of a user.
    new_user_events : int
        A user without a training history is served by the tower over their events until they
        have more than this many (the tower re-runs on each, a few milliseconds); 0 keeps them on
        the decayed sum of their item vectors from the first event.
    user_attributes : DataFrame, optional
        Indexed by user id (``locale``, ``age_band`` …): users with no events get the items popular
        in their segment (see :class:`mmrec.ranking.popularity.PopularityFallback`).
    diversify_by : str, optional
        Item attribute of the index (``category``) the popularity fallback interleaves.
    max_events_per_user : int, optional
        Observed events kept per user, the newest (default: the model's ``max_len``, the most the
        tower reads on a refresh); older ones leave :attr:`history` and :meth:`events_of`, not the
        user's vectors or seen items.
    """

    def __init__(self, model, index: ItemIndex, *, history: Interactions | None = None,
                 alpha: float = 0.5, half_life: float = 3600.0, refresh_every: int | None = None,
                 new_user_events: int = 5, event_weights: EventWeights | None = None,
                 user_attributes: pd.DataFrame | None = None, diversify_by: str | None = None,
                 max_events_per_user: int | None = None) -> None:
        window = (max(model.config.max_len, new_user_events) if max_events_per_user is None
                  else max_events_per_user)
        if (not 0 <= alpha <= 1 or half_life <= 0 or new_user_events < 0
                or (refresh_every is not None and refresh_every < 1) or window < max(1, new_user_events)):
            raise ConfigError(f"OnlineRecommender: alpha must be in [0, 1], half_life > 0, "
                              f"refresh_every >= 1, new_user_events >= 0 and max_events_per_user >= "
                              f"max(1, new_user_events); got {alpha}, {half_life}, {refresh_every}, "
                              f"{new_user_events}, {window}.")
        width = getattr(model, "vector_dim", model.config.dim)
        if width != index.dim:
            raise ConfigError(f"the model's vectors have {width} dimensions, the index "
                              f"{index.dim}; build the index from model.encode_items(...).")
        self.model, self.index = model, index
        self.alpha, self.half_life, self.refresh_every = alpha, half_life, refresh_every
        self.new_user_events = new_user_events
        self.event_weights = event_weights or model.event_weights
        super().__init__(history, window)
        self._states: dict[str, UserState] = {}
        self._log_pop: np.ndarray | None = None  # the model's prior per index label, when it has one
        self._prior_rows: np.ndarray | None = None  # each index label's row in the model's prior
        self.fallback = PopularityFallback(index, Interactions(self._base), user_attributes=user_attributes,
                                           diversify_by=diversify_by)
        # every list served, over the newest EXPOSURE_WINDOW: what rerank="exposure" spreads
        self.exposure = ExposureLedger(window=EXPOSURE_WINDOW)

    # ----------------------------------------------------------------------------- state
    def _state(self, user: str) -> UserState:
        return self._states.setdefault(user, UserState())

    def refresh(self, user: str) -> None:
        """Recompute the user's long-term vector with the tower over their whole history."""
        self._refresh_many([str(user)])

    def _untouched(self, user: str) -> bool:
        """A history user whose long-term vector the tower has not computed yet and who has no
        new event: the next touch runs the tower over their history."""
        state = self._states.get(user)
        return user in self._base_rows and (state is None or (state.long is None and state.new_events == 0))

    def warm(self, *, chunk: int = 4096,
             unlocked: Callable[[], AbstractContextManager[Any]] = nullcontext) -> int:
        """Compute the long-term vector of every history user not yet touched now, one batched
        tower pass per ``chunk`` users, instead of at each one's first request (what a first
        touch would compute; a server's reads then only search). Returns the users computed."""
        users = [u for u in self._base_rows if self._untouched(u)]
        for start in range(0, len(users), chunk):
            self._refresh_many(users[start : start + chunk], unlocked=unlocked)
        return len(users)

    def _refresh_many(self, users: Sequence[str], pending: Mapping[str, _PendingRefresh] | None = None,
                      unlocked: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        """One tower run for ``users``: each one's vector over their events (for a ``pending``
        refresh, those up to the point it fell due). With a signal it becomes the long-term vector
        (the short-term sum restarts); without one the short-term sum stays as it would have. The
        tower runs inside ``unlocked()`` (see :meth:`observe_many`)."""
        if not users:
            return
        pending = pending or {}
        events = self.events_of_many(users, {u: p.after for u, p in pending.items()})
        with unlocked():
            profile = self.model.encode_users(events, users=list(users))
        for row, user in enumerate(users):
            state, due = self._state(user), pending.get(user)
            if profile.has_signal[row]:
                state.long = profile.vectors[row]
                if due is None:
                    state.short, state.new_events = None, 0
            elif due is not None:  # as if the refresh had not happened: the sums join up again
                state.short = _joined(due.short, due.time, state.short, state.last_time, self.half_life)
                state.new_events += due.new_events
        # no signal (e.g. only items the model has never seen): the short-term sum stays

    # ----------------------------------------------------------------------------- feedback
    def observe(self, user: str, item: str, event: str = "click", value: float = 1.0,
                timestamp: float | None = None) -> None:
        """Fold one event into ``user``'s short-term interest (and history) at once."""
        self.observe_many([{"user": user, "item": item, "event": event, "value": value,
                            "timestamp": timestamp}])

    def observe_many(self, events: Sequence[Mapping[str, Any]], *,
                     unlocked: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        """Fold events (``user, item`` and optional ``event, value, timestamp``) in, in order,
        leaving the state :meth:`observe` one at a time would: the tower runs once for every user
        the batch touched who needs it (a known user's first touch, a new user's first
        ``new_user_events`` events, ``refresh_every``), not once per event. Every event is checked
        before any is applied.

        ``unlocked`` is entered around each tower run: a server holding a lock over this state
        passes a context that releases it meanwhile, so reads go on while the tower runs (they may
        see a user of the batch between two of its steps; the batch's writer sees the end state)."""
        rows = [(str(e["user"]), str(e["item"]), str(e.get("event", "click")), e.get("value", 1.0),
                 e.get("timestamp")) for e in events]
        for user, item, event, value, timestamp in rows:
            check_event_numbers(user, item, event, value, timestamp)
        if not rows:
            return
        items = [row[1] for row in rows]
        try:
            labels = self.index.positions(items)
        except SchemaError:
            item = items[int(np.flatnonzero(~self.index.contains(items))[0])]
            raise SchemaError(f"observe: item {item!r} is not in the index; add it first "
                              "(index.add(model.encode_items(new_items))).") from None
        vectors = np.asarray(self.index.vectors[labels], dtype=np.float32)
        weights = self.event_weights.positive(np.array([row[2] for row in rows], dtype=object),
                                              np.array([row[3] for row in rows], dtype=np.float64))
        # a known user's first touch: the tower reads their history before the new events
        first = [u for u in dict.fromkeys(row[0] for row in rows) if self._untouched(u)]
        self._refresh_many(first, unlocked=unlocked)
        pending: dict[str, _PendingRefresh] = {}
        for (user, item, event, value, timestamp), label, vector, weight in zip(
                rows, labels, vectors, weights, strict=True):
            state = self._state(user)
            now = float(timestamp) if timestamp is not None else (state.last_time or 0.0) + 1.0
            elapsed = max(now - state.last_time, 0.0) if state.last_time is not None else 0.0
            short = (0.5 ** (elapsed / self.half_life) * state.short if state.short is not None
                     else 0.0) + float(weight) * vector
            if not np.isfinite(short).all():
                raise SchemaError(f"observe: event {event!r} of user {user!r} on {item!r} has value "
                                  f"{value!r}; the user's interest overflows: send a smaller value.")
            state.short = short
            state.last_time, state.new_events, state.observed = now, state.new_events + 1, state.observed + 1
            if self._keep(user, item, now, event, float(value)):
                self.fallback.add(user, int(label))
            if user in pending:
                pending[user].after += 1
            due = ((user not in self._base_rows and state.observed <= self.new_user_events)
                   or (self.refresh_every is not None and state.new_events >= self.refresh_every))
            if due:  # deferred to the batch's end, the state reset as a refresh with a signal does
                before = pending.get(user)
                short_then = (state.short if before is None else
                              _joined(before.short, before.time, state.short, now, self.half_life))
                new_then = state.new_events + (before.new_events if before is not None else 0)
                pending[user] = _PendingRefresh(short_then, now, new_then)
                state.short, state.new_events = None, 0
        self._refresh_many(list(pending), pending, unlocked)

    def user_vector(self, user: str) -> np.ndarray | None:
        """The current interest vector (its learned part L2-normalised, times the model's
        ``vector_scale``), or None for a user with no signal."""
        user = str(user)
        if user not in self._states and user not in self._base_rows:
            return self._attribute_vector(user)  # no event: who they are, if the model reads it
        if self._untouched(user):
            self.refresh(user)
        state = self._state(user)
        # the learned part mixes long- and short-term interest; what a model appends to it (the cold
        # items' content blend) comes from the tower's last run over the history
        d = self.model.config.dim
        scale = float(getattr(self.model, "vector_scale", 1.0))  # the model's user vectors carry it
        parts = []
        if state.long is not None:  # back to unit length before it is mixed with the short-term part
            parts.append((1 - self.alpha if state.short is not None else 1.0) * state.long[:d] / scale)
        short = state.short[:d] if state.short is not None else None
        peak = float(np.abs(short).max()) if short is not None else 0.0
        if peak > 0:  # scaled by the peak first: the norm of huge (finite) values does not overflow
            short = short / peak
            short = short / np.linalg.norm(short)
            parts.append((self.alpha if state.long is not None else 1.0) * short)
        if not parts:
            return None
        combined = np.sum(parts, axis=0)
        norm = np.linalg.norm(combined)
        if not norm > 0:
            return None
        tail = state.long[d:] if state.long is not None else np.zeros(self.index.dim - d, np.float32)
        return np.concatenate([combined / norm * scale, tail]).astype(np.float32)

    def _attribute_vector(self, user: str) -> np.ndarray | None:
        """The model's vector of a user without events, from their attributes (None without)."""
        table = getattr(self.model, "user_attributes_", None)
        if table is None or user not in table.index:
            return None
        profile = self.model.encode_users(Interactions(self._base.iloc[:0]), users=[user])
        return profile.vectors[0] if profile.has_signal[0] else None

    def recommend(self, user: str, k: int | None = None, *, segment: Mapping[str, Any] | None = None,
                  options: RankingOptions | None = None, **overrides: Any) -> pd.DataFrame:
        """Top-``k`` for ``user`` now (``user, rank, item, score, source``).

        ``options`` (a :class:`mmrec.RankingOptions`) and the keyword ``overrides`` of its fields
        say how to rank, as for :func:`mmrec.recommend`; ``k`` given here replaces ``options.k``
        (default 10). ``where`` filters on the index's item attributes; ``diversify`` re-ranks the
        top candidates by their item vectors. ``event_weights`` and ``half_life`` are refused: the
        live state weighs and decays events as the recommender was built to. Users with no signal
        get the popularity fallback (``source = "popularity"``): items popular in their ``segment``
        (or in the segment their ``user_attributes`` give), interleaved by ``diversify_by`` when set."""
        items, scores, source = self.ranked(str(user), k, segment=segment, options=options, **overrides)
        return pd.DataFrame({"user": str(user), "rank": np.arange(1, len(items) + 1), "item": items,
                             "score": scores, "source": source})

    def ranked(self, user: str, k: int | None = None, *, segment: Mapping[str, Any] | None = None,
               options: RankingOptions | None = None,
               **overrides: Any) -> tuple[np.ndarray, np.ndarray, str]:
        """What :meth:`recommend` returns, as arrays: item ids, scores (float64) and the source."""
        options = live_options(options, k, overrides, caller=f"{type(self).__name__}.recommend")
        k, diversify = options.k, options.diversify
        width = candidate_count(k, self.index.n_labels, options.rerank) if diversify > 0 else k
        labels, scores, source = self._candidates(user, width, exclude_seen=options.exclude_seen,
                                                  where=options.where, segment=segment)
        if diversify > 0:
            picked, kept = diversified(self.index, scores[None, :], labels[None, :], k,
                                       diversify=diversify, method=options.rerank, ledger=self.exposure)
            labels, scores = picked[0][picked[0] >= 0], kept[0][picked[0] >= 0]
        if diversify == 0 or options.rerank not in READS_EXPOSURE:  # an exposure re-rank recorded it
            self.exposure.record(labels[:k])
        return self.index.ids[labels], scores, source

    def _candidates(self, user: str, k: int, *, exclude_seen: bool, where: Mapping[str, Any] | None,
                    segment: Mapping[str, Any] | None) -> tuple[np.ndarray, np.ndarray, str]:
        """The top ``k`` labels, their scores (float64) and the source."""
        vector = self.user_vector(user)
        seen = sorted(self._items_of.get(user, ())) if exclude_seen else []
        in_index = self.index.contains(seen) if seen else []
        seen_labels = self.index.positions([i for i, ok in zip(seen, in_index, strict=True) if ok])
        allowed = self.index.mask(where) if where else None
        if vector is not None:
            prior = getattr(self.model, "prior_", None)
            if prior is not None:  # fades with the user's events: seen items, training history included
                if self._prior_rows is None or len(self._prior_rows) != self.index.n_labels:
                    self._prior_rows = prior.rows_of(self.index.ids)
                    self._log_pop = prior.at(self._prior_rows)
                segments = self.model.prior_segments([user])  # a segment-aware prior: the user's own
                log_pop = self._log_pop if segments is None else label_log_popularity(
                    self.index, prior, segments, item_rows=self._prior_rows)
                weight = prior.weight([len(self._items_of.get(user, ()))])
                scores, labels = search_with_prior(self.index, vector[None, :], weight, log_pop, k,
                                                   exclude_idx=[seen_labels], allowed=allowed)
            else:
                scores, labels = self.index.search(vector[None, :], k, exclude_idx=[seen_labels],
                                                   allowed=allowed)
            keep = labels[0] >= 0
            return labels[0][keep], scores[0][keep].astype(np.float64), "online"
        picks, scores = self.fallback.rank(k, seen=set(seen_labels.tolist()), allowed=allowed,
                                           user=user, segment=segment)
        return np.asarray(picks, dtype=np.int64), np.asarray(scores, dtype=np.float64), "popularity"

    # ----------------------------------------------------------------------------- privacy
    def forget(self, user: str) -> int:
        """Remove every event and all state of ``user`` from memory; returns how many events were
        removed (the history's and the observed ones kept). In a served deployment
        ``Service.forget`` (``DELETE /users/{id}``) or ``mmrec forget`` also removes them from the
        store and the events file, so that a restart does not bring them back."""
        user = str(user)
        removed, items = self._drop(user)
        known = self.index.contains(items) if items else np.empty(0, bool)
        labels = self.index.positions([i for i, ok in zip(items, known, strict=True) if ok])
        self.fallback.forget(user, labels)
        self._states.pop(user, None)
        table = getattr(self.model, "user_attributes_", None)
        if table is not None and user in table.index:  # who they were goes too
            self.model.user_attributes_ = table.drop(index=user)
        return removed

    def users(self) -> Sequence[str]:
        """Users with events or state."""
        return sorted(set(self._items_of) | set(self._states))


def _joined(earlier: np.ndarray | None, earlier_time: float | None, later: np.ndarray | None,
            later_time: float | None, half_life: float) -> np.ndarray | None:
    """One short-term sum from two consecutive ones: the earlier decayed to the later one's time."""
    if earlier is None:
        return later
    elapsed = max((later_time or 0.0) - (earlier_time or 0.0), 0.0)
    decayed = 0.5 ** (elapsed / half_life) * earlier
    return decayed if later is None else decayed + later
