"""Training losses as pure functions (hand-checked in tests/test_losses.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["weighted_cross_entropy", "sampled_softmax_loss", "rating_mse"]


def weighted_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax cross-entropy of ``logits (n, C)`` against class ``targets (n,)``, averaged with
    per-row ``weights`` (default 1): ``sum(w * ce) / sum(w)``."""
    losses = F.cross_entropy(logits.float(), targets, reduction="none")
    if weights is None:
        return losses.mean()
    weights = weights.float()
    return (losses * weights).sum() / weights.sum().clamp_min(1e-12)


def sampled_softmax_loss(logits: torch.Tensor, targets: torch.Tensor, log_q: torch.Tensor,
                         weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over a sampled candidate set with the log-q correction.

    ``logits (n, C)`` score each row against ``C`` unique candidates (the batch's positives plus
    sampled negatives), ``targets (n,)`` index the positive among them, ``log_q (C,)`` is the log
    probability that each candidate is in the set; subtracting it makes the sampled softmax an
    unbiased estimate of the full one, so popular items are not over-penalised as negatives.
    """
    return weighted_cross_entropy(logits.float() - log_q.float(), targets, weights)


def rating_mse(predicted: torch.Tensor, ratings: torch.Tensor,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean squared error of rating predictions."""
    errors = (predicted.float() - ratings.float()).square()
    if weights is None:
        return errors.mean()
    weights = weights.float()
    return (errors * weights).sum() / weights.sum().clamp_min(1e-12)
