"""Learned fusion of an item's modality tokens (and its id token) into one vector.

Every fusion takes ``tokens`` of shape ``(n, T, dim)`` (one per modality, plus the id embedding
when the model has one) and a ``present`` mask ``(n, T)``; it returns the fused ``(n, dim)`` vectors
and the per-item modality weights ``(n, T)`` (rows sum to 1 over present tokens, 0 where absent).
Absent modalities are masked out, never averaged in as zeros.
"""

from __future__ import annotations

import torch
from torch import nn

from mmrec.registry import Registry

__all__ = ["FUSIONS", "masked_softmax", "ConcatFusion", "GatedFusion", "AttentionFusion"]

FUSIONS: Registry[type[nn.Module]] = Registry("fusion")


def identity_linear(dim: int) -> nn.Linear:
    """A ``dim → dim`` linear layer that starts as the identity (a fusion begins as a plain mix)."""
    layer = nn.Linear(dim, dim)
    nn.init.eye_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def masked_softmax(logits: torch.Tensor, present: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the ``present`` entries only; rows with nothing present are all zero."""
    logits = logits.float().masked_fill(~present, float("-inf"))
    any_present = present.any(dim=dim, keepdim=True)
    weights = torch.softmax(logits.masked_fill(~any_present, 0.0), dim=dim)
    return weights * present


@FUSIONS.register("concat", "mlp")
class ConcatFusion(nn.Module):
    """Concatenate the tokens (absent ones zeroed) and mix them with a two-layer MLP.

    It starts as the mean of the tokens, so training refines the content geometry instead of
    starting from a random projection of it: the first layer computes ``[m, -m]`` (``m`` the token
    mean) and the second ``GELU(m) - GELU(-m) = m``. The modality weights are each token's share of
    the first layer's pre-activation norm.
    """

    def __init__(self, n_tokens: int, dim: int, *, dropout: float = 0.0, n_heads: int = 1) -> None:
        super().__init__()
        self.first = nn.Linear(n_tokens * dim, 2 * dim)
        self.rest = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.n_tokens, self.dim = n_tokens, dim
        with torch.no_grad():
            mean = torch.eye(dim).repeat(1, n_tokens) / n_tokens  # (dim, T·dim)
            self.first.weight.copy_(torch.cat([mean, -mean]))
            self.first.bias.zero_()
            self.rest[2].weight.copy_(torch.cat([torch.eye(dim), -torch.eye(dim)], dim=1))
            self.rest[2].bias.zero_()

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = tokens * present.unsqueeze(-1)
        hidden = self.first(tokens.flatten(1))
        blocks = self.first.weight.view(-1, self.n_tokens, self.dim)  # (2d, T, d)
        contributions = torch.einsum("ntd,htd->nth", tokens, blocks).norm(dim=-1)
        total = contributions.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return self.rest(hidden), contributions / total


@FUSIONS.register("gated", "gate")
class GatedFusion(nn.Module):
    """Weighted sum of the tokens; the weights are a softmax of learned per-token gate scores."""

    def __init__(self, n_tokens: int, dim: int, *, dropout: float = 0.0, n_heads: int = 1) -> None:
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))
        self.token_bias = nn.Parameter(torch.zeros(n_tokens))
        self.out = identity_linear(dim)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.gate(tokens).squeeze(-1) + self.token_bias
        weights = masked_softmax(scores, present).to(tokens.dtype)
        return self.out(torch.einsum("nt,ntd->nd", weights, tokens)), weights


@FUSIONS.register("attention", "attn")
class AttentionFusion(nn.Module):
    """A learned query attends over the modality tokens (multi-head); weights are the attention
    probabilities averaged over heads. A token-type embedding tells the modalities apart. The value
    and output projections start as the identity and the query near zero, so it starts as the
    mean of the present tokens."""

    def __init__(self, n_tokens: int, dim: int, *, dropout: float = 0.0, n_heads: int = 2) -> None:
        super().__init__()
        if dim % n_heads:
            n_heads = 1
        self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.token_type = nn.Parameter(torch.randn(n_tokens, dim) * 0.02)
        self.attention = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True)
        with torch.no_grad():
            self.attention.in_proj_weight[2 * dim :].copy_(torch.eye(dim))
            self.attention.in_proj_bias.zero_()
            self.attention.out_proj.weight.copy_(torch.eye(dim))
            self.attention.out_proj.bias.zero_()
        self.norm = nn.LayerNorm(dim)
        self.out = identity_linear(dim)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.norm(tokens + self.token_type)
        empty = ~present.any(dim=1)
        # an item without any token attends to a dummy (present) slot and is zeroed below
        safe = present.clone()
        safe[empty, 0] = True
        query = self.query.expand(len(tokens), -1, -1)
        fused, weights = self.attention(query, keys, tokens, key_padding_mask=~safe,
                                        need_weights=True, average_attn_weights=True)
        fused = fused.squeeze(1) * (~empty).unsqueeze(-1)
        weights = weights.squeeze(1) * present
        return self.out(fused), weights
