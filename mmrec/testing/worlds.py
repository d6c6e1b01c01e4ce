"""Small generated worlds and fast settings that tests, benchmarks and examples share."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.data.matrix import interaction_matrix

__all__ = ["FAST_IMAGE", "fast_choice", "clustered_world", "in_group_share"]

# The CNN at 64 px keeps tests cheap on 2 CPU cores; what they check does not depend on image size.
FAST_IMAGE = {"resize": 64, "crop": 64}


def fast_choice(image: Any) -> dict:
    """The encoders the demo tests use: cheap and independent of which extras are installed."""
    return {"text": "text-tfidf-svd", "image": image, "audio": "audio-mfcc-stats"}


def clustered_world(seed: int = 0, n_users: int = 80, n_items: int = 80, n_groups: int = 4,
                    per_user: int = 6) -> Interactions:
    """Users and items in groups; users touch items of their own group (plus a little noise)."""
    rng = np.random.default_rng(seed)
    group = np.arange(n_items) % n_groups
    rows = []
    for user in range(n_users):
        mine = np.flatnonzero(group == user % n_groups)
        picks = rng.choice(mine, per_user, replace=False)
        if rng.random() < 0.2:
            picks[-1] = rng.choice(np.setdiff1d(np.arange(n_items), picks))
        rows += [(f"u{user}", f"i{item}", step, "rating", float(rng.integers(1, 6)))
                 for step, item in enumerate(picks)]
    return Interactions.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp",
                                                                     "event", "value"]))


def in_group_share(model: Any, events: Interactions, n_groups: int = 4) -> float:
    """How many of each user's top-5 unseen items come from the user's own group."""
    users = list(events.users)
    scores = model.score_items(events, users=users)
    seen = interaction_matrix(events, np.asarray(users, dtype=object), model.item_ids_).toarray() > 0
    scores = np.where(seen, -np.inf, scores)
    top = np.argsort(-scores, axis=1)[:, :5]
    item_group = np.array([int(i[1:]) % n_groups for i in model.item_ids_])
    user_group = np.array([int(u[1:]) % n_groups for u in users])
    return float((item_group[top] == user_group[:, None]).mean())
