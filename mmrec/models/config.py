"""Typed configuration of a two-tower model and of its training run.

Defaults are commented; a YAML/TOML file for ``mmrec train`` holds a ``model:`` and a ``training:``
section with these keys (unknown keys are errors).
"""

from __future__ import annotations

from dataclasses import dataclass

from mmrec.errors import ConfigError
from mmrec.models.schedules import LR_FACTORS
from mmrec.utils.config import check_field_types

__all__ = ["TwoTowerConfig", "TrainConfig"]


@dataclass(frozen=True)
class TwoTowerConfig:
    """Architecture of :class:`mmrec.TwoTower`."""

    fusion: str = "gated"               # concat | gated | attention: how modality tokens merge
    user_tower: str = "transformer"     # mean | dnn | gru | lstm | attention | transformer
    dim: int = 64                       # width of item and user vectors
    item_ids: bool = True               # a learned id embedding joins the modality tokens
    modalities: tuple[str, ...] | None = None  # content modalities used (None: all that are given)
    max_len: int = 200                  # events of history the user tower reads
    n_layers: int = 2                   # layers of the user tower (transformer blocks, RNN layers, MLPs)
    n_heads: int = 2                    # attention heads (transformer, attention tower and fusion)
    dropout: float = 0.2
    attention_dropout: float | None = None  # on self-attention weights (None: dropout; 0: fused kernel)
    short_term_events: int | None = None   # short-term interest over the last N events ...
    short_term_hours: float | None = None  # ... and/or the last T hours, gated with the long-term one
    temperature: float = 0.07           # initial softmax temperature of the cosine scores (learned)

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.modalities is not None:
            modalities = (self.modalities,) if isinstance(self.modalities, str) else self.modalities
            if not isinstance(modalities, list | tuple) or not all(isinstance(m, str) for m in modalities):
                raise ConfigError(f"TwoTowerConfig.modalities must be a list of modality names (or None), "
                                  f"got {self.modalities!r}.")
            object.__setattr__(self, "modalities", tuple(modalities))
        for name in ("dim", "max_len", "n_layers", "n_heads"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"TwoTowerConfig.{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise ConfigError(f"TwoTowerConfig.{name} must be in [0, 1), got {value}.")
        if not self.temperature > 0:
            raise ConfigError(f"TwoTowerConfig.temperature must be > 0, got {self.temperature}.")
        if self.short_term_events is not None and self.short_term_events < 1:
            raise ConfigError("TwoTowerConfig.short_term_events must be >= 1 (or None).")
        if self.short_term_hours is not None and not self.short_term_hours > 0:
            raise ConfigError("TwoTowerConfig.short_term_hours must be > 0 (or None).")

    @property
    def short_term(self) -> bool:
        return self.short_term_events is not None or self.short_term_hours is not None


@dataclass(frozen=True)
class TrainConfig:
    """How :meth:`mmrec.TwoTower.fit` trains."""

    epochs: int = 20                    # upper bound; early stopping usually ends sooner
    batch_size: int = 32                # history windows per step (small batches: more updates per epoch)
    lr: float = 2e-3
    weight_decay: float = 0.0
    loss: str = "auto"                  # full | sampled | auto (full softmax up to full_softmax_items)
    full_softmax_items: int = 8_192
    n_negatives: int = 2048             # shared uniform negatives per step for the sampled softmax
    rating_weight: float = 0.1          # weight of the rating-regression (MSE) loss on explicit events
    patience: int = 3                   # epochs without validation improvement before stopping
    valid_k: int = 20                   # early stopping watches Recall@valid_k on the validation split
    max_valid_users: int | None = 5000  # validation on a fixed sample of users (None: all)
    seed: int = 0
    device: str = "auto"                # auto | cpu | cuda | cuda:N
    amp: bool = True                    # mixed precision (bfloat16/float16) on CUDA
    cpu_amp: bool = False               # bfloat16 autocast on CPU too (fast with AMX / AVX512-BF16)
    lr_schedule: str = "constant"       # constant | cosine: decays to lr_floor x lr over the run
    lr_floor: float = 0.05              # (epochs, or time_budget_s when set: whichever ends first)
    grad_clip: float | None = 5.0
    id_dropout: float = 0.2             # share of each step's candidates scored by their content-only vector
    user_attribute_weight: float = 0.5  # loss of the attribute vector alone predicting the user's events
    prior_users: int = 500              # users held out to fit the fading popularity prior (0: no prior)
    content_blend: bool = True          # cold items: + raw content similarity, calibrated (content models)
    time_budget_s: float | None = None  # no epoch starts that the mean epoch so far says would end past it
    length_buckets: int = 0             # >= 1: batches cut to their longest window; > 1: drawn by length
                                        # from pools of this many batches (0: full-width, uniform)
    pack: bool = True                   # short windows share a row (block-diagonal causal attention),
                                        # rows as wide as the batch's longest window (towers that can)
    sparse_ids: bool | None = None      # lazy Adam on the per-item tables (id embedding, rating bias);
                                        # None: past 50,000 items, no weight decay, one process

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.user_attribute_weight < 0 or self.prior_users < 0:
            raise ConfigError("TrainConfig.user_attribute_weight and prior_users must be >= 0, got "
                              f"{self.user_attribute_weight} and {self.prior_users}.")
        if not 0 <= self.id_dropout < 1:
            raise ConfigError(f"TrainConfig.id_dropout must be in [0, 1), got {self.id_dropout}.")
        if self.loss not in ("auto", "full", "sampled"):
            raise ConfigError(f"TrainConfig.loss must be 'auto', 'full' or 'sampled', got {self.loss!r}.")
        if self.lr_schedule not in LR_FACTORS:
            raise ConfigError(f"TrainConfig.lr_schedule must be one of {sorted(LR_FACTORS)}, "
                              f"got {self.lr_schedule!r}.")
        if not 0 <= self.lr_floor <= 1:
            raise ConfigError(f"TrainConfig.lr_floor must be in [0, 1], got {self.lr_floor}.")
        if self.length_buckets < 0:
            raise ConfigError(f"TrainConfig.length_buckets must be >= 0, got {self.length_buckets}.")
        for name in ("epochs", "batch_size", "n_negatives", "valid_k"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(f"TrainConfig.time_budget_s must be > 0 seconds (or None), got "
                              f"{self.time_budget_s}.")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr must be > 0, got {self.lr}.")
        if self.patience < 0 or self.rating_weight < 0:
            raise ConfigError("TrainConfig.patience and rating_weight must be >= 0.")
        if self.weight_decay < 0 or (self.grad_clip is not None and not self.grad_clip > 0):
            raise ConfigError(f"TrainConfig.weight_decay must be >= 0 and grad_clip > 0 (or None), got "
                              f"{self.weight_decay} and {self.grad_clip}.")
        if not 0 <= self.seed < 2**63:  # torch's seed range
            raise ConfigError(f"TrainConfig.seed must be in [0, 2**63), got {self.seed}.")
        if self.full_softmax_items < 0 or (self.max_valid_users is not None and self.max_valid_users < 1):
            raise ConfigError("TrainConfig.full_softmax_items must be >= 0 and max_valid_users >= 1 "
                              "(or None).")
