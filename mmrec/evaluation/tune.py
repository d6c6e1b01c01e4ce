"""``mmrec.tune``: pick a model on the validation split within a time budget.

What is searched, in order, each scored by Recall@``k`` on the validation events (full ranking,
the user's training items masked):

1. **EASE** at each ``l2`` of :attr:`SearchSpace.ease_l2` (closed form: seconds on small catalogs)
   — the strong simple baseline a learned model must at least match. It always runs (it is the
   floor), unless the catalog is too large for its dense item × item matrix.
2. **Two-tower configurations**: first **the default configuration** (``TwoTower(**tower_options)``:
   its own epochs and patience) trained to its own early stop **whatever the budget** — so the
   "model selection" call never returns something worse on validation than the plain default;
   when the default alone takes longer than ``budget_s`` the result says so (``TuneResult.notes``)
   and nothing else is tried. Then seeded random draws from :class:`SearchSpace` (user tower,
   width, dropout, learning rate, maximum epochs), each with early stopping (``patience`` 2) on
   the same validation events. Random search rather than successive halving: with a handful of
   trials per budget, halving's rungs would hold one or two configs, and early stopping already
   cuts a poor configuration short inside its trial.
   **Budget rule** (drawn trials): a draw is launched only if the mean fixed and per-epoch cost of
   the trials so far say it can *finish* — train as many epochs as the default needed to stop
   (capped by the draw's maximum) — in what is left of ``budget_s``; a draw that cannot is
   skipped. A launched trial first trains one epoch into a temporary checkpoint (a probe that
   times this configuration on this machine), then resumes from it — exactly, as a checkpointed
   ``TwoTower.fit`` does — for as many of its maximum epochs as fit (fewer if the probe says the
   draw is slower than expected: the trial is then truncated, and says so).
3. **Score blends** of the best two-tower and the best EASE, ``w · f(two-tower) + (1 − w) · f(EASE)``
   for ``w`` in :attr:`SearchSpace.blend_weights` and ``f`` either the per-user z-score or the
   per-user rank (:attr:`SearchSpace.blend_norms`), computed from the scores already made —
   kept only if one beats both parts on validation.

The winner is returned **as fitted on the training part** (no refit on train + validation): the
models read a user's history at scoring time, so the validation events still count as history;
a refit would need the epoch count early stopping found, and would leave nothing to check the
winner against. ``TuneResult.trials`` lists every trial with its validation recall and seconds.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from mmrec.baselines.base import FittedItems
from mmrec.baselines.ease import EASE
from mmrec.data.interactions import Interactions, as_interactions
from mmrec.data.splits import leave_last_out
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.evaluation.metrics import ranking_metrics, targets_per_user
from mmrec.models.two_tower import TwoTower
from mmrec.utils.io import atomic_directory, read_manifest, write_manifest
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["tune", "SearchSpace", "TuneResult", "ScoreBlend", "standardise"]

logger = logging.getLogger(__name__)

TOWER_KEYS = ("user_tower", "dim", "dropout", "lr", "epochs")  # what a two-tower trial varies
NORMS = ("z", "rank")
EPOCH_MARGIN = 1.2  # an epoch's training seconds, plus a share for its validation pass
DEFAULT_TRIAL = "two-tower #0 (defaults)"


@dataclass(frozen=True)
class SearchSpace:
    """What :func:`tune` tries: two-tower trials draw from the first five fields (the first trial is
    the defaults), EASE runs at every ``ease_l2``, blends at every weight × normalisation."""

    user_tower: tuple[str, ...] = ("transformer", "mean", "gru")
    dim: tuple[int, ...] = (32, 64, 128)
    dropout: tuple[float, ...] = (0.1, 0.2, 0.4)
    lr: tuple[float, ...] = (1e-3, 2e-3, 5e-3)
    epochs: tuple[int, ...] = (5, 10, 20, 40)  # a cap: early stopping ends most trials sooner
    ease_l2: tuple[float, ...] = (50.0, 150.0, 500.0, 1500.0)
    blend_weights: tuple[float, ...] = (0.1, 0.25, 0.4, 0.55, 0.7, 0.8, 0.9)
    blend_norms: tuple[str, ...] = NORMS

    def __post_init__(self) -> None:
        for name in (*TOWER_KEYS, "ease_l2", "blend_weights", "blend_norms"):
            if not getattr(self, name):
                raise ConfigError(f"SearchSpace.{name} needs at least one value.")
        if any(not 0 < w < 1 for w in self.blend_weights):
            raise ConfigError(f"SearchSpace.blend_weights must lie in (0, 1), got {self.blend_weights}.")
        if any(not l2 > 0 for l2 in self.ease_l2):
            raise ConfigError(f"SearchSpace.ease_l2 must be > 0, got {self.ease_l2}.")
        if any(int(e) < 1 for e in self.epochs):
            raise ConfigError(f"SearchSpace.epochs must be >= 1, got {self.epochs}.")
        unknown = sorted(set(self.blend_norms) - set(NORMS))
        if unknown:
            raise ConfigError(f"SearchSpace.blend_norms: unknown {unknown}; choose from {list(NORMS)}.")

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """One two-tower configuration, each field drawn uniformly."""
        return {name: getattr(self, name)[int(rng.integers(len(getattr(self, name))))]
                for name in TOWER_KEYS}


@dataclass
class TuneResult:
    """The chosen, fitted ``model`` (a TwoTower, an EASE or a :class:`ScoreBlend`), its trial
    ``name``, every trial (``trials``: trial, family, settings, validation recall, seconds, epochs
    run) and the best fitted model of each family (``candidates``: ``"ease"``, ``"two_tower"``,
    ``"blend"``)."""

    model: Any
    name: str
    trials: pd.DataFrame = field(repr=False)
    candidates: dict[str, Any] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def default_recall(self) -> float | None:
        """Validation recall of the default two-tower configuration (None if it did not run)."""
        rows = self.trials[self.trials["trial"] == DEFAULT_TRIAL]
        return float(rows.iloc[0][self._recall_column]) if len(rows) else None

    @property
    def _recall_column(self) -> str:
        return next(c for c in self.trials.columns if c.startswith("valid recall@"))

    def summary(self) -> str:
        """The chosen trial's validation recall beside the default's and the best EASE's."""
        chosen = float(self.best[self._recall_column])
        parts = [f"chosen: {self.name} ({self._recall_column} {chosen:.4f})"]
        if self.default_recall is not None:
            parts.append(f"the default two-tower: {self.default_recall:.4f}")
        ease = self.trials[self.trials["family"] == "ease"]
        if len(ease):
            parts.append(f"the best EASE: {ease[self._recall_column].max():.4f}")
        return "; ".join(parts) + "".join(f". {note}" for note in self.notes)

    @property
    def best(self) -> dict[str, Any]:
        """The chosen trial's row, its settings as a dict."""
        row = self.trials[self.trials["trial"] == self.name].iloc[0].to_dict()
        return {**row, "settings": json.loads(row["settings"])}

    def to_markdown(self) -> str:
        """:meth:`summary`, then the trials as a Markdown table (the chosen one in bold)."""
        columns = list(self.trials.columns)
        lines = [self.summary(), "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for row in self.trials.to_dict("records"):
            cells = ["" if pd.isna(v) else f"{v:.4f}" if isinstance(v, float) else str(v)
                     for v in row.values()]
            if row["trial"] == self.name:
                cells = [f"**{c}**" if c else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def standardise(scores: np.ndarray, how: str = "z") -> np.ndarray:
    """Per row: ``"z"`` — (score − mean) / std over the finite scores; ``"rank"`` — the score's rank
    scaled to [0, 1] (1: the best). Non-finite scores go to the bottom."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if how == "rank":
        order = np.argsort(np.where(finite, scores, -np.inf), axis=1, kind="stable")
        ranks = np.empty(scores.shape, dtype=np.float64)
        np.put_along_axis(ranks, order, np.arange(scores.shape[1], dtype=np.float64)[None, :], axis=1)
        return ranks / max(scores.shape[1] - 1, 1)
    if how != "z":
        raise ConfigError(f"standardise: unknown normalisation {how!r}; choose from {list(NORMS)}.")
    kept = np.where(finite, scores, np.nan)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(kept, axis=1, keepdims=True) if finite.any() else 0.0
        std = np.nanstd(kept, axis=1, keepdims=True) if finite.any() else 1.0
    z = (kept - np.nan_to_num(mean)) / np.where(np.nan_to_num(std) > 0, std, 1.0)
    return np.where(finite, z, -1e9)


def _standardised_pair(first: np.ndarray, second: np.ndarray, columns: np.ndarray, how: str
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Both score matrices standardised per row (:func:`standardise`), ``second``'s column
    ``columns[j]`` aligned to ``first``'s column ``j`` (−1: missing, the user's neutral value —
    the mean for ``"z"``, the median for ``"rank"``)."""
    aligned = standardise(second, how)[:, np.maximum(columns, 0)]
    return standardise(first, how), np.where(columns >= 0, aligned, 0.0 if how == "z" else 0.5)


def _mix(pair: tuple[np.ndarray, np.ndarray], weight: float) -> np.ndarray:
    return (weight * pair[0] + (1 - weight) * pair[1]).astype(np.float32)


class ScoreBlend(FittedItems):
    """``weight · f(first) + (1 − weight) · f(second)``: two fitted models' scores, each standardised
    per user (``normalise``: ``"z"`` or ``"rank"``, see :func:`standardise`), over the first model's
    items (the second's are aligned by id; missing ones score as the user's neutral value)."""

    artifact_name: ClassVar[str] = "score_blend"
    # reads a saved part by its manifest: set by mmrec.evaluation.registry (which imports this module)
    load_part: ClassVar[Callable[[Path], Any] | None] = None

    def __init__(self, first: Any, second: Any, weight: float, normalise: str = "z") -> None:
        if not 0 <= weight <= 1:
            raise ConfigError(f"ScoreBlend: weight must be in [0, 1], got {weight}.")
        if normalise not in NORMS:
            raise ConfigError(f"ScoreBlend: normalise must be one of {list(NORMS)}, got {normalise!r}.")
        self.first, self.second, self.weight, self.normalise = first, second, float(weight), normalise
        self.item_ids_ = None if first.item_ids_ is None else pd.Index(first.item_ids_)

    def fit(self, items: ItemVectors | None, events: Interactions, *, valid: Interactions | None = None
            ) -> ScoreBlend:
        """Fit both parts on ``events`` (``valid`` for the ones that stop early)."""
        self.first.fit(items, events, valid=valid)
        self.second.fit(items, events, valid=valid)
        self.item_ids_ = pd.Index(self.first.item_ids_)
        return self

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None) -> np.ndarray:
        """``(n_users, n_items)`` float32 blended scores (rows: ``users`` or every user of ``events``)."""
        ids = self._items()
        columns = pd.Index(self.second.item_ids_).get_indexer(ids)
        pair = _standardised_pair(self.first.score_items(events, users=users),
                                  self.second.score_items(events, users=users), columns, self.normalise)
        return _mix(pair, self.weight)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Both models in sub-folders (each by its own ``save``) and the weight in a manifest,
        atomically."""
        self._items()
        path = Path(path)
        with atomic_directory(path) as tmp:
            self.first.save(tmp / "first")
            self.second.save(tmp / "second")
            settings = {"weight": self.weight, "normalise": self.normalise}
            (tmp / "blend.json").write_text(json.dumps(settings), "utf-8")
            write_manifest(tmp, self.artifact_name, {}, ["blend.json"])
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ScoreBlend:
        """Read a folder written by :meth:`save` (each part checked by its own loader)."""
        path = Path(path)
        read_manifest(path, cls.artifact_name, require=["blend.json"])
        if cls.load_part is None:
            raise ArtifactError("ScoreBlend.load needs mmrec.evaluation.registry imported "
                                "(import mmrec does it).")
        try:
            settings = json.loads((path / "blend.json").read_text("utf-8"))
            weight, normalise = float(settings["weight"]), str(settings.get("normalise", "z"))
        except (KeyError, ValueError, TypeError) as exc:
            raise ArtifactError(f"{path.name}/blend.json cannot be read ({exc}).") from exc
        return cls(cls.load_part(path / "first"), cls.load_part(path / "second"), weight, normalise)


@dataclass
class _Validation:
    """What every trial is scored against: the training history (masked), the validation targets."""

    history: Interactions
    valid: Interactions
    k: int
    users: np.ndarray = field(init=False)
    _cache: tuple[pd.Index, tuple[np.ndarray, np.ndarray], list[np.ndarray]] | None = field(
        init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.users = pd.unique(self.valid.frame["user"].to_numpy(dtype=object))

    def scores(self, model: Any) -> np.ndarray:
        return np.asarray(model.score_items(self.history, users=list(self.users)), dtype=np.float32)

    def recall(self, scores: np.ndarray, item_ids: Any) -> float:
        """Validation Recall@k of ``scores`` (rows: ``users``, columns: ``item_ids``)."""
        (rows, cols), targets = self._positions(pd.Index(item_ids))
        masked = scores.copy()
        masked[rows, cols] = -np.inf
        k = min(self.k, masked.shape[1])
        top = np.argpartition(-masked, k - 1, axis=1)[:, :k]
        return float(ranking_metrics(top, targets, (k,), ("recall",))[f"recall@{k}"])

    def _positions(self, ids: pd.Index) -> tuple[tuple[np.ndarray, np.ndarray], list[np.ndarray]]:
        """The history's (row, column) cells and each user's validation columns for the item table
        ``ids``; kept for the last table (every trial and blend of a run scores the same one)."""
        if self._cache is not None and self._cache[0].equals(ids):
            return self._cache[1], self._cache[2]
        users = pd.Index(self.users)
        rows = users.get_indexer(self.history.frame["user"])
        cols = ids.get_indexer(self.history.frame["item"].to_numpy(dtype=object))
        keep = (rows >= 0) & (cols >= 0)
        targets = targets_per_user(users.get_indexer(self.valid.frame["user"]),
                                   ids.get_indexer(self.valid.frame["item"].to_numpy(dtype=object)),
                                   len(users))
        self._cache = (ids, (rows[keep], cols[keep]), targets)
        return self._cache[1], self._cache[2]


def _inputs(events: Interactions | pd.DataFrame, valid: Interactions | None, budget_s: float
            ) -> tuple[Interactions, Interactions]:
    """Checked training and validation events (validation: each user's last event by default)."""
    events = as_interactions(events, caller="tune")
    if not budget_s > 0:
        raise ConfigError(f"tune: budget_s must be > 0 seconds, got {budget_s}.")
    if len(events) == 0:
        raise SchemaError("tune: no events to tune on.")
    if valid is None:
        split = leave_last_out(events, n_test=0, n_valid=1, min_train=2)
        events, valid = split.train, split.valid
    valid = as_interactions(valid, caller="tune (valid)")
    if len(valid) == 0:
        raise SchemaError("tune: the validation split is empty (users need at least 3 events).")
    return events, valid


def _ending(history: Any, cap: int | None) -> str | None:
    """Why a two-tower trial stopped: early stopping, its maximum epochs, or the budget."""
    if history is None:
        return None
    if history.stopped_early:
        return "early stopping"
    return "max epochs" if cap is None or len(history.epochs) >= cap else "budget"


def _epochs_that_fit(cap: int, overhead_s: float, epoch_s: float, left_s: float) -> int:
    """How far a probed trial continues: at least the 1 epoch already run, at most ``cap``; the
    resumed fit's fixed ``overhead_s`` plus ``epoch_s`` per further epoch must fit in ``left_s``."""
    if epoch_s <= 0:
        return cap
    return int(min(cap, 1 + max((left_s - overhead_s) // epoch_s, 0)))


def _can_launch(costs: Sequence[tuple[float, float]], min_epochs: int, left_s: float) -> bool:
    """Whether a trial of ``min_epochs`` fits in ``left_s``, by the mean ``(fixed, per-epoch)``
    seconds of the trials so far (the first trial: whenever time is left)."""
    if not costs:
        return left_s > 0
    fixed, per_epoch = np.mean(np.asarray(costs, dtype=np.float64), axis=0)
    return fixed + min_epochs * per_epoch <= left_s


def tune(items: ItemVectors | None, events: Interactions | pd.DataFrame, *,
         valid: Interactions | None = None, budget_s: float = 600.0, space: SearchSpace | None = None,
         blend: bool = True, k: int = 20, max_trials: int = 12, seed: int = 0,
         **tower_options: Any) -> TuneResult:
    """Choose among EASE, two-tower configurations and their blends by validation Recall@``k``
    (see the module doc). ``events`` is the training part when ``valid`` is given, else it is split
    (each user's last event validates). ``max_trials`` caps the two-tower trials; ``tower_options``
    go to every :class:`TwoTower` (``batch_size=``, ``device=`` …; the searched fields override them).

    Raises :class:`ConfigError` for a budget ≤ 0, :class:`SchemaError` for no events or no
    validation events.
    """
    events, valid = _inputs(events, valid, budget_s)
    space = space or SearchSpace()
    check = _Validation(events, valid, k)
    deadline = time.perf_counter() + budget_s
    trials: list[dict[str, Any]] = []
    best: dict[str, tuple[float, Any, np.ndarray]] = {}  # family → (recall, model, scores)

    def record(name: str, family: str, settings: dict[str, Any], fit: Callable[[], Any]) -> Any:
        begun = time.perf_counter()
        model = fit()
        scores = check.scores(model)
        recall = check.recall(scores, model.item_ids_)
        history = getattr(model, "history_", None)
        trials.append({"trial": name, "family": family, "settings": json.dumps(settings),
                       f"valid recall@{k}": recall, "seconds": time.perf_counter() - begun,
                       "epochs": len(history.epochs) if history is not None else None,
                       "ended by": _ending(history, settings.get("epochs"))})
        if family not in best or recall > best[family][0]:
            best[family] = (recall, model, scores)
        return model

    if len(pd.unique(events.frame["item"])) <= EASE().max_items:
        for l2 in space.ease_l2:
            record(f"EASE l2={l2:g}", "ease", {"l2": l2}, lambda l2=l2: EASE(l2=l2).fit(items, events))
    notes = _tower_trials(items, events, valid, space, record, deadline, max_trials, seed, tower_options,
                          budget_s)
    if blend and "ease" in best and "two_tower" in best:
        _blend_trials(best, space, check, trials, k)
    frame = pd.DataFrame(trials).astype({"epochs": "Int64"})
    candidates = {family: model for family, (_, model, _) in best.items() if family != "blend"}
    if "blend" in best:
        settings = json.loads(_top(frame, "blend", k)["settings"])
        candidates["blend"] = ScoreBlend(candidates["two_tower"], candidates["ease"], settings["weight"],
                                         settings["normalise"])
    family = max(best, key=lambda name: best[name][0])
    result = TuneResult(candidates[family], str(_top(frame, family, k)["trial"]), frame, candidates, notes)
    logger.info("tune: %s", result.summary())
    return result


def _top(frame: pd.DataFrame, family: str, k: int) -> pd.Series:
    """The first of ``family``'s trials with the highest validation recall."""
    rows = frame[frame["family"] == family]
    return rows.sort_values(f"valid recall@{k}", ascending=False, kind="stable").iloc[0]


def _tower_trials(items: ItemVectors | None, events: Interactions, valid: Interactions,
                  space: SearchSpace, record: Callable[..., Any], deadline: float, max_trials: int,
                  seed: int, tower_options: dict[str, Any], budget_s: float) -> list[str]:
    """The default configuration in full, then drawn trials under the budget rule of the module
    doc; returns the notes on what the budget allowed."""
    rng = np.random.default_rng(seed)
    costs: list[tuple[float, float]] = []  # per trial: (fixed seconds, seconds per epoch)
    notes: list[str] = []
    needed = 1  # epochs the default configuration trained before it stopped
    for trial in range(max_trials):
        options = {"seed": seed, **tower_options}
        if trial > 0:
            options = {"patience": 2, **options, **space.draw(rng)}
            expected = min(int(options["epochs"]), needed)
            if not _can_launch(costs, expected, deadline - time.perf_counter()):
                continue  # this draw could not finish in what is left; a cheaper one may
        model = TwoTower(**options)
        settings = {key: getattr(model.training if key in ("lr", "epochs") else model.config, key)
                    for key in TOWER_KEYS}
        begun = time.perf_counter()
        if trial == 0:  # the default, to its own early stop whatever the budget
            fitted = record(DEFAULT_TRIAL, "two_tower", settings,
                            lambda model=model: model.fit(items, events, valid=valid, show_progress=False))
        else:
            fitted = record(f"two-tower #{trial}", "two_tower", settings,
                            lambda model=model: _fit_in_time(model, items, events, valid, deadline))
        epochs = fitted.history_.epochs if fitted.history_ is not None else []
        per_epoch = max((e["seconds"] for e in epochs), default=0.0) * EPOCH_MARGIN
        costs.append((max(time.perf_counter() - begun - per_epoch * len(epochs), 0.0), per_epoch))
        if trial == 0:
            needed = max(len(epochs), 1)
            spent = time.perf_counter() - begun
            if time.perf_counter() > deadline:
                notes.append(f"The default two-tower configuration alone took {spent:.0f} s to its early "
                             f"stop, past budget_s={budget_s:g}: no other configuration was tried")
                break
    tried = len(costs)
    if 0 < tried < max_trials and not notes:
        notes.append(f"{tried} of max_trials={max_trials} two-tower configurations fitted the budget "
                     "(draws that could not finish in the time left were skipped)")
    return notes


def _fit_in_time(model: TwoTower, items: ItemVectors | None, events: Interactions, valid: Interactions,
                 deadline: float) -> TwoTower:
    """One epoch into a temporary checkpoint (the probe), then resumed for as many of the model's
    epochs as fit before ``deadline`` (see the module doc)."""
    with tempfile.TemporaryDirectory(prefix="mmrec-tune-") as folder:
        begun = time.perf_counter()
        model.fit(items, events, valid=valid, epochs=1, checkpoint_dir=folder, show_progress=False)
        epoch = model.history_.epochs[-1]["seconds"] if model.history_ and model.history_.epochs else 0.0
        overhead = max(time.perf_counter() - begun - epoch, 0.0)
        epochs = _epochs_that_fit(model.training.epochs, overhead, epoch * EPOCH_MARGIN,
                                  deadline - time.perf_counter())
        if epochs > 1:
            model.fit(items, events, valid=valid, epochs=epochs, checkpoint_dir=folder, show_progress=False)
    return model


def _blend_trials(best: dict[str, tuple[float, Any, np.ndarray]], space: SearchSpace,
                  check: _Validation, trials: list[dict[str, Any]], k: int) -> None:
    """Blends of the best two-tower and the best EASE, from their validation scores."""
    _, tower, tower_scores = best["two_tower"]
    _, ease, ease_scores = best["ease"]
    columns = pd.Index(ease.item_ids_).get_indexer(pd.Index(tower.item_ids_))
    for how in space.blend_norms:
        begun = time.perf_counter()
        pair = _standardised_pair(tower_scores, ease_scores, columns, how)
        for weight in space.blend_weights:
            recall = check.recall(_mix(pair, weight), tower.item_ids_)
            trials.append({"trial": f"blend {how} w={weight:g}", "family": "blend",
                           "settings": json.dumps({"weight": weight, "normalise": how}),
                           f"valid recall@{k}": recall, "seconds": time.perf_counter() - begun,
                           "epochs": None, "ended by": None})
            begun = time.perf_counter()
            if "blend" not in best or recall > best["blend"][0]:
                best["blend"] = (recall, None, np.empty(0))
