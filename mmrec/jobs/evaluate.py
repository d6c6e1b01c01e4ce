"""``mmrec evaluate``: one config file → data → split → every model fitted and scored the same way.

A config (YAML or TOML)::

    dataset: ml-100k              # a bundled real dataset (mmrec.datasets), or:
    events: events.csv            #   a behaviour log, and optionally
    catalog: items.csv            #   a catalog (encoded with `encoders` when `items` is absent)
    items: vectors/               # an ItemVectors folder from `mmrec encode` (optional)
    encoders: {text: text-tfidf, image: null, audio: null}   # encode the catalog here
    split: {kind: leave_last_out}  # time_split, random_split, cold_item_split, cold_user_split
    models:                        # name: {kind: ..., options}; kind defaults to the name
      popularity: {}
      item_knn: {neighbours: 100}
      bpr: {epochs: 30}
      content_mean: {}
      sasrec: {kind: two_tower, user_tower: transformer, epochs: 5, content: false}
      graph: {kind: lightgcn, epochs: 20}   # item side starts from the content vectors
      mine: {path: run/model}      # a saved model (any kind: model.save / mmrec train), not refitted
    evaluation: {ks: [5, 10, 20], sampled_negatives: null, ann_spec: HNSW32,
                 diversify: [0, 0.1, 0.3], rerank: mmr}   # one row per λ: re-ranked for variety
    category: genres               # a catalog column: category diversity and miscalibration
    category_separator: " "        # how several categories are written in one cell (default "|")
    out: eval/                     # metrics.csv, metrics.json, metrics.md, metrics.png

``content: false`` trains a model without the item vectors (id-only). Relative paths are relative
to the config file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mmrec.data.catalog import Catalog
from mmrec.data.interactions import Interactions
from mmrec.data.splits import make_split
from mmrec.errors import ConfigError
from mmrec.evaluation.harness import EvalConfig, evaluate_models
from mmrec.evaluation.registry import make_model
from mmrec.evaluation.report import EvaluationReport
from mmrec.utils.config import check_field_types, config_from_dict, read_config_file
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["EvaluateJob", "load_evaluate_job", "run_evaluate_job"]

logger = logging.getLogger(__name__)

DEFAULT_MODELS = {"popularity": {}, "item_knn": {}, "bpr": {}}


@dataclass(frozen=True)
class EvaluateJob:
    """A whole evaluation, as read from a config file."""

    dataset: str | None = None
    events: str | None = None
    catalog: str | None = None
    items: str | None = None
    encoders: dict[str, Any] | None = None
    split: dict[str, Any] = field(default_factory=lambda: {"kind": "leave_last_out"})
    models: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_MODELS))
    evaluation: dict[str, Any] = field(default_factory=dict)
    out: str = "eval"
    category: str | None = None
    category_separator: str = "|"

    def __post_init__(self) -> None:
        check_field_types(self)  # dataset, events, catalog, items, out are names or paths (text)
        for name in ("encoders", "split", "models", "evaluation"):
            value = getattr(self, name)
            if not isinstance(value, dict) and not (value is None and name == "encoders"):
                raise ConfigError(f"evaluate config: `{name}` must be a table of settings, got {value!r}.")
        if (self.dataset is None) == (self.events is None):
            raise ConfigError("evaluate config: give either `dataset` (e.g. ml-100k) or `events`.")
        if not self.models:
            raise ConfigError("evaluate config: `models` is empty.")


def load_evaluate_job(path: str | os.PathLike[str], **overrides: Any) -> EvaluateJob:
    """Read an evaluate job file (YAML or TOML); relative paths become absolute."""
    path = Path(path)
    values = read_config_file(path, what="evaluate config")
    if not isinstance(values.get("evaluation", {}), dict):
        raise ConfigError(f"{path}: `evaluation` must be a table of settings, got {values['evaluation']!r}.")
    values["evaluation"] = {**values.get("evaluation", {}), **overrides.pop("evaluation", {})}
    values.update({k: v for k, v in overrides.items() if v is not None})
    job = config_from_dict(EvaluateJob, values, where=str(path))
    base = path.parent

    def resolve(value: str | None) -> str | None:
        return None if value is None else str((base / value).resolve())

    models = {name: {**options, "path": resolve(options["path"])}
              if isinstance(options, dict) and isinstance(options.get("path"), str) else options
              for name, options in job.models.items()}  # saved models, relative to the file too
    paths = {key: resolve(getattr(job, key)) for key in ("events", "catalog", "items", "out")}
    return EvaluateJob(**{**job.__dict__, "models": models, **paths})


def _data(job: EvaluateJob) -> tuple[Interactions, Catalog | None]:
    if job.dataset is not None:
        from mmrec.datasets import load_dataset

        data = load_dataset(job.dataset)
        return data.events, data.catalog
    assert job.events is not None
    catalog = Catalog.from_path(job.catalog) if job.catalog else None
    return Interactions.from_path(job.events), catalog


def _items(job: EvaluateJob, catalog: Catalog | None) -> ItemVectors | None:
    if job.items:
        return ItemVectors.load(job.items)
    if job.encoders is None:
        return None
    if catalog is None:
        raise ConfigError("evaluate config: `encoders` needs a catalog (`catalog:` or a `dataset`).")
    from mmrec.encode.api import encode_items

    return encode_items(catalog, encoders=job.encoders)


def _categories(job: EvaluateJob, catalog: Catalog | None) -> dict[str, list[str]] | None:
    """Item id → its categories, from the catalog column ``job.category``."""
    if job.category is None:
        return None
    if catalog is None or job.category not in catalog.frame.columns:
        columns = list(catalog.frame.columns) if catalog is not None else []
        raise ConfigError(f"evaluate config: category {job.category!r} is not a catalog column "
                          f"(catalog columns: {columns}).")
    values = catalog.frame[job.category]
    return {str(item): [] if pd.isna(value) else [c for c in str(value).split(job.category_separator) if c]
            for item, value in zip(catalog.ids, values, strict=True)}


def run_evaluate_job(job: EvaluateJob) -> EvaluationReport:
    """Load, split, fit and score every model; save the report in ``job.out``."""
    events, catalog = _data(job)
    items = _items(job, catalog)
    split = make_split(events, job.split)
    logger.info("%s", split)
    models = {name: make_model(name, options) for name, options in job.models.items()}
    config = config_from_dict(EvalConfig, job.evaluation, where="evaluation")
    report = evaluate_models(models, split, items=items, config=config,
                             categories=_categories(job, catalog))
    report.save(job.out)
    return report
