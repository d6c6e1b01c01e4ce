"""The user × item matrix of an interaction log, and the one popularity count (distinct users per item)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from mmrec.data.interactions import Interactions

__all__ = ["interaction_matrix", "distinct_user_counts"]


def interaction_matrix(events: Interactions, users: np.ndarray, items: pd.Index, *,
                       binary: bool = True) -> csr_matrix:
    """``(len(users), len(items))`` float32 CSR of who touched what (events on unknown users or
    items are left out); ``binary`` counts a (user, item) pair once however many events it has."""
    frame = events.frame
    rows = pd.Index(users).get_indexer(frame["user"].to_numpy(dtype=object))
    cols = items.get_indexer(frame["item"].to_numpy(dtype=object))
    keep = (rows >= 0) & (cols >= 0)
    matrix = csr_matrix((np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
                        shape=(len(users), len(items)), dtype=np.float32)
    matrix.sum_duplicates()
    if binary:
        matrix.data[:] = 1.0
    return matrix


def distinct_user_counts(user_codes: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Item popularity: per label in ``range(n_labels)``, how many distinct users touched it.

    ``user_codes`` (int64) and ``labels`` (int64) are aligned, one entry per event; repeated
    (user, label) pairs count once. Returns float64 of length ``n_labels``.
    """
    user_codes = np.asarray(user_codes, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if not len(labels):
        return np.zeros(n_labels, dtype=np.float64)
    pairs = np.unique(user_codes * n_labels + labels)
    return np.bincount(pairs % n_labels, minlength=n_labels).astype(np.float64)
