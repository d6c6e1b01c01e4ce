"""``mmrec.TwoTower``: learned fusion + a user-interest tower, trained on behaviour logs.

The model is an ordered composition of fitted parts (:mod:`mmrec.models.parts`): the user
attributes, the network, the cold-item content blend and the fading popularity prior. ``fit`` runs
them in that order; serving asks each for its share. The public side speaks raw ids (item and user
strings, :class:`Interactions`, :class:`ItemVectors`); inside, items are rows of the network's item
table and histories are padded tensors.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mmrec.data.interactions import EventWeights, Interactions, as_interactions
from mmrec.errors import ArtifactError, ConfigError, SchemaError
from mmrec.evaluation.metrics import ranking_metrics, targets_per_user
from mmrec.models.config import TrainConfig, TwoTowerConfig
from mmrec.models.distributed import is_main_process, process_group_from_env
from mmrec.models.histories import Histories
from mmrec.models.parts import PARTS, FitData, Part
from mmrec.models.parts.attributes import UserAttributes
from mmrec.models.parts.base import PartAttribute, ScoreTerm
from mmrec.models.parts.legacy import V1_FILES, read_v1
from mmrec.models.parts.network import Network, has_signal
from mmrec.models.scoring import rank_items, score_chunks
from mmrec.ranking.scored import recommend_by_scores
from mmrec.utils.device import resolve_device
from mmrec.utils.io import atomic_directory, read_manifest, require_files, write_manifest
from mmrec.vectors.item_vectors import ItemVectors
from mmrec.vectors.user_vectors import UserVectors

__all__ = ["TwoTower"]

logger = logging.getLogger(__name__)

ARTIFACT_KIND = "two_tower"
FORMAT_VERSION = 2  # 2: a folder per part, listed in the manifest; 1: one safetensors file (still read)
PART_MANIFEST = "{}/manifest.json"


def _split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model_keys = {f.name for f in dataclasses.fields(TwoTowerConfig)}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - model_keys - train_keys)
    if unknown:
        raise ConfigError(f"TwoTower: unknown option(s) {unknown}; model options: {sorted(model_keys)}, "
                          f"training options: {sorted(train_keys)}.")
    return ({k: v for k, v in overrides.items() if k in model_keys},
            {k: v for k, v in overrides.items() if k in train_keys})


class TwoTower:
    """Two-tower recommender: items through a learned fusion, users through an interest tower.

    Parameters
    ----------
    config : TwoTowerConfig, optional
        The architecture; keyword ``overrides`` replace its fields (``fusion="attention"``).
    training : TrainConfig, optional
        How :meth:`fit` trains; keyword overrides replace its fields too (``epochs=5``).
        ``prior_users=0`` switches the popularity prior off, ``content_blend=False`` the blend.
    event_weights : EventWeights, optional
        How much each event type counts as a positive (and which are explicit ratings).

    Examples
    --------
    >>> model = mmrec.TwoTower(fusion="gated", user_tower="transformer", dim=64)  # doctest: +SKIP
    >>> model.fit(items, train_events, epochs=5)                                   # doctest: +SKIP
    >>> index = mmrec.build_index(model.encode_items(items))                       # doctest: +SKIP
    """

    net_ = PartAttribute("network", "net_")
    item_ids_ = PartAttribute("network", "item_ids_")
    vocabulary_ = PartAttribute("network", "vocabulary_")
    scalers_ = PartAttribute("network", "scalers_")
    history_ = PartAttribute("network", "history_")
    rank_ = PartAttribute("network", "rank_")
    user_schema_ = PartAttribute("attributes", "schema_")
    user_attributes_ = PartAttribute("attributes", "table_")  # in memory only: never saved
    blend_ = PartAttribute("content_blend", "blend_")
    prior_ = PartAttribute("prior", "prior_")

    def __init__(self, config: TwoTowerConfig | None = None, *, training: TrainConfig | None = None,
                 event_weights: EventWeights | None = None, **overrides: Any) -> None:
        model_over, train_over = _split_overrides(overrides)
        self.config = dataclasses.replace(config or TwoTowerConfig(), **model_over)
        self.training = dataclasses.replace(training or TrainConfig(), **train_over)
        self.event_weights = event_weights or EventWeights()
        self.parts: dict[str, Part] = {name: part.for_model(self) for name, part in PARTS.items()}

    def __repr__(self) -> str:
        state = f"{len(self.item_ids_)} items" if self.item_ids_ is not None else "not fitted"
        return (f"TwoTower(fusion={self.config.fusion!r}, user_tower={self.config.user_tower!r}, "
                f"dim={self.config.dim}, {state})")

    @property
    def network(self) -> Network:
        return self.parts["network"]  # type: ignore[return-value]

    @property
    def attributes(self) -> UserAttributes:
        return self.parts["attributes"]  # type: ignore[return-value]

    def fit(self, items: ItemVectors | None, events: Interactions, *, valid: Interactions | None = None,
            users: pd.DataFrame | None = None, epochs: int | None = None,
            checkpoint_dir: str | os.PathLike[str] | None = None,
            show_progress: bool | None = None) -> TwoTower:
        """Train on ``events`` (time-ordered per user); early-stop on ``valid``; then fit the parts
        that read the trained network (the cold-item blend, the popularity prior).

        Parameters
        ----------
        items : ItemVectors or None
            Per-modality content vectors from :func:`mmrec.encode_items`; ``None`` trains an id-only
            model over the items in ``events`` (then ``item_ids`` must be on).
        events : Interactions
            Training behaviour. Events on items outside ``items`` are dropped (and logged).
        valid : Interactions, optional
            Validation events whose users' histories are in ``events``; by default each user's
            last event is held out of ``events`` for it (``leave_last_out``).
        users : DataFrame, optional
            User attributes (indexed by user id, or a ``user`` column): categorical and numeric
            columns embedded in the user tower, also for users without events (see
            :meth:`set_user_attributes`). Rows of users who are not in ``events`` are kept for
            later (new users); training users without a row are reported.
        epochs : int, optional
            Overrides ``training.epochs``.
        checkpoint_dir : path, optional
            Checkpoint after every epoch; a rerun with the same folder resumes where it stopped.
        """
        events = as_interactions(events, caller="TwoTower.fit")
        if valid is not None:
            valid = as_interactions(valid, caller="TwoTower.fit (valid)")
        training = self.training if epochs is None else dataclasses.replace(self.training, epochs=epochs)
        counted = events if valid is None else Interactions(pd.concat([events.frame, valid.frame]))
        data = FitData(items, events, valid, counted, training, users=users, checkpoint_dir=checkpoint_dir,
                       show_progress=show_progress)
        self.parts = {name: part.for_model(self) for name, part in PARTS.items()}  # fresh, unfitted
        # under torchrun with no process group yet, fit joins the one the environment describes for
        # its duration: a plain script trains data parallel instead of N times alone
        with process_group_from_env(str(training.device)):
            for part in self.parts.values():
                part.before_training(self, data)
            for name, part in self.parts.items():
                logger.info("fitting the %s part", name)
                part.fit(self, data)
        return self

    def set_user_attributes(self, users: pd.DataFrame | None) -> None:
        """Give the attributes of the users to score (after :meth:`load`, or for new users); the
        columns the model was fitted with must be there. ``None`` forgets them all."""
        self.attributes.set_table(users)

    # ----------------------------------------------------------------------------- users
    def histories(self, events: Interactions, users: Sequence[str] | None = None) -> Histories:
        """``events`` (Interactions or a DataFrame) as the model's time-ordered histories (``users``
        fixes the rows)."""
        return self.network.histories(events, users)

    def history_lengths(self, events: Interactions, users: Sequence[str] | None = None) -> np.ndarray:
        """Known events per user (rows: ``users``): what the popularity prior's weight reads."""
        return self.histories(events, users).lengths

    def prior_segments(self, users: Sequence[str]) -> list[np.ndarray] | None:
        """Each user's segment rows for a segment-aware prior (their attributes from
        :meth:`set_user_attributes`); ``None`` when everyone gets the overall popularity."""
        return self.parts["prior"].segments(self, users)  # type: ignore[attr-defined]

    @torch.no_grad()
    def encode_users(self, events: Interactions, *, users: Sequence[str] | None = None,
                     device: str | None = None) -> UserVectors:
        """L2-normalised interest vectors ``(n_users, vector_dim)`` float32 from the users' histories.

        ``users`` defaults to every user in ``events``; a user without a known event gets their
        attribute vector (:meth:`set_user_attributes`), or, without attributes either, a zero
        vector and ``has_signal=False`` (serve them a fallback, e.g. popular items).
        """
        histories = self.histories(events, users)
        codes = self.attributes.codes(histories.user_ids)
        vectors = self.network.learned_users(histories, resolve_device(device or "cpu"), codes)
        signal = has_signal(histories, codes)
        for part in self.parts.values():
            vectors = part.user_vectors(self, histories, vectors, signal)
        vectors[~signal] = 0.0
        return UserVectors(histories.user_ids, vectors, signal)

    # ----------------------------------------------------------------------------- items
    @property
    def vector_dim(self) -> int:
        """Width of :meth:`encode_items` / :meth:`encode_users` vectors: ``dim``, plus what the
        parts append (the cold items' content blend)."""
        return self.config.dim + sum(part.extra_width for part in self.parts.values())

    @property
    def vector_scale(self) -> float:
        """Norm of the learned part of a user vector from :meth:`encode_users`: 1, or the blend's
        radius (item rows are unit vectors, so user vectors carry the scale of the scores)."""
        return math.prod(part.user_scale for part in self.parts.values())

    def encode_items(self, items: ItemVectors | None = None) -> ItemVectors:
        """Learned, L2-normalised item vectors (``fused``) for ``items`` (default: the training table).

        Items the model never saw are encoded from their content alone (no id embedding), so new
        items can join an index without retraining. Pass the result to :func:`mmrec.build_index`.
        """
        ids, fused, _ = self.network.fused(items)
        for part in self.parts.values():  # cold items: + the content-neighbour part and the calibration
            fused = part.item_vectors(self, items, fused)
        known = (pd.Index(ids).isin(self.item_ids_) if self.config.item_ids
                 else np.zeros(len(ids), dtype=bool))
        if items is not None and (~known).any() and not self.network.net.modalities:
            raise SchemaError(f"{int((~known).sum())} item(s) (e.g. {ids[~known][0]!r}) are unknown to "
                              "this id-only model; it has no content to encode them from.")
        source = items or ItemVectors(ids, {}, {}, fused=fused)
        return ItemVectors(ids, source.vectors, source.masks, scalers=source.scalers, fused=fused,
                           report=source.report, encoders=source.encoders,
                           fusion_kind=f"learned:{self.config.fusion}")

    def modality_weights(self, items: ItemVectors | None = None) -> pd.DataFrame:
        """Per item, the share of each modality (and of the id embedding) in its fused vector.

        Rows sum to 1 over the item's present modalities; absent ones are 0.
        """
        ids, _, weights = self.network.fused(items)
        return pd.DataFrame(weights, index=pd.Index(ids, name="item"), columns=self.network.net.tokens)

    # ----------------------------------------------------------------------------- scoring
    def score_terms(self, histories: Histories, device: torch.device) -> list[ScoreTerm]:
        """What the fitted parts add to the cosines of the histories' users (see :meth:`Part.score_term`)."""
        terms = (part.score_term(self, histories, device) for part in self.parts.values())
        return [term for term in terms if term is not None]

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None,
                    candidate_aware: bool = True, device: str | None = None) -> np.ndarray:
        """Scores ``(n_users, n_items)`` float32 of every model item (columns: :attr:`item_ids_`) for
        each user's history in ``events`` (rows: ``users``, default every user in ``events``); seen
        items are not masked. Users without a known event get the score of an empty history."""
        histories = self.histories(events, users)
        scores = np.empty((len(histories), self.network.net.n_items), dtype=np.float32)
        for rows, _, logits in score_chunks(self, histories, candidate_aware=candidate_aware,
                                                  device=resolve_device(device or "cpu")):
            scores[rows] = logits.cpu().numpy()
        return scores

    def user_item_vectors(self, events: Interactions, *, users: Sequence[str] | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
        """L2-normalised user vectors (rows: ``users``) and item vectors (rows: :attr:`item_ids_`):
        their inner products rank as :meth:`score_items` does (towers that attend to the candidate
        aside), so an ANN index over the item vectors serves the same ranking."""
        profile = self.encode_users(events, users=users)
        return profile.vectors, self.encode_items().fused.astype(np.float32)

    def predict_ratings(self, history: Interactions, pairs: pd.DataFrame) -> np.ndarray:
        """The rating head's prediction for each ``(user, item)`` row of ``pairs`` after the user's
        ``history`` (NaN for items the model does not know)."""
        users = pd.unique(pairs["user"].to_numpy(dtype=object))
        histories = self.histories(history, users)
        row_of_user = pd.Index(users).get_indexer(pairs["user"].to_numpy(dtype=object))
        return self.network.predict_ratings(histories, row_of_user, pairs["item"].to_numpy(dtype=object),
                                            self.attributes.codes(histories.user_ids))

    def evaluate(self, history: Interactions, targets: Interactions, *, ks: Sequence[int] = (10, 20),
                 exclude_seen: bool = True, candidate_aware: bool = True,
                 device: str | None = None) -> dict[str, float]:
        """Full-ranking metrics: each user's ``targets`` ranked among all items from their ``history``.

        Items in the history are excluded (``exclude_seen``); target events on items the model
        does not know count as misses. ``candidate_aware`` uses the attention tower's
        candidate-aware scores (other towers ignore it).
        """
        frame = targets.frame
        users = pd.unique(frame["user"].to_numpy(dtype=object))
        histories = self.histories(history, users)
        device_ = resolve_device(device or self.training.device)
        top = rank_items(self, histories, max(ks), exclude_seen=exclude_seen, candidate_aware=candidate_aware,
                         device=device_)
        assert self.item_ids_ is not None
        rows = pd.Index(users).get_indexer(frame["user"])
        positions = self.item_ids_.get_indexer(frame["item"].to_numpy(dtype=object))
        return ranking_metrics(top, targets_per_user(rows, positions, len(users)), ks)

    def recommend(self, events: Interactions | pd.DataFrame, *, users: Sequence[str] | None = None,
                  k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Exact top-``k`` over the model's items (candidate-aware for the attention tower), with the
        same fallback and columns as :func:`mmrec.recommend`: users without a known event get the
        log's most popular unseen items (``source="popularity"``).

        For large catalogs use an index over ``model.encode_items(...)`` with
        ``mmrec.recommend(index, events, model=model)`` instead.
        Returns columns ``user, rank, item, score, source``.
        """
        return recommend_by_scores(self, events, users=users, k=k, exclude_seen=exclude_seen)

    # ----------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write every fitted part into its own folder (safetensors + JSON, checksummed) and a
        manifest listing them, atomically.

        In a data-parallel run (a process group initialised) only rank 0 writes; the other
        processes hold the same weights and return the path without touching it."""
        self.network.net  # noqa: B018 - NotFittedError before anything is written
        path = Path(path)
        if self.rank_ != 0 or not is_main_process():
            return path
        names = [name for name, part in self.parts.items() if part.fitted]
        with atomic_directory(path) as tmp:
            for name in names:
                self.parts[name].save(tmp / name)
            write_manifest(tmp, ARTIFACT_KIND, version=FORMAT_VERSION, payload={"parts": names},
                           files=[PART_MANIFEST.format(name) for name in names])
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TwoTower:
        """Load a folder written by :meth:`save`, of this or an earlier format (checksums verified,
        no pickle)."""
        path = Path(path)
        manifest = read_manifest(path, ARTIFACT_KIND, version=FORMAT_VERSION)
        if manifest["format_version"] == 1:  # one safetensors file: each part's state by prefix
            require_files(path, manifest, V1_FILES)
            try:
                loaded = {name: PARTS[name].from_state(params, state)
                          for name, (params, state) in read_v1(path, manifest).items()}
            except (KeyError, OSError, ValueError, TypeError) as exc:
                raise ArtifactError(f"{path.name}: the model cannot be read ({exc}).") from exc
            return cls._assembled(path, loaded)
        names = manifest.get("parts")
        if (not isinstance(names, list) or "network" not in names
                or not all(isinstance(name, str) and name in PARTS for name in names)):
            raise ArtifactError(f"{path.name}: the manifest lists parts {names!r}; this mmrec reads "
                                f"{list(PARTS)} and needs 'network'. Re-save the model.")
        require_files(path, manifest, [PART_MANIFEST.format(name) for name in names])
        return cls._assembled(path, {name: PARTS[name].load(path / name) for name in names})

    @classmethod
    def _assembled(cls, path: Path, loaded: Mapping[str, Part]) -> TwoTower:
        """A model made of the ``loaded`` parts (the others fresh), checked against each other."""
        network = loaded["network"]
        assert isinstance(network, Network)
        model = cls(network.config, training=network.training, event_weights=network.event_weights)
        model.parts = {name: loaded.get(name) or part.for_model(model) for name, part in PARTS.items()}
        try:
            for part in model.parts.values():
                part.check(model)
        except ValueError as exc:
            raise ArtifactError(f"{path.name}: the model's parts do not fit together ({exc}).") from exc
        return model

