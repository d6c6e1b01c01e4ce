"""Training losses as pure functions (hand-checked in tests/test_losses.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["weighted_cross_entropy", "sampled_softmax_loss", "rating_mse"]


def _weighted_mean(losses: torch.Tensor, weights: torch.Tensor | None,
                   normalizer: torch.Tensor | None) -> torch.Tensor:
    """``sum(w * loss) / sum(w)`` (w default 1); ``normalizer`` replaces ``sum(w)`` when the rows
    are one process's share of a batch spread over several (its value: the batch's weight sum
    over the number of processes, whose gradients are then averaged)."""
    weights = torch.ones_like(losses) if weights is None else weights.float()
    total = weights.sum() if normalizer is None else normalizer.float()
    return (losses * weights).sum() / total.clamp_min(1e-12)


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor | None = None,
                           normalizer: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax cross-entropy of ``logits (n, C)`` against class ``targets (n,)``, averaged with
    per-row ``weights`` (default 1): ``sum(w * ce) / sum(w)``."""
    return _weighted_mean(F.cross_entropy(logits.float(), targets, reduction="none"), weights, normalizer)


def sampled_softmax_loss(logits: torch.Tensor, targets: torch.Tensor, log_q: torch.Tensor,
                         weights: torch.Tensor | None = None,
                         normalizer: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over a sampled candidate set with the log-q correction.

    ``logits (n, C)`` score each row against ``C`` unique candidates (the batch's positives plus
    sampled negatives), ``targets (n,)`` index the positive among them, ``log_q (C,)`` is the log
    probability that each candidate is in the set; subtracting it makes the sampled softmax an
    unbiased estimate of the full one, so popular items are not over-penalised as negatives.
    """
    return weighted_cross_entropy(logits.float() - log_q.float(), targets, weights, normalizer)


def rating_mse(predicted: torch.Tensor, ratings: torch.Tensor,
               weights: torch.Tensor | None = None,
               normalizer: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean squared error of rating predictions."""
    return _weighted_mean((predicted.float() - ratings.float()).square(), weights, normalizer)
