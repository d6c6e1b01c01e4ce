"""Cold items: the learned content path blended with raw content similarity, calibrated to warm items.

An item without training events is placed by the item tower from its content alone. Two things
make that placement better (measured in ``benchmarks/cold_start.py``):

- **content-neighbour score**: how close the item's raw content is to the content of the user's
  history — cosine in a centred principal subspace of the content (``k`` directions, fitted on
  the trained items) — added with weight ``weight`` to the learned cosine. It keeps the
  title-level detail (a sequel, a director's style) that the tower's narrow projection loses.
- **calibration**: a constant ``offset`` so that items scored this way get the exposure they
  would get as warm items. Both are fitted after training on *pseudo-cold* items — a seeded share
  of the trained items that training never scores content-only (id dropout skips them, so their
  content-only vectors generalise to them as to a new item), scored through the cold path — and
  users: the weight that ranks each user's pseudo-cold items best among the pseudo-cold items
  from the rest of their history (user vector and content profile recomputed without them: the
  cold-item view, on items whose answer is known), then the offset at which the pseudo-cold
  items' share of every user's top-``k`` equals their share when scored as warm items.

Warm items keep their learned cosine: warm quality cannot change. The blend lives in the vectors
(:meth:`ContentBlend.item_vectors`, :meth:`ContentBlend.user_vectors`): item ``[v, √w·p·cold,
δ·cold, pad] / R``, user ``R · [u, √w·p_u, 1, 0]``, so the inner product an ANN index computes is
the blended score; ``pad`` brings every item row to the norm ``R`` (:attr:`ContentBlend.radius`),
so the item rows are unit vectors and an index that normalises what it stores (``build_index``,
``ItemIndex.add``) leaves the calibration as it was fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ColdView", "ContentBlend", "fit_content_blend", "pseudo_cold_items", "BLEND_GRID",
           "PSEUDO_COLD_SHARE"]

# weights of the content-neighbour cosine tried
BLEND_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65, 0.8, 1.0, 1.2)
PSEUDO_COLD_SHARE = 0.2  # trained items scored through the cold path while fitting
TOP_K = 20
# Room under the radius below this share of R² is float32 rounding, not a norm to fill.
ROUNDING_ROOM = 1e-6


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0).astype(np.float32)


@dataclass(frozen=True)
class ContentBlend:
    """The fitted blend: principal subspace (``mean``, ``directions`` ``(k, D)``) of the raw content,
    the ``weight`` of its cosine and the calibration ``offset``; ``valid`` records the fit."""

    mean: np.ndarray
    directions: np.ndarray
    weight: float
    offset: float
    valid: dict[str, Any]

    @property
    def width(self) -> int:
        """Coordinates the blend adds to a vector: the content part, the calibration coordinate and
        a padding coordinate that gives every item vector the same norm."""
        return int(self.directions.shape[0]) + 2

    @property
    def radius(self) -> float:
        """The largest norm of an item's blended row ``[v, √w·p, δ]`` (unit ``v`` and ``p``): every
        item row is padded to it and divided by it, every user vector multiplied by it."""
        return float(np.sqrt(1.0 + self.weight + self.offset**2))

    def project(self, raw: np.ndarray) -> np.ndarray:
        """Unit-length content coordinates ``(n, k)`` of raw content rows (zeros stay zero)."""
        raw = np.asarray(raw, dtype=np.float32)
        present = np.abs(raw).sum(axis=1) > 0
        coords = (raw - self.mean) @ self.directions.T
        return _unit(np.where(present[:, None], coords, 0.0))

    def profile(self, history: Any, coords: np.ndarray) -> np.ndarray:
        """Users' content profiles: ``history`` (a ``(users, items)`` sparse weight matrix) times
        the items' coordinates, unit length."""
        return _unit(np.asarray(history @ coords, dtype=np.float32))

    def item_vectors(self, learned: np.ndarray, coords: np.ndarray, cold: np.ndarray) -> np.ndarray:
        """``[v, √w·p·cold, δ·cold, pad] / R`` — unit rows (an index that normalises its vectors
        changes nothing), warm items keep their learned vector alone (``pad`` fills the norm)."""
        cold = np.asarray(cold, dtype=np.float32)[:, None]
        body = np.hstack([learned, np.sqrt(self.weight) * coords * cold, self.offset * cold])
        body = body.astype(np.float64)
        room = self.radius**2 - (body**2).sum(axis=1)
        # a warm row at the radius leaves float32 rounding (~1e-7 R²) as room: its square root would
        # be a 3e-4 filler that changes with the CPU's summation order; below 1e-6 R² it is none
        pad = np.sqrt(np.where(room > ROUNDING_ROOM * self.radius**2, room, 0.0))
        return (np.hstack([body, pad[:, None]]) / self.radius).astype(np.float32)

    def user_vectors(self, learned: np.ndarray, profiles: np.ndarray, has_signal: np.ndarray) -> np.ndarray:
        """``R · [u, √w·p_u, 1, 0]`` (zeros for users without signal): its inner product with an item
        row is the blended score ``u·v + cold · (w·p_u·p + δ)``."""
        ones = np.asarray(has_signal, dtype=np.float32)[:, None]
        parts = [learned, np.sqrt(self.weight) * profiles, ones, np.zeros_like(ones)]
        return (self.radius * np.hstack(parts)).astype(np.float32)

    def cold_scores(self, profiles: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """What the blend adds to the learned cosine of cold items: ``w·p_u·p + δ``."""
        return self.weight * profiles @ coords.T + self.offset

    def to_dict(self) -> dict[str, Any]:
        return {"weight": self.weight, "offset": self.offset, "k": int(self.directions.shape[0]),
                "valid": self.valid}


@dataclass(frozen=True)
class ColdView:
    """Users as the weight's fit sees them: ``users`` ``(m, d)`` unit vectors and ``history``
    ``(m, n_items)`` sparse event weights, both from their events on trained items other than the
    pseudo-cold ones; ``targets`` the item rows each touched (the pseudo-cold ones are the answers)."""

    users: np.ndarray
    history: Any
    targets: list[np.ndarray]


def principal_subspace(raw: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top-``k`` principal directions of ``raw`` rows (a 20,000-row sample at most)."""
    rng = np.random.default_rng(seed)
    sample = raw[rng.choice(len(raw), 20_000, replace=False)] if len(raw) > 20_000 else raw
    mean = sample.mean(axis=0)
    _, singular, directions = np.linalg.svd(sample - mean, full_matrices=False)
    keep = int(min(k, (singular > singular[0] * 1e-4).sum())) if len(singular) else 0
    return mean.astype(np.float32), directions[:keep].astype(np.float32)


def _recall(scores: np.ndarray, targets: list[np.ndarray], k: int = TOP_K) -> float:
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    hits = [np.isin(t, row).sum() / min(len(t), k) for row, t in zip(top, targets, strict=True)]
    return float(np.mean(hits))


def _share(scores: np.ndarray, columns: np.ndarray, k: int = TOP_K) -> float:
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    return float(np.isin(top, columns).mean())


def pseudo_cold_items(trained: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded ``PSEUDO_COLD_SHARE`` of the trained items (a bool mask over the table): training
    never scores them content-only (no id dropout), so their content-only vectors are as
    untrained for them as for a real cold item, and the blend is fitted on them."""
    rows = np.flatnonzero(trained)
    mask = np.zeros(len(trained), dtype=bool)
    if len(rows):
        count = max(1, int(PSEUDO_COLD_SHARE * len(rows)))
        mask[np.random.default_rng([seed, 11]).choice(rows, count, replace=False)] = True
    return mask


def fit_content_blend(raw: np.ndarray, trained: np.ndarray, *, learned: np.ndarray, content_only: np.ndarray,
                      users: np.ndarray, history: Any, cold_view: ColdView, k: int,
                      pseudo_cold: np.ndarray, seed: int = 0) -> ContentBlend | None:
    """Fit the blend (see the module doc) from:

    ``raw`` ``(n_items, D)`` content rows; ``trained`` which items had training events; ``learned``
    and ``content_only`` ``(n_items, d)`` unit vectors through the warm and the cold path;
    ``users`` ``(m, d)`` unit user vectors and ``history`` their ``(m, n_items)`` sparse event
    weights (the offset's users: their items are never recommended back); ``cold_view`` the
    weight's users, as if the pseudo-cold items were new; ``pseudo_cold`` the items (mask) the blend
    is fitted on (:func:`pseudo_cold_items`). ``None`` when there is too little to fit on."""
    trained_rows = np.flatnonzero(trained)
    if len(trained_rows) < 50 or len(users) < 20 or raw.shape[1] == 0:
        return None
    mean, directions = principal_subspace(raw[trained_rows], k, seed)
    if not len(directions):
        return None
    blank = ContentBlend(mean, directions, 0.0, 0.0, {})
    coords = blank.project(raw)
    pseudo = np.flatnonzero(pseudo_cold & trained)
    # the weight: each user's pseudo-cold items ranked among the pseudo-cold items, from the rest
    # of the history (the benchmark's cold-item view, on items whose answer is known)
    column = np.full(len(raw), -1)
    column[pseudo] = np.arange(len(pseudo))
    wanted = [column[t][column[t] >= 0] for t in cold_view.targets]
    rows = np.array([i for i, t in enumerate(wanted) if len(t) and cold_view.users[i].any()], dtype=np.int64)
    if len(rows) < 10:
        return None
    learned_view = cold_view.users[rows] @ content_only[pseudo].T
    content_view = blank.profile(cold_view.history[rows], coords) @ coords[pseudo].T
    answers = [wanted[i] for i in rows]
    recalls = [_recall(learned_view + weight * content_view, answers) for weight in BLEND_GRID]
    weight = float(BLEND_GRID[int(np.argmax(recalls))])
    profiles = blank.profile(history, coords)
    seen = np.asarray((history != 0).toarray())
    warm_scores = np.where(seen, -np.inf, users @ learned.T).astype(np.float32)
    seen_pseudo = seen[:, pseudo]
    learned_cold = users @ content_only[pseudo].T
    content_cold = profiles @ coords[pseudo].T
    # the offset: pseudo-cold items get the exposure they have as warm items
    wanted_share = _share(warm_scores, pseudo)
    cold_scores = np.where(seen_pseudo, -np.inf, learned_cold + weight * content_cold)

    def share_at(offset: float) -> float:
        scores = warm_scores.copy()
        scores[:, pseudo] = cold_scores + offset
        return _share(scores, pseudo)

    low, high = -2.0, 2.0
    for _ in range(25):  # the share grows with the offset: bisection
        middle = (low + high) / 2
        low, high = (middle, high) if share_at(middle) < wanted_share else (low, middle)
    offset = (low + high) / 2
    valid = {"weights": list(BLEND_GRID), "pseudo_cold_recall@20": recalls,
             "pseudo_cold_items": len(pseudo), "users": len(users), "target_users": len(rows),
             "targets": int(sum(len(wanted[i]) for i in rows)), "warm_share@20": wanted_share,
             "calibrated_share@20": share_at(offset)}
    return ContentBlend(mean, directions, weight, float(offset), valid)
