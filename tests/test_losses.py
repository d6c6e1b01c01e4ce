"""Losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from mmrec.models.losses import rating_mse, sampled_softmax_loss, weighted_cross_entropy


def test_weighted_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    targets = torch.tensor([1, 0])
    # row 0: p = 3/4 -> -log(3/4); row 1: p = 1/2 -> log 2
    expected = (1 * -math.log(0.75) + 3 * math.log(2)) / 4
    assert weighted_cross_entropy(logits, targets, torch.tensor([1.0, 3.0])).item() == pytest.approx(expected)


def test_log_q_correction_subtracts_the_sampling_log_probability():
    logits = torch.tensor([[1.0, 1.0]])
    log_q = torch.tensor([0.0, math.log(4.0)])
    # corrected logits (1, 1 - log 4): p(target 0) = 1 / (1 + 1/4) = 0.8
    assert sampled_softmax_loss(logits, torch.tensor([0]), log_q).item() == pytest.approx(-math.log(0.8))


def test_rating_mse_by_hand():
    value = rating_mse(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 3.0]), torch.tensor([2.0, 1.0]))
    assert value.item() == pytest.approx(2.0 / 3.0)
