"""Score a recommendation table (``user, rank, item``) against held-out events."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mmrec.data.interactions import Interactions
from mmrec.evaluation.metrics import ranking_metrics, targets_per_user

__all__ = ["evaluate_recommendations"]


def evaluate_recommendations(recs: pd.DataFrame, targets: Interactions,
                             ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """Ranking metrics of ``recs`` (from :func:`mmrec.recommend` or ``TwoTower.recommend``) for
    every user with a held-out event in ``targets``; a user without recommendations scores 0."""
    frame = targets.frame
    users = pd.unique(frame["user"].to_numpy(dtype=object))
    items = pd.Index(pd.unique(pd.concat([frame["item"], recs["item"].astype(str)])))
    k = max(ks)
    top = np.full((len(users), k), -1, dtype=np.int64)
    shown = recs[recs["rank"] <= k]
    rows = pd.Index(users).get_indexer(shown["user"].astype(str))
    keep = rows >= 0
    top[rows[keep], shown["rank"].to_numpy()[keep] - 1] = items.get_indexer(shown["item"].astype(str))[keep]
    user_rows = pd.Index(users).get_indexer(frame["user"])
    positions = items.get_indexer(frame["item"])
    return ranking_metrics(top, targets_per_user(user_rows, positions, len(users)), ks)
