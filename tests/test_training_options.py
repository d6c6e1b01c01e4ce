"""Training-speed and schedule options: attention dropout, CPU bfloat16 autocast, the LR schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmrec
from mmrec.errors import ConfigError
from mmrec.models import schedules, training
from mmrec.models.config import TrainConfig
from mmrec.models.optimizers import TrainOptimizer
from mmrec.models.schedules import LR_FACTORS, RunClock
from mmrec.models.towers import TOWERS, CausalBlock

TINY = {"dim": 16, "max_len": 20, "n_layers": 1, "batch_size": 32, "max_valid_users": None}


@pytest.fixture(scope="module")
def split(demo_events):
    return mmrec.leave_last_out(demo_events)


def _two_training_passes(block: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8)
    allowed = torch.ones(6, 6, dtype=torch.bool).tril()[None, None].expand(2, 1, 6, 6)
    block.train()
    return block(x, allowed), block(x, allowed)


def test_attention_dropout_is_its_own_knob_and_defaults_to_dropout():
    first, second = _two_training_passes(CausalBlock(8, 2, dropout=0.0, attention_dropout=0.5))
    assert not torch.allclose(first, second)  # the attention weights are dropped at random
    first, second = _two_training_passes(CausalBlock(8, 2, dropout=0.0, attention_dropout=0.0))
    assert torch.equal(first, second)
    assert CausalBlock(8, 2, dropout=0.3).attention_dropout == 0.3
    tower = TOWERS.get("transformer")(8, n_events=3, n_layers=2, n_heads=2, dropout=0.2,
                                      attention_dropout=0.0)
    assert [block.attention_dropout for block in tower.blocks] == [0.0, 0.0]
    model = mmrec.TwoTower(user_tower="transformer", attention_dropout=0.0, **TINY)
    assert model.config.attention_dropout == 0.0


def test_option_errors_name_the_field():
    with pytest.raises(ConfigError, match="attention_dropout"):
        mmrec.TwoTower(attention_dropout=1.5)
    with pytest.raises(ConfigError, match="lr_schedule"):
        mmrec.TwoTower(lr_schedule="step")
    with pytest.raises(ConfigError, match="lr_floor"):
        mmrec.TwoTower(lr_floor=2.0)


def test_cosine_factor_falls_from_one_to_the_floor_and_constant_stays():
    fractions = np.linspace(0.0, 1.2, 25)
    cosine = [LR_FACTORS["cosine"](f, 0.1) for f in fractions]
    assert cosine[0] == pytest.approx(1.0) and cosine[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(cosine, cosine[1:], strict=False))
    assert LR_FACTORS["cosine"](0.5, 0.1) == pytest.approx(0.55)
    assert {LR_FACTORS["constant"](f, 0.1) for f in fractions} == {1.0}


def test_run_clock_reads_epochs_or_the_time_budget_whichever_is_further(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(schedules.time, "perf_counter", lambda: now[0])
    clock = RunClock(epochs=4, budget_s=50.0)
    assert clock.fraction(1, 5, 10) == pytest.approx(1.5 / 4)
    now[0] = 140.0  # 40 of 50 s gone: further than 1.5 of 4 epochs
    assert clock.fraction(1, 5, 10) == pytest.approx(0.8)
    by_epochs_only = RunClock(epochs=4, budget_s=50.0, by_time=False, began=0.0)
    assert by_epochs_only.fraction(1, 5, 10) == pytest.approx(1.5 / 4)
    assert RunClock(epochs=4).fraction(3, 10, 10) == pytest.approx(1.0)


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_a_cosine_fit_steps_its_learning_rate_down_every_step(demo_items, split, schedule, monkeypatch):
    factors: list[float] = []
    original = TrainOptimizer.scale_lr

    def recorded(self, factor):
        factors.append(factor)
        original(self, factor)
        assert all(g["lr"] == pytest.approx(2e-3 * factor) for o in self.optimizers for g in o.param_groups)

    monkeypatch.setattr(TrainOptimizer, "scale_lr", recorded)
    model = mmrec.TwoTower(user_tower="transformer", epochs=2, patience=5, lr=2e-3, lr_schedule=schedule,
                           lr_floor=0.1, **{**TINY, "batch_size": 8})
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    if schedule == "constant":
        assert factors == []
        return
    assert len(factors) > 4 and factors[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(factors, factors[1:], strict=False))
    steps = len(factors) // 2  # per epoch: the last step is at (1 + (steps - 1) / steps) / 2 of the run
    assert factors[-1] == pytest.approx(LR_FACTORS["cosine"]((2 * steps - 1) / (2 * steps), 0.1))
    assert 0.1 < factors[-1] < 0.25
    losses = [e["loss"] for e in model.history_.epochs]
    assert losses[1] < losses[0]


def test_cpu_amp_autocasts_training_to_bfloat16_and_trains(demo_items, split, monkeypatch):
    context = training._autocast(torch.device("cpu"), TrainConfig(cpu_amp=True))
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    assert not isinstance(training._autocast(torch.device("cpu"), TrainConfig()), torch.autocast)
    seen: list[torch.dtype] = []
    original = training._Batcher.loss

    def spied(self, batch, generator, normalizer=None):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return original(self, batch, generator, normalizer)

    monkeypatch.setattr(training._Batcher, "loss", spied)
    model = mmrec.TwoTower(user_tower="transformer", epochs=2, patience=5, cpu_amp=True, **TINY)
    model.fit(demo_items, split.train, valid=split.valid, show_progress=False)
    assert seen and set(seen) == {torch.bfloat16}
    losses = [e["loss"] for e in model.history_.epochs]
    assert all(np.isfinite(losses)) and losses[1] < losses[0]
    vectors = model.encode_users(split.train).vectors
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
