"""``mmrec.tune``: pick a model on the validation split within a time budget.

What is searched, in order, each scored by Recall@``k`` on the validation events (full ranking,
the user's training items masked):

1. **EASE** at a few ``l2`` (closed form: seconds on small catalogs) — the strong simple baseline
   a learned model must at least match.
2. **Two-tower configurations**: the defaults first, then seeded draws from :class:`SearchSpace`
   (user tower, width, dropout, learning rate, maximum epochs; early stopping on the same
   validation split). A trial is started only if the mean duration of those run so far still fits
   in what is left of ``budget_s``.
3. **A score blend** of the best two-tower and the best EASE, ``w · z(two-tower) + (1 − w) · z(EASE)``
   with each model's scores standardised per user, ``w`` on a grid — kept only if it beats both on
   validation.

The winner is returned fitted on the training part (validation events stay held out: refitting on
them would need the epoch count the early stopping found, and would leave nothing to check the
winner against). ``TuneResult.trials`` lists every trial with its validation recall and seconds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.baselines.ease import EASE
from mmrec.data.interactions import Interactions, as_interactions
from mmrec.data.splits import leave_last_out
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.evaluation.metrics import ranking_metrics, targets_per_user
from mmrec.models.two_tower import TwoTower
from mmrec.utils.io import atomic_directory, read_manifest, write_manifest
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["tune", "SearchSpace", "TuneResult", "ScoreBlend"]

BLEND_WEIGHTS = (0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0)
EASE_L2 = (50.0, 200.0, 800.0)


@dataclass(frozen=True)
class SearchSpace:
    """Values the two-tower trials draw from (the first trial is the defaults)."""

    user_tower: tuple[str, ...] = ("transformer", "mean", "gru")
    dim: tuple[int, ...] = (32, 64, 128)
    dropout: tuple[float, ...] = (0.1, 0.2, 0.4)
    lr: tuple[float, ...] = (1e-3, 2e-3, 5e-3)
    epochs: tuple[int, ...] = (5, 10, 20)

    def __post_init__(self) -> None:
        for name in ("user_tower", "dim", "dropout", "lr", "epochs"):
            if not getattr(self, name):
                raise ConfigError(f"SearchSpace.{name} needs at least one value.")

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        return {name: getattr(self, name)[int(rng.integers(len(getattr(self, name))))]
                for name in ("user_tower", "dim", "dropout", "lr", "epochs")}


@dataclass
class TuneResult:
    """The chosen, fitted ``model`` (a TwoTower, an EASE or a :class:`ScoreBlend`), its ``name``
    and every trial (``trials``: name, settings, validation recall, seconds)."""

    model: Any
    name: str
    trials: pd.DataFrame = field(repr=False)

    def to_markdown(self) -> str:
        """The trials as a Markdown table (the chosen one in bold)."""
        columns = list(self.trials.columns)
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in self.trials.to_dict("records"):
            cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values()]
            if row["trial"] == self.name:
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _z(scores: np.ndarray) -> np.ndarray:
    finite = np.where(np.isfinite(scores), scores, np.nan)
    mean = np.nanmean(finite, axis=1, keepdims=True)
    std = np.nanstd(finite, axis=1, keepdims=True)
    return np.nan_to_num((scores - mean) / np.where(std > 0, std, 1.0), nan=-1e9)


class ScoreBlend:
    """``weight · z(first) + (1 − weight) · z(second)``: two fitted models' scores, each standardised
    per user, over the first model's items (the second's are aligned by id; missing ones score as
    the user's mean)."""

    artifact_name = "score_blend"
    # reads a saved part by its manifest: set by mmrec.evaluation.registry (which imports this module)
    load_part: Any = None

    def __init__(self, first: Any, second: Any, weight: float) -> None:
        if not 0 <= weight <= 1:
            raise ConfigError(f"ScoreBlend: weight must be in [0, 1], got {weight}.")
        self.first, self.second, self.weight = first, second, float(weight)
        self.item_ids_ = pd.Index(first.item_ids_)

    def fit(self, items: ItemVectors | None, events: Interactions, *, valid: Interactions | None = None
            ) -> ScoreBlend:
        self.first.fit(items, events, valid=valid)
        self.second.fit(items, events, valid=valid)
        self.item_ids_ = pd.Index(self.first.item_ids_)
        return self

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        first = _z(np.asarray(self.first.score_items(events, users=users), dtype=np.float64))
        raw = np.asarray(self.second.score_items(events, users=users), dtype=np.float64)
        columns = pd.Index(self.second.item_ids_).get_indexer(self.item_ids_)
        second = np.where(columns >= 0, _z(raw)[:, np.maximum(columns, 0)], 0.0)
        return (self.weight * first + (1 - self.weight) * second).astype(np.float32)

    def recommend(self, events: Interactions | pd.DataFrame, *, users: Sequence[str] | None = None,
                  k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        from mmrec.ranking.scored import recommend_by_scores

        return recommend_by_scores(self, events, users=users, k=k, exclude_seen=exclude_seen)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Both models in sub-folders and the weight in a manifest, atomically."""
        path = Path(path)
        with atomic_directory(path) as tmp:
            self.first.save(tmp / "first")
            self.second.save(tmp / "second")
            (tmp / "blend.json").write_text(json.dumps({"weight": self.weight}), "utf-8")
            write_manifest(tmp, self.artifact_name, {}, ["blend.json"])
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScoreBlend:
        path = Path(path)
        read_manifest(path, cls.artifact_name, require=["blend.json"])
        try:
            weight = float(json.loads((path / "blend.json").read_text("utf-8"))["weight"])
        except (KeyError, ValueError, TypeError) as exc:
            raise ArtifactError(f"{path.name}/blend.json cannot be read ({exc}).") from exc
        return cls(cls.load_part(path / "first"), cls.load_part(path / "second"), weight)


def _recall(model: Any, history: Interactions, valid: Interactions, users: np.ndarray, k: int
            ) -> tuple[float, np.ndarray]:
    """Validation Recall@k of ``model`` and its raw scores (rows: ``users``)."""
    scores = np.asarray(model.score_items(history, users=list(users)), dtype=np.float32)
    return _recall_of(scores, model.item_ids_, history, valid, users, k), scores


def _recall_of(scores: np.ndarray, item_ids: Any, history: Interactions, valid: Interactions,
               users: np.ndarray, k: int) -> float:
    ids = pd.Index(item_ids)
    masked = scores.copy()
    rows = pd.Index(users).get_indexer(history.frame["user"])
    cols = ids.get_indexer(history.frame["item"].to_numpy(dtype=object))
    keep = (rows >= 0) & (cols >= 0)
    masked[rows[keep], cols[keep]] = -np.inf
    top = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    targets = targets_per_user(pd.Index(users).get_indexer(valid.frame["user"]),
                               ids.get_indexer(valid.frame["item"].to_numpy(dtype=object)), len(users))
    return float(ranking_metrics(top, targets, (k,), ("recall",))[f"recall@{k}"])


def tune(items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
         valid: Interactions | None = None, budget_s: float = 600.0, space: SearchSpace | None = None,
         blend: bool = True, k: int = 20, max_trials: int = 12, seed: int = 0,
         **tower_options: Any) -> TuneResult:
    """Choose among EASE, two-tower configurations and their blend on validation (see the module
    doc). ``tower_options`` are passed to every :class:`TwoTower` (``batch_size=``, ``device=`` …)."""
    events = as_interactions(events, caller="tune")
    if not budget_s > 0:
        raise ConfigError(f"tune: budget_s must be > 0 seconds, got {budget_s}.")
    if len(events) == 0:
        raise SchemaError("tune: no events to tune on.")
    space = space or SearchSpace()
    if valid is None:
        split = leave_last_out(events, n_test=0, n_valid=1, min_train=2)
        events, valid = split.train, split.valid
    valid = as_interactions(valid, caller="tune (valid)")
    if len(valid) == 0:
        raise SchemaError("tune: the validation split is empty (users need at least 3 events).")
    users = pd.unique(valid.frame["user"].to_numpy(dtype=object))
    started = time.perf_counter()
    trials: list[dict[str, Any]] = []
    best: dict[str, tuple[float, Any, np.ndarray]] = {}

    def record(name: str, family: str, settings: dict[str, Any], fit) -> None:
        begun = time.perf_counter()
        model = fit()
        recall, scores = _recall(model, events, valid, users, k)
        seconds = time.perf_counter() - begun
        trials.append({"trial": name, "family": family, "settings": json.dumps(settings),
                       f"valid recall@{k}": recall, "seconds": seconds})
        if family not in best or recall > best[family][0]:
            best[family] = (recall, model, scores)

    n_items = len(pd.unique(events.frame["item"]))
    for l2 in EASE_L2 if n_items <= 30_000 else ():
        record(f"EASE l2={l2:g}", "ease", {"l2": l2}, lambda l2=l2: EASE(l2=l2).fit(items, events))
    rng = np.random.default_rng(seed)
    tower_times: list[float] = []
    for trial in range(max_trials):
        left = budget_s - (time.perf_counter() - started)
        if tower_times and np.mean(tower_times) > left or left <= 0:
            break
        settings = {} if trial == 0 else space.draw(rng)
        options = {"patience": 2, "seed": seed, **tower_options, **settings}
        begun = time.perf_counter()
        record(f"two-tower #{trial}" + (" (defaults)" if trial == 0 else ""), "two_tower", settings,
               lambda options=options: TwoTower(**options).fit(items, events, valid=valid,
                                                               show_progress=False))
        tower_times.append(time.perf_counter() - begun)
    if blend and "ease" in best and "two_tower" in best:
        tower, ease = best["two_tower"], best["ease"]
        for weight in BLEND_WEIGHTS[1:-1]:
            mixed = ScoreBlend(tower[1], ease[1], weight)
            record(f"blend w={weight:g}", "blend", {"weight": weight}, lambda mixed=mixed: mixed)
    family = max(best, key=lambda name: best[name][0])
    frame = pd.DataFrame(trials)
    chosen = frame[frame["family"] == family].sort_values(f"valid recall@{k}", ascending=False).iloc[0]
    return TuneResult(best[family][1], str(chosen["trial"]), frame)
