"""Behaviour generated from real item content, for domains where no real log installs offline.

No package ships real news clicks, music plays or shop purchases. The examples therefore take a
real catalog, give each item a topic derived from its real content or metadata, and simulate users
who prefer a few topics, come back in sessions, drift between topics, favour popular items and
consume each item at most once. Everything is seeded; the generated log is labelled as such in
every example's README. Quality numbers on such logs show that the pipeline works, not how it
would do on real traffic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.errors import ConfigError

__all__ = ["BehaviourConfig", "SimulatedWorld", "simulate_behaviour", "simulate_world"]


@dataclass(frozen=True)
class BehaviourConfig:
    """How simulated users behave.

    ``interests`` topics per user (drawn between the two bounds), ``stay`` the chance the next item
    of a session keeps the current topic, ``explore`` the chance it comes from any topic,
    ``popularity_skew`` the Zipf exponent of item popularity inside a topic, ``events`` the event
    types with their probabilities and the range of their values (e.g. seconds played).
    """

    n_users: int = 300
    sessions: tuple[int, int] = (2, 6)
    session_length: tuple[int, int] = (3, 10)
    interests: tuple[int, int] = (1, 3)
    stay: float = 0.7
    explore: float = 0.05
    popularity_skew: float = 0.8
    events: Mapping[str, tuple[float, float, float]] = field(
        default_factory=lambda: {"click": (1.0, 1.0, 1.0)})  # name: (probability, min value, max value)
    start: float = 1_700_000_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, (low, high) in (("sessions", self.sessions), ("session_length", self.session_length),
                                  ("interests", self.interests)):
            if not 1 <= low <= high:
                raise ConfigError(f"BehaviourConfig.{name} must be 1 <= low <= high, got {(low, high)}.")
        if not (0 <= self.stay <= 1 and 0 <= self.explore <= 1) or self.n_users < 1:
            raise ConfigError("BehaviourConfig: stay and explore must be in [0, 1], n_users >= 1.")
        if not self.events or min(p for p, _, _ in self.events.values()) <= 0:
            raise ConfigError("BehaviourConfig.events needs at least one event with probability > 0.")


def simulate_behaviour(item_ids: Sequence[str], topics: Sequence[object],
                       config: BehaviourConfig | None = None) -> Interactions:
    """A seeded behaviour log over ``item_ids`` whose ``topics[i]`` is item ``i``'s topic.

    Columns: user, item, timestamp (sessions days apart, events minutes apart), event, value.
    """
    config = config or BehaviourConfig()
    ids = np.asarray([str(i) for i in item_ids], dtype=object)
    labels = pd.Index(pd.unique(np.asarray(topics, dtype=object)))
    if len(ids) != len(topics) or not len(ids):
        raise ConfigError(f"simulate_behaviour: {len(ids)} items but {len(topics)} topics.")
    rng = np.random.default_rng(config.seed)
    topic_of = labels.get_indexer(np.asarray(topics, dtype=object))
    members = [np.flatnonzero(topic_of == t) for t in range(len(labels))]
    appeal = np.empty(len(ids))
    for rows in members:  # Zipf-like popularity inside each topic, in a random order
        ranks = rng.permutation(len(rows)) + 1
        appeal[rows] = ranks ** -config.popularity_skew
    names = list(config.events)
    probabilities = np.array([config.events[n][0] for n in names], dtype=np.float64)
    probabilities /= probabilities.sum()
    records = []
    for user in range(config.n_users):
        n_interests = min(int(rng.integers(config.interests[0], config.interests[1] + 1)), len(labels))
        liked = rng.choice(len(labels), n_interests, replace=False)
        weights = rng.dirichlet(np.ones(n_interests))
        consumed: set[int] = set()
        clock = config.start + rng.uniform(0, 86_400 * 7)
        for _ in range(int(rng.integers(config.sessions[0], config.sessions[1] + 1))):
            clock += rng.uniform(0.5, 4.0) * 86_400
            topic = liked[rng.choice(n_interests, p=weights)]
            for _ in range(int(rng.integers(config.session_length[0], config.session_length[1] + 1))):
                if rng.random() < config.explore:
                    topic = int(rng.integers(len(labels)))
                elif rng.random() > config.stay:
                    topic = liked[rng.choice(n_interests, p=weights)]
                topic_items = members[topic]  # those not consumed yet, in order (arrays: topics of 10^4)
                pool = topic_items[~np.isin(topic_items, np.fromiter(consumed, np.int64, len(consumed)))]
                if not len(pool):
                    continue
                item = int(rng.choice(pool, p=appeal[pool] / appeal[pool].sum()))
                consumed.add(item)
                event = names[rng.choice(len(names), p=probabilities)]
                _, low, high = config.events[event]
                clock += rng.uniform(30, 600)
                records.append((f"user{user:04d}", ids[item], clock, event, float(rng.uniform(low, high))))
    frame = pd.DataFrame(records, columns=["user", "item", "timestamp", "event", "value"])
    return Interactions.from_frame(frame)


@dataclass(frozen=True)
class SimulatedWorld:
    """A generated catalog (``item_id``, ``title``, ``topic``) and its behaviour log."""

    catalog: pd.DataFrame
    events: Interactions


def simulate_world(n_items: int, n_users: int, n_events: int, *, n_topics: int = 200,
                   title_words: int = 6, popularity_skew: float = 0.8, stay: float = 0.7,
                   explore: float = 0.05, seed: int = 0) -> SimulatedWorld:
    """A catalog and a click log of any size, generated with array operations (seconds for 10^7
    events), for scale benchmarks and pipeline tests where :func:`simulate_behaviour`'s per-event
    loop would take hours.

    Items get one of ``n_topics`` topics and a title of ``title_words`` words, most of them from
    their topic's vocabulary. Users like 1-3 topics (Dirichlet weights); history lengths are
    heavy-tailed (at least 2 events, ``n_events`` in all); each event keeps the previous event's
    topic with probability ``stay``, else draws a liked topic, or with probability ``explore`` any
    topic; inside a topic items are drawn by Zipf-like popularity (``popularity_skew``). An item may
    be clicked again. Timestamps rise per user (minutes apart inside a session, days between
    sessions). Seeded: the same arguments give the same world.
    """
    if min(n_items, n_users, n_topics) < 1 or n_events < 2 * n_users:
        raise ConfigError(f"simulate_world: needs n_items, n_users, n_topics >= 1 and n_events >= "
                          f"2 * n_users, got {n_items}, {n_users}, {n_topics}, {n_events}.")
    rng = np.random.default_rng([seed, 31])
    n_topics = min(n_topics, n_items)
    topic_of = rng.permutation(np.arange(n_items) % n_topics)
    # history lengths: 2 each, the rest spread by heavy-tailed activity
    activity = rng.lognormal(0.0, 1.0, n_users)
    lengths = 2 + rng.multinomial(n_events - 2 * n_users, activity / activity.sum())
    user_of = np.repeat(np.arange(n_users), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    # topics: a liked topic on a switch (a user's first event always switches), the previous one otherwise
    liked = rng.integers(n_topics, size=(n_users, 3))
    weights = rng.gamma(1.0, size=(n_users, 3)) * (np.arange(3) < rng.integers(1, 4, n_users)[:, None])
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    slot = (rng.random(n_events)[:, None] > cumulative[user_of]).sum(axis=1).clip(max=2)
    fresh = liked[user_of, slot]
    exploring = rng.random(n_events) < explore
    fresh[exploring] = rng.integers(n_topics, size=int(exploring.sum()))
    switch = rng.random(n_events) >= stay
    switch[starts] = True
    last_switch = np.maximum.accumulate(np.where(switch, np.arange(n_events), 0))
    topic = fresh[last_switch]
    # items: Zipf-like appeal inside each topic, a random order of ranks
    item = np.empty(n_events, dtype=np.int64)
    order = np.argsort(topic, kind="stable")
    bounds = np.searchsorted(topic[order], np.arange(n_topics + 1))
    for t in range(n_topics):
        members = np.flatnonzero(topic_of == t)
        appeal = (rng.permutation(len(members)) + 1.0) ** -popularity_skew
        chosen = order[bounds[t] : bounds[t + 1]]
        picks = np.searchsorted(np.cumsum(appeal) / appeal.sum(), rng.random(len(chosen)), side="right")
        item[chosen] = members[np.minimum(picks, len(members) - 1)]
    # time: minutes apart, a new session (days later) every ~8 events
    gaps = np.where(rng.random(n_events) < 0.12, rng.uniform(0.5, 4.0, n_events) * 86_400,
                    rng.uniform(30, 600, n_events))
    gaps[starts] = rng.uniform(0, 30 * 86_400, n_users)
    clock = np.cumsum(gaps)
    clock -= np.repeat(clock[starts] - gaps[starts], lengths)
    item_ids = np.array([f"i{j}" for j in range(n_items)], dtype=object)
    user_ids = np.array([f"u{u}" for u in range(n_users)], dtype=object)
    frame = pd.DataFrame({"user": user_ids[user_of], "item": item_ids[item], "timestamp": 1.7e9 + clock,
                          "event": "click", "value": 1.0})
    words = rng.integers(0, 30, size=(n_items, title_words))
    common = rng.random((n_items, title_words)) < 0.3
    titles = [" ".join(f"w{w}" if c else f"t{t}w{w}" for w, c in zip(row, flags, strict=True))
              for t, row, flags in zip(topic_of.tolist(), words.tolist(), common.tolist(), strict=True)]
    catalog = pd.DataFrame({"item_id": item_ids, "title": titles, "topic": [f"topic{t}" for t in topic_of]})
    return SimulatedWorld(catalog, Interactions.from_frame(frame))
