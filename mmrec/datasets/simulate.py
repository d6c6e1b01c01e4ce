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

__all__ = ["BehaviourConfig", "simulate_behaviour"]


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
                pool = np.array([i for i in members[topic] if i not in consumed])
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
