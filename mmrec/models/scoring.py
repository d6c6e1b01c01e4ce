"""Scoring a TwoTower's users against its whole item table, chunk by chunk, and ranking from it.

A score is the network's logit (candidate-aware for towers that attend to the candidate) plus what
the fitted parts add (:meth:`Part.score_term <mmrec.models.parts.Part.score_term>`), scaled like
the logits. The exact, full-table path behind ``score_items``, ``evaluate`` and ``recommend``;
an ANN index over ``encode_items`` serves the same ranking at catalog scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmrec.models.histories import Histories
from mmrec.models.parts.base import Composition
from mmrec.models.parts.network import full_table_chunk, placed

__all__ = ["rank_items", "score_chunks"]

CANDIDATE_CHUNK = 1024  # items scored at once by a candidate-aware tower


@torch.no_grad()
def score_chunks(model: Composition, histories: Histories, *, candidate_aware: bool, device: torch.device
                 ) -> Iterator[tuple[np.ndarray, Any, torch.Tensor]]:
    """Per chunk of history rows: the rows, their batch and float32 logits over the item table
    (the network's, plus the parts' terms on the logits' scale)."""
    network = model.network
    net = network.net
    codes = model.attributes.codes(histories.user_ids)
    terms = model.score_terms(histories, device)
    with placed(net, device):
        table, _ = net.item_vectors()
        unit_table = F.normalize(table, dim=-1)  # once, not per chunk (a 1M-row table is 256 MB)
        scale = float(net.scale)
        for rows, final, batch, x in network.user_chunks(histories, device, table, codes,
                                                         chunk=full_table_chunk(net.n_items)):
            if candidate_aware and net.has_candidate_scores:
                parts = torch.arange(net.n_items, device=device).split(CANDIDATE_CHUNK)
                logits = torch.cat([net.candidate_logits(x, batch.mask, table[part], last_only=True)[:, -1]
                                    for part in parts], dim=1).float()
            else:
                logits = net.unit_logits(final, unit_table).float()
            for term in terms:  # added in place: one more matrix at a time, not a sum beside
                logits.add_(term(rows).float(), alpha=scale)
            yield rows, batch, logits


@torch.no_grad()
def rank_items(model: Composition, histories: Histories, k: int, *, exclude_seen: bool, candidate_aware: bool,
               device: torch.device) -> np.ndarray:
    """Top-``k`` table rows ``(len(histories), k)`` int64 per history row, ranked over the whole
    item table (-1 pads); ``exclude_seen`` masks every item of the history, also beyond ``max_len``."""
    max_len = model.config.max_len
    k = min(k, model.network.net.n_items)
    top = np.full((len(histories), k), -1, dtype=np.int64)
    for rows, batch, logits in score_chunks(model, histories, candidate_aware=candidate_aware, device=device):
        if exclude_seen:  # in place: no (users × items) mask beside the logits
            seen = batch.items - 1
            at, column = torch.nonzero(seen >= 0, as_tuple=True)
            logits[at, seen[at, column]] = -torch.inf
            for place, row in enumerate(rows):  # histories longer than max_len: mask the rest too
                lo, hi = histories.offsets[row], histories.offsets[row + 1]
                if hi - lo > max_len:
                    older = torch.from_numpy(histories.item_idx[lo : hi - max_len])
                    logits[place, older.to(device)] = -torch.inf
        value, index = logits.topk(k, dim=1)
        index[~torch.isfinite(value)] = -1
        top[rows] = index.cpu().numpy()
    return top
