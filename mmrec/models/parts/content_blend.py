"""The cold-item content blend part: how items without training events are scored from their content.

Before training it reserves a seeded share of the trained items as pseudo-cold (training leaves
their id embeddings alone); after training it fits :class:`~mmrec.models.content_blend.ContentBlend`
on them and the validation users (see :mod:`mmrec.models.content_blend` for the maths). At serving
time it appends its coordinates to user and item vectors and adds the cold items' content-neighbour
score to the cosines. Switched off by ``TrainConfig.content_blend=False``; never fitted without
content, without item ids, or without validation events.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mmrec.models.content_blend import ColdView, ContentBlend, fit_content_blend, pseudo_cold_items
from mmrec.models.histories import Histories
from mmrec.models.parts.base import Composition, FitData, Part, ScoreTerm, validation_sample
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["ColdItemBlend", "history_matrix"]

logger = logging.getLogger(__name__)


def history_matrix(histories: Histories, n_items: int) -> Any:
    """``(users, items)`` sparse matrix of the histories' event weights (positive weights only)."""
    from scipy.sparse import csr_matrix

    rows = np.repeat(np.arange(len(histories)), histories.lengths)
    weights = np.maximum(histories.weights, 0.0).astype(np.float32)
    return csr_matrix((weights, (rows, histories.item_idx)), shape=(len(histories), n_items))


class ColdItemBlend(Part):
    """The fitted :class:`ContentBlend` (``blend_``), or ``None``."""

    name = "content_blend"

    def __init__(self) -> None:
        self.blend_: ContentBlend | None = None
        self._pseudo_cold: np.ndarray | None = None  # during fit only
        self._coords: tuple[ContentBlend, np.ndarray] | None = None  # the table's coordinates, by blend

    @property
    def fitted(self) -> bool:
        return self.blend_ is not None

    def reserve_items(self, model: Composition, data: FitData) -> np.ndarray | None:
        net = model.network.net
        assert data.valid is not None
        blending = bool(data.training.content_blend and net.modalities and model.config.item_ids
                        and len(data.valid))
        self._pseudo_cold = pseudo_cold_items(net.trained.numpy(), data.training.seed) if blending else None
        return self._pseudo_cold

    def fit(self, model: Composition, data: FitData) -> None:
        """Fit on the pseudo-cold items and the validation users; ``None`` when there is too
        little to fit on."""
        pseudo_cold, self._pseudo_cold = self._pseudo_cold, None
        self._coords = None
        if pseudo_cold is None:
            return
        network = model.network
        net, item_ids = network.net, network.item_ids_
        assert item_ids is not None and data.valid is not None
        cpu = torch.device("cpu")
        events, seed = data.events, data.training.seed
        users, later = validation_sample(item_ids, data.valid, seed=seed, salt=13, cap=10_000)
        histories = network.histories(events, users)
        learned_users = network.learned_users(histories, cpu, data.codes(histories.user_ids))
        with torch.no_grad():
            content_only = F.normalize(net.item_vectors(content_only=True)[0].float(), dim=-1).numpy()
        offsets = histories.offsets
        touched = [np.unique(np.concatenate([histories.item_idx[offsets[r] : offsets[r + 1]], later[r]]))
                   for r in range(len(users))]
        # the weight's view: every user as if the pseudo-cold items were new (their events dropped)
        theirs = events.for_users(users)
        cold = theirs.positions("item", pd.Index(item_ids[pseudo_cold], dtype=object)) >= 0
        without = network.histories(theirs.select(~cold), users)
        cold_view = ColdView(network.learned_users(without, cpu, data.codes(without.user_ids)),
                             history_matrix(without, net.n_items), touched)
        self.blend_ = fit_content_blend(network.raw_content(None), net.trained.numpy(),
                                        learned=network.fused(None)[1], content_only=content_only,
                                        users=learned_users, history=history_matrix(histories, net.n_items),
                                        cold_view=cold_view, k=model.config.dim, pseudo_cold=pseudo_cold,
                                        seed=seed)
        if self.blend_ is not None:
            logger.info("cold-item content blend: weight %.2f, offset %.3f (%s)", self.blend_.weight,
                        self.blend_.offset, self.blend_.valid)

    # ----------------------------------------------------------------------------- serving
    def _profiles(self, model: Composition, histories: Histories) -> tuple[np.ndarray, np.ndarray]:
        """The table's blend coordinates (projected once: the whole catalog's content, which
        every batch of :func:`~mmrec.ranking.batch.recommend_batches` re-projected — at a million
        items, 44 % of scoring users) and the users' content profiles."""
        assert self.blend_ is not None
        if self._coords is None or self._coords[0] is not self.blend_ or \
                len(self._coords[1]) != model.network.net.n_items:
            self._coords = (self.blend_, self.blend_.project(model.network.raw_content(None)))
        coords = self._coords[1]
        return coords, self.blend_.profile(history_matrix(histories, model.network.net.n_items), coords)

    def score_term(self, model: Composition, histories: Histories, device: torch.device) -> ScoreTerm | None:
        """The cold items' content-neighbour score (zero on warm items)."""
        net = model.network.net
        cold = np.flatnonzero(~net.trained.numpy())
        if self.blend_ is None or not cold.size:
            return None
        coords, profiles = self._profiles(model, histories)
        blend = self.blend_

        def term(rows: np.ndarray) -> torch.Tensor:
            out = np.zeros((len(rows), net.n_items), dtype=np.float32)
            out[:, cold] = blend.cold_scores(profiles[rows], coords[cold])
            return torch.from_numpy(out).to(device)

        return term

    def user_vectors(self, model: Composition, histories: Histories, vectors: np.ndarray,
                     has_signal: np.ndarray) -> np.ndarray:
        if self.blend_ is None:
            return vectors
        return self.blend_.user_vectors(vectors, self._profiles(model, histories)[1], has_signal)

    def item_vectors(self, model: Composition, items: ItemVectors | None, fused: np.ndarray) -> np.ndarray:
        if self.blend_ is None:
            return fused
        network = model.network
        cold = (network.item_inputs(items)[3] < 0).numpy()
        return self.blend_.item_vectors(fused, self.blend_.project(network.raw_content(items)), cold)

    @property
    def extra_width(self) -> int:
        return self.blend_.width if self.blend_ is not None else 0

    @property
    def user_scale(self) -> float:
        return self.blend_.radius if self.blend_ is not None else 1.0

    def check(self, model: Composition) -> None:
        width = model.network.content_width
        if self.blend_ is not None and self.blend_.mean.shape != (width,):
            raise ValueError(f"the content blend has shapes {self.blend_.mean.shape} / "
                             f"{self.blend_.directions.shape}, the content is {width} wide")

    # ----------------------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        assert self.blend_ is not None
        blend = self.blend_
        return {"mean": blend.mean, "directions": blend.directions, "blend": blend.to_dict()}

    def set_state(self, state: dict[str, Any]) -> None:
        mean, directions = np.asarray(state["mean"]), np.asarray(state["directions"])
        if mean.ndim != 1 or directions.ndim != 2 or directions.shape[1] != mean.shape[0]:
            raise ValueError(f"the content blend has shapes {mean.shape} / {directions.shape}")
        saved = state["blend"]
        self._coords = None
        self.blend_ = ContentBlend(mean, directions, float(saved["weight"]), float(saved["offset"]),
                                   saved.get("valid") or {})

