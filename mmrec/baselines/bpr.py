"""Matrix factorisation trained with BPR (Rendle et al., 2009) in plain PyTorch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mmrec.baselines.base import FactorModel
from mmrec.data.interactions import Interactions, as_interactions
from mmrec.data.matrix import interaction_matrix
from mmrec.errors import ConfigError
from mmrec.utils.device import resolve_device
from mmrec.utils.seed import torch_seeded
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["BPRMF", "train_bpr"]


def train_bpr(parameters: list[torch.Tensor], step_loss: Callable[..., torch.Tensor], *,
              users: torch.Tensor, positives: torch.Tensor, n_items: int, epochs: int,
              batch_size: int, lr: float, seed: int, negatives: int = 1) -> list[float]:
    """The BPR loop shared by MF and LightGCN: each epoch, every (user, positive) pair in a seeded
    order with uniform negative items; Adam on ``parameters``; returns the mean loss per epoch.
    ``step_loss(users, positives, negatives)`` computes a batch's loss; its negatives are a
    ``(batch,)`` tensor with ``negatives=1`` and a ``(batch, negatives)`` one otherwise."""
    if negatives < 1:
        raise ConfigError(f"train_bpr: negatives must be >= 1, got {negatives}.")
    shape = (len(users),) if negatives == 1 else (len(users), negatives)
    optimizer = torch.optim.Adam(parameters, lr=lr)
    generator = torch.Generator(device=users.device).manual_seed(seed)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(users), generator=generator, device=users.device)
        drawn = torch.randint(n_items, shape, generator=generator, device=users.device)
        total = 0.0
        for batch in order.split(batch_size):
            loss = step_loss(users[batch], positives[batch], drawn[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / max(len(users), 1))
    return losses


class BPRMF(FactorModel):
    """User and item embeddings, ``score = u·i``, trained so that each (user, seen item) outranks a
    uniformly drawn item (``-log σ(u·i - u·j)`` + L2). Transductive: users absent from training
    get a zero vector (every item ties)."""

    artifact_name = "bpr"

    def __init__(self, dim: int = 64, epochs: int = 30, lr: float = 5e-3, l2: float = 1e-5,
                 batch_size: int = 4096, seed: int = 0, device: str = "auto") -> None:
        if dim < 1 or epochs < 0 or lr <= 0 or l2 < 0 or batch_size < 1:
            raise ConfigError(f"BPRMF: bad settings dim={dim}, epochs={epochs}, lr={lr}, l2={l2}, "
                              f"batch_size={batch_size}.")
        self.dim, self.epochs, self.lr, self.l2 = dim, epochs, lr, l2
        self.batch_size, self.seed, self.device = batch_size, seed, device
        self.user_ids_: pd.Index | None = None
        self.user_factors_: np.ndarray | None = None
        self.item_factors_: np.ndarray | None = None
        self.losses_: list[float] = []

    def fit(self, items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
            valid: Interactions | None = None) -> BPRMF:
        events = as_interactions(events, caller="BPRMF.fit")
        self.item_ids_ = self._universe(items, events)
        self.user_ids_ = pd.Index(events.users)
        matrix = interaction_matrix(events, events.users, self.item_ids_).tocoo()
        device = resolve_device(self.device)
        users = torch.from_numpy(matrix.row.astype(np.int64)).to(device)
        positives = torch.from_numpy(matrix.col.astype(np.int64)).to(device)
        n_users, n_items = matrix.shape
        with torch_seeded(self.seed):
            user_emb = torch.nn.Parameter(torch.randn(n_users, self.dim, device=device) * 0.1)
            item_emb = torch.nn.Parameter(torch.randn(n_items, self.dim, device=device) * 0.1)
        def step_loss(u_rows: torch.Tensor, i_rows: torch.Tensor, j_rows: torch.Tensor) -> torch.Tensor:
            u, i, j = user_emb[u_rows], item_emb[i_rows], item_emb[j_rows]
            penalty = (u.pow(2) + i.pow(2) + j.pow(2)).sum(-1).mean()
            return -F.logsigmoid((u * (i - j)).sum(-1)).mean() + self.l2 * penalty

        self.losses_ = train_bpr([user_emb, item_emb], step_loss, users=users, positives=positives,
                                 n_items=n_items, epochs=self.epochs, batch_size=self.batch_size,
                                 lr=self.lr, seed=self.seed)
        self.user_factors_ = user_emb.detach().cpu().numpy().astype(np.float32)
        self.item_factors_ = item_emb.detach().cpu().numpy().astype(np.float32)
        return self
