"""Serving a model's fading popularity prior through any index.

A user with ``n`` events is ranked by ``cosine + weight(n) · log_popularity`` (see
:class:`mmrec.models.prior.PopularityPrior`). An ANN index only ranks by the cosine, so the prior is
applied to a candidate set: the index's top ``depth`` items for the user **and** the ``depth`` most
popular usable items (those the cosine alone may never reach), re-scored exactly from their
vectors. With a weight of 0 (a long history) the index's ranking is returned as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from mmrec.index.protocol import ServingIndex
from mmrec.ranking.popularity import descending

__all__ = ["search_with_prior", "label_log_popularity", "PRIOR_DEPTH"]

PRIOR_DEPTH = 4  # candidates from each source: depth × k


def label_log_popularity(index: ServingIndex, prior: Any) -> np.ndarray:
    """The prior's log-popularity per index label (items the model never counted: its ``unknown`` value)."""
    return prior.for_ids(index.ids)


def _label_vectors(index: ServingIndex, labels: np.ndarray) -> np.ndarray:
    one_hot = csr_matrix((np.ones(len(labels), np.float32), (np.arange(len(labels)), labels)),
                         shape=(len(labels), index.n_labels))
    return np.asarray(index.weighted_sum(one_hot), dtype=np.float32)


def search_with_prior(index: ServingIndex, vectors: np.ndarray, weights: np.ndarray, log_pop: np.ndarray,
                      k: int, *, exclude_idx: Sequence[np.ndarray] | None = None,
                      allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, labels) per row of ``vectors`` by cosine + ``weights[row]`` · ``log_pop``;
    the same contract as :meth:`ItemIndex.search` (``-inf`` / ``-1`` pads, ``exclude_idx`` and
    ``allowed`` honoured)."""
    scores, labels = index.search(vectors, k, exclude_idx=exclude_idx, allowed=allowed)
    rows = np.flatnonzero(np.asarray(weights) > 0)
    if rows.size == 0:
        return scores, labels
    depth = min(index.n_labels, PRIOR_DEPTH * k)
    excluded = [exclude_idx[r] for r in rows] if exclude_idx is not None else None
    ann_scores, ann_labels = index.search(vectors[rows], depth, exclude_idx=excluded, allowed=allowed)
    usable = index.alive if allowed is None else index.alive & allowed
    longest = max((len(e) for e in excluded), default=0) if excluded is not None else 0
    popular = descending(log_pop, usable)[: depth + longest]
    popular_cosines = vectors[rows] @ _label_vectors(index, popular).T if len(popular) else None
    for i, row in enumerate(rows):
        found = ann_labels[i] >= 0
        labels_i, cosines_i = ann_labels[i][found], ann_scores[i][found]
        if popular_cosines is not None:
            extra = ~np.isin(popular, labels_i)
            if excluded is not None and len(excluded[i]):
                extra &= ~np.isin(popular, excluded[i])
            labels_i = np.concatenate([labels_i, popular[extra]])
            cosines_i = np.concatenate([cosines_i, popular_cosines[i][extra]])
        total = cosines_i + weights[row] * log_pop[labels_i]
        order = np.lexsort((labels_i, -total))[:k]
        scores[row], labels[row] = -np.inf, -1
        scores[row, : len(order)] = total[order]
        labels[row, : len(order)] = labels_i[order]
    return scores, labels
