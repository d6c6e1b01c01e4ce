"""User-interest towers: ordered history embeddings in, one causal interest state per position out.

A tower maps ``x`` of shape ``(B, L, d)`` (left-padded, ``present`` mask ``(B, L)``) to states
``(B, L, d)`` where the state at ``t`` depends only on events ``<= t``. Training scores the state at
``t`` against the item at ``t + 1`` for every position in one pass; a user's vector is the state at
the last position. Towers that can look at the candidate item (``attention``) also implement
``candidate_scores``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmrec.registry import Registry

__all__ = ["TOWERS", "InterestGate", "causal_mean", "packable", "padding_invariant", "steps_to_segment_end"]

TOWERS: Registry[type[nn.Module]] = Registry("user tower")


def padding_invariant(tower: nn.Module) -> bool:
    """Whether ``tower``'s states at present positions ignore how much left padding precedes them
    (masked attention and pooling with right-aligned positions do; a recurrent cell does not):
    then a batch is cut to its longest history instead of ``max_len``, and training and scoring
    cost follow the events, not users × ``max_len``. Towers registered elsewhere count as not."""
    return bool(getattr(tower, "padding_invariant", False))


def packable(tower: nn.Module) -> bool:
    """Whether ``tower`` reads packed batches (several histories per row, ``segments`` given to
    ``forward``): then training packs short windows into shared rows, and a step's cost follows
    its events instead of windows × the longest window."""
    return bool(getattr(tower, "packable", False))


def _segment_starts(segments: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` column where each position's run of equal ``segments`` values begins."""
    cols = torch.arange(segments.shape[1], device=segments.device).expand_as(segments)
    begins = torch.ones_like(segments, dtype=torch.bool)
    begins[:, 1:] = segments[:, 1:] != segments[:, :-1]
    return torch.cummax(torch.where(begins, cols, 0), dim=1).values


def steps_to_segment_end(segments: torch.Tensor) -> torch.Tensor:
    """``(B, L)``: how many positions after ``t`` its run of equal ``segments`` values goes on (0 at
    a history's latest event) — what right-aligned positions count in a packed row."""
    length = segments.shape[1]
    cols = torch.arange(length, device=segments.device).expand_as(segments)
    ends = torch.ones_like(segments, dtype=torch.bool)
    ends[:, :-1] = segments[:, 1:] != segments[:, :-1]
    last = torch.where(ends, cols, length)
    return torch.flip(torch.cummin(torch.flip(last, [1]), dim=1).values, [1]) - cols


def _same_history(segments: torch.Tensor) -> torch.Tensor:
    """``(B, L, L)``: whether positions ``t`` and ``s`` of a packed row belong to one history."""
    return segments[:, :, None] == segments[:, None, :]


def causal_mean(x: torch.Tensor, weights: torch.Tensor, segments: torch.Tensor | None = None
                ) -> torch.Tensor:
    """Running weighted mean over positions ``<= t`` (of ``t``'s own history when ``segments``
    packs several in a row): ``(B, L, d)`` from ``x`` and ``weights (B, L)``."""
    total = torch.cumsum(x * weights.unsqueeze(-1), dim=1)
    norm = torch.cumsum(weights, dim=1)
    if segments is not None:  # minus the sums up to the column before the history's first
        starts = _segment_starts(segments)
        before, at_row_start = (starts - 1).clamp_min(0), starts == 0
        total = total - torch.where(at_row_start.unsqueeze(-1), 0.0,
                                    total.gather(1, before.unsqueeze(-1).expand_as(total)))
        norm = norm - torch.where(at_row_start, 0.0, norm.gather(1, before))
    return total / norm.unsqueeze(-1).clamp_min(1e-6)


@TOWERS.register("mean", "pooling")
class MeanTower(nn.Module):
    """Event-weighted pooling: a learned non-negative weight per event type, then a linear map."""

    padding_invariant = True  # see padding_invariant()
    packable = True  # see packable()

    def __init__(self, dim: int, *, n_events: int, n_layers: int = 1, n_heads: int = 1,
                 dropout: float = 0.0, max_len: int = 200, attention_dropout: float | None = None) -> None:
        super().__init__()
        self.event_weight = nn.Embedding(n_events, 1)
        nn.init.zeros_(self.event_weight.weight)
        self.out = nn.Linear(dim, dim)
        nn.init.eye_(self.out.weight)  # starts as plain pooling of the item vectors
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, present: torch.Tensor, events: torch.Tensor,
                segments: torch.Tensor | None = None) -> torch.Tensor:
        weights = F.softplus(self.event_weight(events).squeeze(-1) + 0.5413) * present  # softplus(.54)=1
        return self.out(causal_mean(x, weights, segments))


@TOWERS.register("dnn", "youtube")
class DNNTower(nn.Module):
    """Embedding + sum pooling (averaged, so its scale does not grow with the history) + an MLP."""

    padding_invariant = True
    packable = True

    def __init__(self, dim: int, *, n_events: int, n_layers: int = 2, n_heads: int = 1,
                 dropout: float = 0.0, max_len: int = 200, attention_dropout: float | None = None) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(max(1, n_layers)):
            layers += [nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)]
        self.mlp = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, present: torch.Tensor, events: torch.Tensor,
                segments: torch.Tensor | None = None) -> torch.Tensor:
        pooled = causal_mean(x, present.to(x.dtype), segments)
        return pooled + self.mlp(self.norm(pooled))


class _RecurrentTower(nn.Module):
    cell: type[nn.Module] = nn.GRU
    padding_invariant = False  # the state moves through the padding steps (the cell's biases)

    def __init__(self, dim: int, *, n_events: int, n_layers: int = 1, n_heads: int = 1,
                 dropout: float = 0.0, max_len: int = 200, attention_dropout: float | None = None) -> None:
        super().__init__()
        self.rnn = self.cell(dim, dim, num_layers=max(1, n_layers), batch_first=True,
                             dropout=dropout if n_layers > 1 else 0.0)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, present: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
        # left padding: the padding steps come first and carry zero input; the state they leave
        # depends on how many there are, so batches of this tower keep their full width
        states, _ = self.rnn(x * present.unsqueeze(-1))
        return self.out(states)


@TOWERS.register("gru")
class GRUTower(_RecurrentTower):
    """A GRU over the history (GRU4Rec-style)."""

    cell = nn.GRU


@TOWERS.register("lstm")
class LSTMTower(_RecurrentTower):
    """An LSTM over the history."""

    cell = nn.LSTM


class CausalBlock(nn.Module):
    """Pre-norm transformer block with causal, padding-aware multi-head self-attention."""

    def __init__(self, dim: int, n_heads: int, dropout: float,
                 attention_dropout: float | None = None) -> None:
        super().__init__()
        self.n_heads = n_heads
        # dropout on the attention weights (None: ``dropout``). At 0 the fused (flash) kernel runs
        # in training too: with dropout CPU attention materialises and masks (B, H, L, L) weights
        # (1.18x training throughput on ML-1M at max_len 200)
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        drop = self.attention_dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=drop)
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(b, length, dim)))
        return x + self.dropout(self.ffn(self.norm2(x)))


def causal_allowed(present: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
    """``(B, 1, L, L)`` mask: position ``t`` sees present positions ``<= t`` (of its own history,
    when ``segments`` packs several in a row) and always itself."""
    length = present.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=present.device).tril()
    allowed = causal & present[:, None, :]
    if segments is not None:
        allowed = allowed & _same_history(segments)
    return (allowed | torch.eye(length, dtype=torch.bool, device=present.device)).unsqueeze(1)


@TOWERS.register("transformer", "sasrec")
class TransformerTower(nn.Module):
    """Causal self-attention over the history with learned positions (SASRec-style)."""

    padding_invariant = True  # positions count back from the latest event
    packable = True

    def __init__(self, dim: int, *, n_events: int, n_layers: int = 2, n_heads: int = 2,
                 dropout: float = 0.2, max_len: int = 200, attention_dropout: float | None = None) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(CausalBlock(dim, n_heads, dropout, attention_dropout)
                                    for _ in range(max(1, n_layers)))
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, present: torch.Tensor, events: torch.Tensor,
                segments: torch.Tensor | None = None) -> torch.Tensor:
        length, max_len = x.shape[1], self.position.shape[0]
        if segments is None:
            positions = self.position[-length:]
        else:  # each history's positions count back from its own latest event
            positions = self.position[(max_len - 1 - steps_to_segment_end(segments)).clamp_min(0)]
        x = self.dropout(x + positions) * present.unsqueeze(-1)
        allowed = causal_allowed(present, segments)
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)


@TOWERS.register("attention", "din", "target_attention")
class TargetAttentionTower(nn.Module):
    """Multi-head attention between the history and the candidate item (DIN-style).

    ``candidate_scores`` lets every candidate attend over the history (keys ``<= t`` at each
    position) and scores the candidate against what it attended to — in one pass for all positions,
    because the score is linear in the attention output: with ``a`` the attention logits and ``r``
    the per-event relevance ``<v_s, c>``, the score at ``t`` is ``cumsum(e^a r) / cumsum(e^a)``.
    ``forward`` (used for the retrieval vector, which cannot know the candidate) lets a learned
    query attend instead; both are trained together.
    """

    padding_invariant = True

    def __init__(self, dim: int, *, n_events: int, n_layers: int = 1, n_heads: int = 2,
                 dropout: float = 0.0, max_len: int = 200, attention_dropout: float | None = None) -> None:
        super().__init__()
        if dim % n_heads:
            n_heads = 1
        self.n_heads, self.head_dim = n_heads, dim // n_heads
        self.norm = nn.LayerNorm(dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim, bias=False)
        self.position = nn.Parameter(torch.zeros(max_len, n_heads))  # recency bias per head
        self.retrieval_query = nn.Parameter(torch.randn(dim) * 0.02)

    def _keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, length, _ = x.shape
        h = self.norm(x)
        keys = self.key(h).view(b, length, self.n_heads, self.head_dim)
        values = self.value(h).view(b, length, self.n_heads, self.head_dim)
        return keys, values

    def _pool(self, logits: torch.Tensor, relevance: torch.Tensor, present: torch.Tensor,
              last_only: bool) -> torch.Tensor:
        """Causal softmax-weighted mean of ``relevance`` along the last axis (positions), summed
        over heads; only the last position's when ``last_only``."""
        logits = logits.float().masked_fill(~present[:, None, None, :], float("-inf"))
        top = logits.amax(dim=-1, keepdim=True).clamp_min(-1e4)
        weights = torch.exp(logits - top)
        weighted = weights * relevance.float()
        if last_only:
            pooled = weighted.sum(-1, keepdim=True) / weights.sum(-1, keepdim=True).clamp_min(1e-20)
        else:
            pooled = torch.cumsum(weighted, -1) / torch.cumsum(weights, -1).clamp_min(1e-20)
        return pooled.sum(dim=1)  # over heads

    def candidate_scores(self, x: torch.Tensor, present: torch.Tensor, candidates: torch.Tensor,
                         *, last_only: bool = False) -> torch.Tensor:
        """Scores ``(B, L, C)`` of candidates ``(C, d)`` (or per-row ``(B, C, d)``) at every position
        (``(B, 1, C)``: the last position only, when ``last_only``)."""
        b, length, _ = x.shape
        keys, values = self._keys_values(x)
        if candidates.dim() == 2:
            candidates = candidates.unsqueeze(0).expand(b, -1, -1)
        n_cand = candidates.shape[1]
        queries = self.query(candidates).view(b, n_cand, self.n_heads, self.head_dim)
        targets = (candidates @ self.out.weight).view(b, n_cand, self.n_heads, self.head_dim)
        logits = torch.einsum("bchk,blhk->bhcl", queries, keys) / math.sqrt(self.head_dim)
        logits = logits + self.position[-length:].T[None, :, None, :]
        relevance = torch.einsum("bchk,blhk->bhcl", targets, values)
        return self._pool(logits, relevance, present, last_only).transpose(1, 2)

    def forward(self, x: torch.Tensor, present: torch.Tensor, events: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        keys, values = self._keys_values(x)
        query = self.retrieval_query.view(self.n_heads, self.head_dim)
        logits = torch.einsum("hk,blhk->bhl", query, keys) / math.sqrt(self.head_dim)
        logits = logits + self.position[-length:].T[None]
        logits = logits.float().masked_fill(~present[:, None, :], float("-inf"))
        top = logits.amax(dim=-1, keepdim=True).clamp_min(-1e4)
        weights = torch.exp(logits - top)  # (B, H, L)
        summed = torch.cumsum(weights.unsqueeze(-1) * values.permute(0, 2, 1, 3).float(), dim=2)
        pooled = summed / torch.cumsum(weights, dim=-1).unsqueeze(-1).clamp_min(1e-20)
        return self.out(pooled.permute(0, 2, 1, 3).reshape(b, length, dim).to(x.dtype))


class InterestGate(nn.Module):
    """Long-term interest (the tower's state) and short-term interest (mean of the last
    ``short_events`` events, or of those in the last ``short_hours`` hours) mixed by a learned gate."""

    def __init__(self, dim: int, *, short_events: int | None = None,
                 short_hours: float | None = None) -> None:
        super().__init__()
        self.short_events, self.short_hours = short_events, short_hours
        self.short = nn.Linear(dim, dim)
        self.gate = nn.Linear(2 * dim, 1)

    def window(self, present: torch.Tensor, hours: torch.Tensor,
               segments: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, L, L)`` float: which events ``s`` are in the short-term window of position ``t``
        (of ``t``'s own history, when ``segments`` packs several in a row)."""
        length = present.shape[1]
        steps = torch.arange(length, device=present.device)
        ago = steps[:, None] - steps[None, :]  # t - s
        inside = (ago >= 0).unsqueeze(0) & present[:, None, :]
        if segments is not None:
            inside = inside & _same_history(segments)
        if self.short_events is not None:
            inside = inside & (ago < self.short_events).unsqueeze(0)
        if self.short_hours is not None:
            inside = inside & ((hours[:, None, :] - hours[:, :, None]) <= self.short_hours)
        return inside.float()

    def forward(self, long: torch.Tensor, x: torch.Tensor, present: torch.Tensor,
                hours: torch.Tensor, segments: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        window = self.window(present, hours, segments)
        short = torch.bmm(window, x.float()) / window.sum(-1, keepdim=True).clamp_min(1.0)
        short = self.short(short.to(x.dtype))
        gate = torch.sigmoid(self.gate(torch.cat([long, short], dim=-1)))
        return gate * long + (1 - gate) * short, gate.squeeze(-1)
