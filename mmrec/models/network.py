"""The two-tower network: an item tower (content projections + id embedding → learned fusion) and a
user tower (history embeddings → interest states), scored by a temperature-scaled cosine."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmrec.models.config import TwoTowerConfig
from mmrec.models.fusion_layers import FUSIONS
from mmrec.models.histories import SequenceBatch
from mmrec.models.towers import TOWERS, InterestGate, packable, padding_invariant
from mmrec.models.user_features import AttributeEncoder, UserFeatureSchema

__all__ = ["TwoTowerNet", "ID_TOKEN", "principal_init"]

ID_TOKEN = "id"
PCA_SAMPLE = 20_000  # rows used to find a modality's principal directions
ITEM_BLOCK_ROWS = 65_536  # catalog rows fused at a time when the whole table is scored (no gradients)


@torch.no_grad()
def principal_init(projection: nn.Linear, rows: torch.Tensor, block: slice) -> None:
    """Start a modality projection as a truncated PCA of the content written into its own block
    of output coordinates (zeros elsewhere). Modalities in disjoint blocks add up like a
    concatenation, so the untrained item tower already keeps the geometry that tells items apart —
    cosines of the fused vectors approximate the per-modality cosines — rather than a random mix
    of it. Training moves on from there."""
    projection.weight.zero_()
    projection.bias.zero_()
    if len(rows) < 2:
        return
    sample = rows[torch.randperm(len(rows))[:PCA_SAMPLE]] if len(rows) > PCA_SAMPLE else rows
    sample = sample.float()
    _, singular, directions = torch.linalg.svd(sample - sample.mean(dim=0), full_matrices=False)
    width = len(range(projection.out_features)[block])
    keep = int(min(width, (singular > singular[0] * 1e-3).sum()))
    rows_out = torch.arange(projection.out_features)[block][:keep]
    projection.weight[rows_out] = directions[:keep]
    projection.bias[rows_out] = -(directions[:keep] @ sample.mean(dim=0))


class TwoTowerNet(nn.Module):
    """Parameters of a two-tower model over a fixed item table of ``n_items`` rows.

    ``content`` holds each modality's (normalised) vectors for the table's items and ``present``
    which items have which modality; ``trained`` which items had training events (the others are
    cold: they are never a training candidate and are fused from content alone, without their id
    embedding). All three are buffers, saved with the weights. ``init_projections=False`` skips the
    PCA start of the projections (weights about to be loaded; also what lets the network be laid
    out on the ``meta`` device, to check a saved model's shapes before anything is allocated).
    """

    def __init__(self, config: TwoTowerConfig, *, n_items: int, n_events: int,
                 content: Mapping[str, torch.Tensor], present: torch.Tensor,
                 trained: torch.Tensor | None = None, init_projections: bool = True,
                 user_schema: UserFeatureSchema | None = None) -> None:
        super().__init__()
        self.config = config
        dim = config.dim
        self.modalities = list(content)
        self.tokens = self.modalities + ([ID_TOKEN] if config.item_ids else [])
        for i, modality in enumerate(self.modalities):
            self.register_buffer(f"content_{i}", content[modality].float(), persistent=True)
        self.register_buffer("present", present.bool().reshape(n_items, len(self.modalities)))
        self.register_buffer("trained", torch.ones(n_items, dtype=torch.bool) if trained is None
                             else trained.bool().reshape(n_items))
        self.projections = nn.ModuleList(nn.Linear(content[m].shape[1], dim) for m in self.modalities)
        width = max(1, dim // len(self.tokens))
        for i, projection in enumerate(self.projections if init_projections else []):
            block = slice(i * width, (i + 1) * width if i + 1 < len(self.modalities) else dim)
            principal_init(projection, content[self.modalities[i]][self.present[:, i]], block)
        self.id_embedding = nn.Embedding(n_items, dim) if config.item_ids else None
        if self.id_embedding is not None:
            # ids start small next to content (which they refine) and free of it when alone
            nn.init.normal_(self.id_embedding.weight, std=0.1 if not self.modalities else 0.01)
        self.fusion = FUSIONS.get(config.fusion)(len(self.tokens), dim, dropout=config.dropout,
                                                 n_heads=config.n_heads)
        self.event_embedding = nn.Embedding(n_events, dim, padding_idx=0)
        nn.init.normal_(self.event_embedding.weight, std=0.02)  # small next to the item vectors
        self.value_direction = nn.Parameter(torch.zeros(dim))
        self.gap_direction = nn.Parameter(torch.zeros(dim))
        self.tower = TOWERS.get(config.user_tower)(dim, n_events=n_events, n_layers=config.n_layers,
                                                   n_heads=config.n_heads, dropout=config.dropout,
                                                   max_len=config.max_len,
                                                   attention_dropout=config.attention_dropout)
        self.gate = (InterestGate(dim, short_events=config.short_term_events,
                                  short_hours=config.short_term_hours) if config.short_term else None)
        # who the user is (age, country …): added to every interest state, and alone before any event
        self.attributes = (AttributeEncoder(user_schema.cardinalities, len(user_schema.numeric), dim)
                           if user_schema is not None and user_schema.columns else None)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))
        self.rating_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.rating_bias.weight)
        self.rating_affine = nn.Parameter(torch.tensor([3.5, 1.0]))  # global mean, cosine slope

    @property
    def n_items(self) -> int:
        return int(self.present.shape[0])

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp().clamp(max=100.0)

    @property
    def padding_invariant(self) -> bool:
        """Whether a batch may be cut to its longest history (see
        :func:`mmrec.models.towers.padding_invariant`)."""
        return padding_invariant(self.tower)

    @property
    def packable(self) -> bool:
        """Whether training batches may pack several histories per row (see
        :func:`mmrec.models.towers.packable`)."""
        return packable(self.tower)

    def batch_width(self, lengths: np.ndarray, cap: int) -> int:
        """Columns a batch of histories with these ``lengths`` needs: ``cap``, or the longest
        history (at least 1) when the tower ignores left padding."""
        if not self.padding_invariant or not len(lengths):
            return cap
        return int(max(1, min(cap, int(np.max(lengths)))))

    @property
    def has_candidate_scores(self) -> bool:
        return hasattr(self.tower, "candidate_scores")

    # ----------------------------------------------------------------------------- item tower
    def fuse(self, content: list[torch.Tensor], present: torch.Tensor,
             ids: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused item vectors ``(n, dim)`` (not normalised) and modality weights ``(n, T)``.

        ``content[i]`` is modality ``i``'s ``(n, d_i)`` matrix, ``ids`` the items' table rows
        (``-1``: an item the model has no id embedding for, e.g. a new one).
        """
        n = present.shape[0]
        tokens = [proj(matrix) for proj, matrix in zip(self.projections, content, strict=True)]
        masks = [present[:, i] for i in range(len(tokens))]
        if self.id_embedding is not None:
            known = ids >= 0 if ids is not None else torch.zeros(n, dtype=torch.bool, device=present.device)
            safe = ids.clamp_min(0) if ids is not None else torch.zeros(n, dtype=torch.long,
                                                                        device=present.device)
            tokens.append(self.id_embedding(safe))
            masks.append(known)
        return self.fusion(torch.stack(tokens, dim=1), torch.stack(masks, dim=1))

    def item_vectors(self, rows: torch.Tensor | None = None, *, content_only: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused vectors and modality weights of table rows ``rows`` (default: all); with
        ``content_only`` fused without their id embeddings (as cold items are; id dropout)."""
        if rows is None:
            rows = torch.arange(self.n_items, device=self.present.device)
            if self.n_items > ITEM_BLOCK_ROWS and not (torch.is_grad_enabled() or self.training):
                # the whole catalog for scoring: fused a block at a time (at a million items the
                # fusion's intermediate tensors were GBs); row by row the same vectors
                blocks = [self.item_vectors(block, content_only=content_only)
                          for block in rows.split(ITEM_BLOCK_ROWS)]
                return torch.cat([b[0] for b in blocks]), torch.cat([b[1] for b in blocks])
        content = [getattr(self, f"content_{i}")[rows] for i in range(len(self.modalities))]
        ids = torch.full_like(rows, -1) if content_only else self.id_rows(rows)
        return self.fuse(content, self.present[rows], ids)

    def id_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` with ``-1`` where an item gets no id embedding: not in the table (``-1``
        already) or cold (no training events), so it is fused from its content alone."""
        return torch.where((rows >= 0) & self.trained[rows.clamp_min(0)], rows, -1)

    # ----------------------------------------------------------------------------- user tower
    def history_input(self, batch: SequenceBatch, item_table: torch.Tensor) -> torch.Tensor:
        """Per-event input embeddings ``(B, L, d)``: item + event type + rating value + time gap."""
        items = item_table[(batch.items - 1).clamp_min(0)]
        return (items + self.event_embedding(batch.events)
                + batch.values.unsqueeze(-1) * self.value_direction
                + batch.gaps.unsqueeze(-1) / 10.0 * self.gap_direction) * batch.mask.unsqueeze(-1)

    def profile(self, categories: torch.Tensor, numbers: torch.Tensor) -> torch.Tensor | None:
        """The attribute vector ``(B, d)`` of users with these codes (``None``: no attributes)."""
        return None if self.attributes is None else self.attributes(categories, numbers)

    def user_states(self, batch: SequenceBatch, item_table: torch.Tensor,
                    profile: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(states, inputs, gate)``: unnormalised interest states ``(B, L, d)`` at every position
        (plus the users' attribute ``profile``, if any: ``(B, d)`` one per row, or ``(B, L, d)``
        one per position of a packed batch), the history inputs, and the long-term share of the
        interest gate (or ``None``)."""
        x = self.history_input(batch, item_table)
        packed = {} if batch.segments is None else {"segments": batch.segments}
        states = self.tower(x, batch.mask, batch.events, **packed)
        gate = None
        if self.gate is not None:
            states, gate = self.gate(states, x, batch.mask, batch.hours, **packed)
        if profile is not None:
            states = states + (profile if profile.dim() == 3 else profile.unsqueeze(1)).to(states.dtype)
        return states, x, gate

    # ----------------------------------------------------------------------------- scores
    def logits(self, states: torch.Tensor, item_vectors: torch.Tensor) -> torch.Tensor:
        """Scaled cosine scores ``(..., n)`` of states ``(..., d)`` against ``(n, d)`` items."""
        return F.normalize(states, dim=-1) @ F.normalize(item_vectors, dim=-1).T * self.scale

    def unit_logits(self, states: torch.Tensor, unit_items: torch.Tensor) -> torch.Tensor:
        """:meth:`logits` against items already unit-normalised (scoring the whole table: it is
        normalised once), with the scale on the few states: one ``(..., n)`` matrix, not two."""
        return (F.normalize(states, dim=-1) * self.scale) @ unit_items.T

    def candidate_logits(self, x: torch.Tensor, present: torch.Tensor, item_vectors: torch.Tensor,
                         *, last_only: bool = False) -> torch.Tensor:
        """Candidate-aware scores ``(B, L, C)`` for towers that attend to the candidate."""
        return self.tower.candidate_scores(x, present, F.normalize(item_vectors, dim=-1),
                                           last_only=last_only) * self.scale

    def predicted_rating(self, states: torch.Tensor, item_vectors: torch.Tensor,
                         rows: torch.Tensor) -> torch.Tensor:
        """Rating regression head: ``mean + bias[item] + slope * cos(user, item)``."""
        cosine = (F.normalize(states, dim=-1) * F.normalize(item_vectors, dim=-1)).sum(-1)
        mean, slope = self.rating_affine
        return mean + self.rating_bias(rows).squeeze(-1) + slope * cosine
