"""Serving a model's fading popularity prior through any index.

A user with ``n`` events is ranked by ``cosine + weight(n) · log_popularity`` (see
:class:`mmrec.models.prior.PopularityPrior`). An ANN index only ranks by the cosine, so the prior is
applied to a candidate set: the index's top ``depth`` items for the user **and** the ``depth`` most
popular usable items (those the cosine alone may never reach), re-scored exactly from their
vectors. With a weight of 0 (a long history) the index's ranking is returned as it is. A
segment-aware prior gives every user their own log-popularity (and their own popular candidates).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from mmrec.index.protocol import ServingIndex

__all__ = ["search_with_prior", "label_log_popularity", "PRIOR_DEPTH"]

PRIOR_DEPTH = 4  # candidates from each source: depth × k


LogPopularity = np.ndarray | Callable[[np.ndarray], np.ndarray]
CHUNK = 256  # rows whose candidates are re-scored together


def label_log_popularity(index: ServingIndex, prior: Any, segment_rows: Sequence[np.ndarray] | None = None,
                         *, item_rows: np.ndarray | None = None) -> LogPopularity:
    """The prior's log-popularity per index label (items the model never counted: the median's):
    one array for everyone, or — a segment-aware prior with each user's ``segment_rows`` — a
    function of the query rows giving their own ``(rows, labels)``. ``item_rows``: the labels'
    rows in the prior (``prior.rows_of(index.ids)``), when the caller keeps them."""
    if item_rows is None or len(item_rows) != index.n_labels:
        item_rows = prior.rows_of(index.ids)
    if segment_rows is None:
        return prior.at(item_rows)
    return lambda picked: prior.at(item_rows, [segment_rows[int(r)] for r in picked])


def _label_vectors(index: ServingIndex, labels: np.ndarray) -> np.ndarray:
    one_hot = csr_matrix((np.ones(len(labels), np.float32), (np.arange(len(labels)), labels)),
                         shape=(len(labels), index.n_labels))
    return np.asarray(index.weighted_sum(one_hot), dtype=np.float32)


def _most_popular(log_pop: np.ndarray, usable: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` most popular ``usable`` labels, most popular first, ties by label."""
    labels = np.flatnonzero(usable)
    if n < len(labels):
        cut = np.partition(log_pop[labels], len(labels) - n)[len(labels) - n]
        labels = labels[log_pop[labels] >= cut]
    order = np.lexsort((labels, -log_pop[labels]))
    return labels[order][:n]


def search_with_prior(index: ServingIndex, vectors: np.ndarray, weights: np.ndarray, log_pop: LogPopularity,
                      k: int, *, exclude_idx: Sequence[np.ndarray] | None = None,
                      allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` (scores, labels) per row of ``vectors`` by cosine + ``weights[row]`` · ``log_pop``
    (per label, or a function of the rows giving each its own, see :func:`label_log_popularity`);
    the same contract as :meth:`ItemIndex.search` (``-inf`` / ``-1`` pads, ``exclude_idx`` and
    ``allowed`` honoured)."""
    scores, labels = index.search(vectors, k, exclude_idx=exclude_idx, allowed=allowed)
    rows = np.flatnonzero(np.asarray(weights) > 0)
    if rows.size == 0:
        return scores, labels
    depth = min(index.n_labels, PRIOR_DEPTH * k)
    usable = index.alive if allowed is None else index.alive & allowed
    shared = None if callable(log_pop) else np.asarray(log_pop, dtype=np.float32)
    for chunk in np.array_split(rows, -(-len(rows) // CHUNK)):
        excluded = [exclude_idx[r] for r in chunk] if exclude_idx is not None else None
        ann_scores, ann_labels = index.search(vectors[chunk], depth, exclude_idx=excluded, allowed=allowed)
        longest = max((len(e) for e in excluded), default=0) if excluded is not None else 0
        pops = np.broadcast_to(shared, (len(chunk), index.n_labels)) if shared is not None else log_pop(chunk)
        popular = ([_most_popular(shared, usable, depth + longest)] * len(chunk) if shared is not None
                   else [_most_popular(p, usable, depth + longest) for p in pops])
        union = np.unique(np.concatenate(popular)) if len(popular) else np.empty(0, dtype=np.int64)
        union_cosines = vectors[chunk] @ _label_vectors(index, union).T if len(union) else None
        for i, row in enumerate(chunk):
            found = ann_labels[i] >= 0
            labels_i, cosines_i = ann_labels[i][found], ann_scores[i][found]
            if union_cosines is not None:
                extra = popular[i][~np.isin(popular[i], labels_i)]
                if excluded is not None and len(excluded[i]):
                    extra = extra[~np.isin(extra, excluded[i])]
                labels_i = np.concatenate([labels_i, extra])
                cosines_i = np.concatenate([cosines_i, union_cosines[i][np.searchsorted(union, extra)]])
            total = cosines_i + weights[row] * pops[i][labels_i]
            order = np.lexsort((labels_i, -total))[:k]
            scores[row], labels[row] = -np.inf, -1
            scores[row, : len(order)] = total[order]
            labels[row, : len(order)] = labels_i[order]
    return scores, labels
