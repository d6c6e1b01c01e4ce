"""``mmrec train``: one config file → split → fit → test metrics → saved model and item vectors.

A config (YAML or TOML) names the data and the two config dataclasses' fields::

    events: events.csv            # behaviour log (required)
    items: vectors/               # ItemVectors folder from `mmrec encode` (omit: id-only model)
    users: users.csv              # user attributes: a `user` (or `user_id`) column + attribute columns
    out: run/                     # model/, checkpoint/, item_vectors/, metrics.json go here
    split: {kind: leave_last_out, n_test: 1, n_valid: 1}   # or {kind: time_split, test_fraction: 0.1}
    model: {fusion: gated, user_tower: transformer, dim: 64}
    training: {epochs: 20, batch_size: 32}
    event_weights: {weights: {click: 1.0, purchase: 5.0}, explicit: [rating]}
    ks: [10, 20]

Relative paths are relative to the config file.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrec.data.interactions import EventWeights, Interactions
from mmrec.data.readers import read_user_attributes
from mmrec.data.splits import SPLITS, make_split
from mmrec.errors import ConfigError
from mmrec.models.config import TrainConfig, TwoTowerConfig
from mmrec.models.two_tower import TwoTower
from mmrec.utils.config import check_field_types, config_from_dict, read_config_file
from mmrec.utils.io import atomic_write_text
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["TrainJob", "load_train_job", "run_train_job", "SPLITS"]

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainJob:
    """A whole training run, as read from a config file."""

    events: str
    out: str = "run"
    items: str | None = None
    users: str | None = None
    split: dict[str, Any] = field(default_factory=lambda: {"kind": "leave_last_out"})
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    event_weights: dict[str, Any] | None = None
    ks: tuple[int, ...] = (10, 20)

    def __post_init__(self) -> None:
        check_field_types(self)  # events, out, items are paths (text)
        for name in ("split", "model", "training", "event_weights"):
            value = getattr(self, name)
            if not isinstance(value, dict) and not (value is None and name == "event_weights"):
                raise ConfigError(f"train config: `{name}` must be a table of settings, got {value!r}.")
        if isinstance(self.ks, str) or not isinstance(self.ks, list | tuple) or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in self.ks):
            raise ConfigError(f"train config: `ks` must be a list of integers >= 1, got {self.ks!r}.")


def load_train_job(path: str | os.PathLike[str], **overrides: Any) -> TrainJob:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) job file; paths become absolute."""
    path = Path(path)
    values = read_config_file(path, what="train config")
    for section in ("model", "training"):
        if not isinstance(values.get(section, {}), dict):
            raise ConfigError(f"{path}: `{section}` must be a table of settings, got {values[section]!r}.")
        values[section] = {**values.get(section, {}), **overrides.pop(section, {})}
    values.update({k: v for k, v in overrides.items() if v is not None})
    job = config_from_dict(TrainJob, values, where=str(path))
    base = path.parent

    def resolve(value: str | None) -> str | None:
        return None if value is None else str((base / value).resolve())

    return TrainJob(**{**job.__dict__, "events": resolve(job.events), "out": resolve(job.out),
                       "items": resolve(job.items), "users": resolve(job.users), "ks": tuple(job.ks)})


def run_train_job(job: TrainJob) -> dict[str, Any]:
    """Split, train (checkpointing into ``out/checkpoint``, resuming if it exists), evaluate on the
    test part with full ranking, save ``out/model``, ``out/item_vectors`` and ``out/metrics.json``.

    Under ``torchrun --nproc_per_node N`` every process trains its share of each batch
    (:meth:`TwoTower.fit` joins the process group), and the process that was rank 0 alone evaluates
    and saves; the summary's ``rank`` says which process returned it.
    """
    out = Path(job.out)
    events = Interactions.from_path(job.events)
    items = ItemVectors.load(job.items) if job.items else None
    split = make_split(events, job.split)
    logger.info("%s", split)
    weights = (config_from_dict(EventWeights, job.event_weights, where="event_weights")
               if job.event_weights else None)
    model = TwoTower(config_from_dict(TwoTowerConfig, job.model, where="model"),
                     training=config_from_dict(TrainConfig, job.training, where="training"),
                     event_weights=weights)
    users = read_user_attributes(job.users) if job.users else None
    model.fit(items, split.train, valid=split.valid if len(split.valid) else None, users=users,
              checkpoint_dir=out / "checkpoint")
    assert model.history_ is not None
    if model.rank_ != 0:
        return {"split": split.kind, "test": {}, "training": model.history_.to_dict(), "rank": model.rank_}
    metrics = model.evaluate(split.history, split.test, ks=job.ks) if len(split.test) else {}
    model.save(out / "model")
    model.encode_items(items).save(out / "item_vectors")
    summary = {"split": split.kind, "test": metrics, "training": model.history_.to_dict()}
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=1))
    return {**summary, "rank": 0}
