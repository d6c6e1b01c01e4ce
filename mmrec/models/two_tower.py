"""``mmrec.TwoTower``: learned fusion + a user-interest tower, trained on behaviour logs.

The public side speaks raw ids (item and user strings, :class:`Interactions`, :class:`ItemVectors`);
inside, items are rows of the model's item table and histories are padded tensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from mmrec.data.interactions import EventWeights, Interactions, as_interactions
from mmrec.data.matrix import distinct_user_counts
from mmrec.data.segments import SegmentRule
from mmrec.data.splits import leave_last_out
from mmrec.errors import ArtifactError, ConfigError, NotFittedError, SchemaError
from mmrec.evaluation.metrics import ranking_metrics, targets_per_user
from mmrec.models.config import TrainConfig, TwoTowerConfig
from mmrec.models.content_blend import ColdView, ContentBlend, fit_content_blend, pseudo_cold_items
from mmrec.models.distributed import collective, is_main_process, local_device, process_group_from_env
from mmrec.models.histories import EventVocabulary, Histories
from mmrec.models.network import TwoTowerNet
from mmrec.models.prior import (
    PRIOR_STEPS,
    PopularityPrior,
    SegmentPrior,
    fit_prior_weights,
    log_popularity,
    neutral_unknown,
    step_buckets,
)
from mmrec.models.training import TrainingHistory, train
from mmrec.models.user_features import UserCodes, UserFeatureSchema, as_attribute_table
from mmrec.ranking.scored import recommend_by_scores
from mmrec.utils.config import config_from_dict, config_to_dict
from mmrec.utils.device import resolve_device
from mmrec.utils.io import atomic_directory, read_manifest, write_manifest
from mmrec.utils.seed import torch_seeded
from mmrec.utils.state import tensor_shapes
from mmrec.vectors.fixed_fusion import ModalityScaler, concat_fusion
from mmrec.vectors.item_vectors import ItemVectors
from mmrec.vectors.user_vectors import UserVectors

__all__ = ["TwoTower"]

logger = logging.getLogger(__name__)

ARTIFACT_KIND = "two_tower"
FORMAT_VERSION = 1  # bump when the folder layout changes; load reads 1..FORMAT_VERSION
SCORE_CHUNK = 256  # users scored against the whole item table at once


def _split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model_keys = {f.name for f in dataclasses.fields(TwoTowerConfig)}
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - model_keys - train_keys)
    if unknown:
        raise ConfigError(f"TwoTower: unknown option(s) {unknown}; model options: {sorted(model_keys)}, "
                          f"training options: {sorted(train_keys)}.")
    return ({k: v for k, v in overrides.items() if k in model_keys},
            {k: v for k, v in overrides.items() if k in train_keys})


def normalised_content(items: ItemVectors, modality: str, scaler: ModalityScaler) -> np.ndarray:
    """One modality z-scored with ``scaler`` and L2-normalised per item (zero where absent)."""
    return concat_fusion({modality: items.vectors[modality]}, {modality: items.masks[modality]},
                         scalers={modality: scaler})


@contextlib.contextmanager
def _placed(net: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
    """``net`` on ``device`` in eval mode for the block, then back on its device and in its mode
    (validation during training on a GPU must leave the model, and its optimizer, where they were)."""
    home = next(iter(net.state_dict().values())).device
    was_training = net.training
    net.to(device).eval()
    try:
        yield net
    finally:
        net.to(home).train(was_training)


class TwoTower:
    """Two-tower recommender: items through a learned fusion, users through an interest tower.

    Parameters
    ----------
    config : TwoTowerConfig, optional
        The architecture; keyword ``overrides`` replace its fields (``fusion="attention"``).
    training : TrainConfig, optional
        How :meth:`fit` trains; keyword overrides replace its fields too (``epochs=5``).
    event_weights : EventWeights, optional
        How much each event type counts as a positive (and which are explicit ratings).

    Examples
    --------
    >>> model = mmrec.TwoTower(fusion="gated", user_tower="transformer", dim=64)  # doctest: +SKIP
    >>> model.fit(items, train_events, epochs=5)                                   # doctest: +SKIP
    >>> index = mmrec.build_index(model.encode_items(items))                       # doctest: +SKIP
    """

    def __init__(self, config: TwoTowerConfig | None = None, *, training: TrainConfig | None = None,
                 event_weights: EventWeights | None = None, **overrides: Any) -> None:
        model_over, train_over = _split_overrides(overrides)
        self.config = dataclasses.replace(config or TwoTowerConfig(), **model_over)
        self.training = dataclasses.replace(training or TrainConfig(), **train_over)
        self.event_weights = event_weights or EventWeights()
        self.net_: TwoTowerNet | None = None
        self.item_ids_: pd.Index | None = None
        self.vocabulary_: EventVocabulary | None = None
        self.scalers_: dict[str, ModalityScaler] = {}
        self.history_: TrainingHistory | None = None
        self.user_schema_: UserFeatureSchema | None = None
        self.user_attributes_: pd.DataFrame | None = None  # in memory only: never saved with the model
        self.prior_: PopularityPrior | None = None
        self.blend_: ContentBlend | None = None
        self.rank_ = 0  # this process's rank in the data-parallel run that fitted it (0: it saves)

    def __repr__(self) -> str:
        state = f"{len(self.item_ids_)} items" if self.item_ids_ is not None else "not fitted"
        return (f"TwoTower(fusion={self.config.fusion!r}, user_tower={self.config.user_tower!r}, "
                f"dim={self.config.dim}, {state})")

    # ----------------------------------------------------------------------------- fitting
    def fit(self, items: ItemVectors | None, events: Interactions, *, valid: Interactions | None = None,
            users: pd.DataFrame | None = None, epochs: int | None = None,
            checkpoint_dir: str | os.PathLike[str] | None = None,
            show_progress: bool | None = None) -> TwoTower:
        """Train on ``events`` (time-ordered per user); early-stop on ``valid``.

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
        self.user_schema_ = self.user_attributes_ = None
        if users is not None:
            table = as_attribute_table(users, where="TwoTower.fit(users=)")
            self.user_schema_ = UserFeatureSchema.fit(table)
            self.user_attributes_ = table
            without = int((~pd.Index(events.users).isin(table.index)).sum())
            if without:
                logger.warning("TwoTower.fit: %d of %d training users have no attribute row; their "
                               "attributes are read as missing", without, len(events.users))
        # under torchrun with no process group yet, fit joins the one the environment describes for
        # its duration: a plain script trains data parallel instead of N times alone
        with process_group_from_env(str(training.device)):
            return self._fit(items, events, valid, training, checkpoint_dir, show_progress)

    def _fit(self, items: ItemVectors | None, events: Interactions, valid: Interactions | None,
             training: TrainConfig, checkpoint_dir: str | os.PathLike[str] | None,
             show_progress: bool | None) -> TwoTower:
        device = local_device(resolve_device(training.device))
        group = collective(device)
        counted = events if valid is None else Interactions(pd.concat([events.frame, valid.frame]))
        held = self._prior_users(events, training)
        epoch_scale = 1.0
        if held.size:  # users the fading popularity prior is fitted on: out of training altogether
            heldout = events.for_users(held)
            # an epoch keeps the steps a pass over every user would take: the hold-out costs no training
            epoch_scale = len(events) / max(len(events) - len(heldout), 1)
            events = Interactions(events.frame.loc[~events.frame["user"].isin(set(held))]
                                  .reset_index(drop=True))
            if valid is not None:
                valid = Interactions(valid.frame.loc[~valid.frame["user"].isin(set(held))]
                                     .reset_index(drop=True))
        if valid is None:
            split = leave_last_out(events, n_test=0, n_valid=1, min_train=2)
            events, valid = split.train, split.valid
        self._build(items, events)
        assert self.net_ is not None and self.item_ids_ is not None and self.vocabulary_ is not None
        self.net_.to(device)
        histories = self.histories(events)
        if int(histories.lengths.sum()) == 0:
            raise SchemaError("TwoTower.fit: no training event refers to a known item.")
        popularity = np.bincount(histories.item_idx, weights=histories.weights,
                                 minlength=len(self.item_ids_)).astype(np.float64)
        validate = self._validator(events, valid, training) if len(valid) else None
        self.prior_ = self.blend_ = None
        blending = bool(training.content_blend and self.net_.modalities and self.config.item_ids
                        and len(valid))
        pseudo_cold = pseudo_cold_items(self.net_.trained.numpy(), training.seed) if blending else None
        with torch_seeded(training.seed):
            self.history_ = train(self.net_, histories, config=training, popularity=popularity,
                                  validate=validate, device=device, checkpoint_dir=checkpoint_dir,
                                  show_progress=show_progress, group=group,
                                  user_codes=self._codes(histories.user_ids), keep_ids=pseudo_cold,
                                  epoch_scale=epoch_scale)
        self.rank_ = group.rank
        self.net_.cpu()
        if pseudo_cold is not None:
            self.blend_ = self._fit_blend(events, valid, training, pseudo_cold)
        if held.size:
            self.prior_ = self._fit_prior(heldout, train_events=events, counted=counted, valid=valid,
                                          seed=training.seed)
        return self

    def _fit_blend(self, events: Interactions, valid: Interactions, training: TrainConfig,
                   pseudo_cold: np.ndarray) -> ContentBlend | None:
        """Fit the cold items' content blend on pseudo-cold items and the validation users (see
        :mod:`mmrec.models.content_blend`); ``None`` when there is too little to fit on."""
        net = self._fitted()
        assert self.item_ids_ is not None
        users, later = self._validation_sample(valid, seed=training.seed, salt=13, cap=10_000)
        histories = self.histories(events, users)
        learned_users = self._learned_users(histories, torch.device("cpu"))
        with torch.no_grad():
            content_only = F.normalize(net.item_vectors(content_only=True)[0].float(), dim=-1).numpy()
        offsets = histories.offsets
        touched = [np.unique(np.concatenate([histories.item_idx[offsets[r] : offsets[r + 1]], later[r]]))
                   for r in range(len(users))]
        # the weight's view: every user as if the pseudo-cold items were new (their events dropped)
        others = events.frame.loc[~events.frame["item"].isin(set(self.item_ids_[pseudo_cold]))]
        without = self.histories(Interactions(others.reset_index(drop=True)), users)
        cold_view = ColdView(self._learned_users(without, torch.device("cpu")),
                             _history_matrix(without, net.n_items), touched)
        blend = fit_content_blend(self._raw_content(None), net.trained.numpy(), learned=self._fused(None)[1],
                                  content_only=content_only, users=learned_users,
                                  history=_history_matrix(histories, net.n_items), cold_view=cold_view,
                                  k=self.config.dim, pseudo_cold=pseudo_cold, seed=training.seed)
        if blend is not None:
            logger.info("cold-item content blend: weight %.2f, offset %.3f (%s)", blend.weight, blend.offset,
                        blend.valid)
        return blend

    def _raw_content(self, items: ItemVectors | None) -> np.ndarray:
        """The items' normalised content, modalities side by side (zeros where absent)."""
        _, content, present, _ = self._item_inputs(items)
        parts = [c.numpy() * present[:, i : i + 1].numpy() for i, c in enumerate(content)]
        return np.hstack(parts).astype(np.float32) if parts else np.zeros((len(present), 0), np.float32)

    @property
    def vector_dim(self) -> int:
        """Width of :meth:`encode_items` / :meth:`encode_users` vectors: ``dim``, plus the cold
        items' content blend when the model has one."""
        return self.config.dim + (self.blend_.width if self.blend_ is not None else 0)

    @property
    def vector_scale(self) -> float:
        """Norm of the learned part of a user vector from :meth:`encode_users`: 1, or the blend's
        radius (item rows are unit vectors, so user vectors carry the scale of the scores)."""
        return self.blend_.radius if self.blend_ is not None else 1.0

    def _prior_users(self, events: Interactions, training: TrainConfig) -> np.ndarray:
        """Users held out of training to fit the popularity prior on: ``prior_users`` (at most a
        tenth of the users with 3+ events), seeded; none when fewer than 20 would be left."""
        if not training.prior_users:
            return np.empty(0, dtype=object)
        counts = events.frame["user"].value_counts()
        eligible = np.sort(counts.index[counts >= 3].to_numpy(dtype=object).astype(str))
        n = min(training.prior_users, len(counts) // 10)
        if n < 20:
            return np.empty(0, dtype=object)
        rng = np.random.default_rng([training.seed, 7])
        return eligible[np.sort(rng.choice(len(eligible), min(n, len(eligible)), replace=False))]

    def _fit_prior(self, heldout: Interactions, *, train_events: Interactions, counted: Interactions,
                   valid: Interactions, seed: int) -> PopularityPrior:
        """Fit the fading weights on the held-out users (popularity of the training events), capped
        per history length by the validation users' next events; then keep the log-popularity of
        every event given to :meth:`fit`. With user attributes the prior is segment-aware (each
        user's log-popularity among the users who share their segments, :class:`SegmentPrior`)."""
        assert self.item_ids_ is not None
        unknown = ~self._fitted().trained.numpy()
        table = self.user_attributes_
        fitting_pop = neutral_unknown(log_popularity(self._distinct_users(train_events)), unknown)
        fitting = PopularityPrior(self.item_ids_, fitting_pop, (0,), (0.0,), unknown_items=unknown,
                                  segments=SegmentPrior.fit(table, train_events, self.item_ids_))

        def own_log_pop(user_ids: np.ndarray) -> np.ndarray | None:
            segment_rows = fitting.segment_rows(table, user_ids)
            return None if segment_rows is None else fitting.for_users(segment_rows)

        histories = self.histories(heldout)
        codes = self._codes(histories.user_ids)

        def cosines(n: int) -> tuple[Any, ...]:
            rows = np.flatnonzero(histories.lengths > n)
            offsets = histories.offsets
            scores = self._cosines(histories.prefixes(rows, n), None if codes is None else codes.rows(rows))
            given = [histories.item_idx[offsets[r] : offsets[r] + n] for r in rows]
            targets = [np.unique(histories.item_idx[offsets[r] + n : offsets[r + 1]]) for r in rows]
            return scores, given, targets, own_log_pop(histories.user_ids[rows])

        warm = self._warm_folds(train_events, valid, seed, own_log_pop)
        weights, valid_recall = fit_prior_weights(cosines, fitting_pop, warm=warm)
        logger.info("popularity prior: weights %s at %s events (held-out recall %s)", weights,
                    valid_recall["steps"], valid_recall)
        return PopularityPrior(self.item_ids_,
                               neutral_unknown(log_popularity(self._distinct_users(counted)), unknown),
                               tuple(valid_recall["steps"]), weights, valid_recall, unknown_items=unknown,
                               segments=SegmentPrior.fit(table, counted, self.item_ids_))

    def _warm_folds(self, events: Interactions, valid: Interactions, seed: int,
                    own_log_pop: Callable[[np.ndarray], np.ndarray | None]
                    ) -> Callable[[int], tuple[Any, ...]]:
        """For the prior's fit: ``warm(n)`` gives the validation users whose training history is
        nearest ``n`` events long — their cosines, their history (masked), their validation items
        and (segment-aware) their own log-popularity."""
        users, targets = self._validation_sample(valid, seed=seed, salt=17, cap=5000)
        histories = self.histories(events, users)
        scores = self._cosines(histories, self._codes(histories.user_ids))
        log_pops = own_log_pop(histories.user_ids)
        offsets = histories.offsets
        bucket = step_buckets(histories.lengths, PRIOR_STEPS)
        usable = (histories.lengths > 0) & np.array([len(t) > 0 for t in targets], dtype=bool)

        def warm(n: int) -> tuple[Any, ...]:
            picked = np.flatnonzero((bucket == PRIOR_STEPS.index(n)) & usable)
            return (scores[picked].copy(), [histories.item_idx[offsets[r] : offsets[r + 1]] for r in picked],
                    [targets[r] for r in picked], None if log_pops is None else log_pops[picked])

        return warm

    def _validation_sample(self, valid: Interactions, *, seed: int, salt: int, cap: int
                           ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Up to ``cap`` validation users (a seeded sample; fewer on a large catalog, so that their
        ``(users × items)`` scores fit in memory) and each one's validation item rows."""
        assert self.item_ids_ is not None
        users = pd.unique(valid.frame["user"].to_numpy(dtype=object))
        limit = int(max(20, min(cap, 2e7 // max(len(self.item_ids_), 1))))
        if len(users) > limit:
            picked = np.random.default_rng([seed, salt]).choice(len(users), limit, replace=False)
            users = users[np.sort(picked)]
        rows = pd.Index(users).get_indexer(valid.frame["user"])
        columns = self.item_ids_.get_indexer(valid.frame["item"].to_numpy(dtype=object))
        keep = (rows >= 0) & (columns >= 0)
        return users, targets_per_user(rows[keep], columns[keep], len(users))

    def _distinct_users(self, events: Interactions) -> np.ndarray:
        assert self.item_ids_ is not None
        frame = events.frame
        rows = self.item_ids_.get_indexer(frame["item"].to_numpy(dtype=object))
        users = pd.factorize(frame["user"].to_numpy(dtype=object))[0]
        return distinct_user_counts(users[rows >= 0], rows[rows >= 0], len(self.item_ids_))

    def set_user_attributes(self, users: pd.DataFrame | None) -> None:
        """Give the attributes of the users to score (after :meth:`load`, or for new users); the
        columns the model was fitted with must be there. ``None`` forgets them all."""
        if users is None:
            self.user_attributes_ = None
            return
        if self.user_schema_ is None:
            raise ConfigError("this TwoTower was fitted without user attributes (fit(..., users=)); "
                              "it cannot read them.")
        table = as_attribute_table(users, where="set_user_attributes")
        self.user_schema_.encode(table, table.index.to_numpy(dtype=object)[:1], where="set_user_attributes")
        self.user_attributes_ = table

    def _codes(self, user_ids: np.ndarray) -> UserCodes | None:
        """Attribute codes of ``user_ids`` (``None`` when the model has no attributes)."""
        if self.user_schema_ is None:
            return None
        return self.user_schema_.encode(self.user_attributes_, user_ids)

    def _build(self, items: ItemVectors | None, events: Interactions) -> None:
        config = self.config
        if items is None:
            if not config.item_ids:
                raise ConfigError("TwoTower: without item content (items=None) the model needs "
                                  "item_ids=True.")
            ids = pd.unique(events.frame["item"].to_numpy(dtype=object))
            modalities: list[str] = []
        else:
            if not isinstance(items, ItemVectors):
                raise SchemaError(f"TwoTower.fit expects ItemVectors or None, got {type(items).__name__}.")
            ids = items.ids
            modalities = list(config.modalities if config.modalities is not None else items.modalities)
            missing = [m for m in modalities if m not in items.vectors]
            if missing:
                raise ConfigError(f"TwoTower: modalities {missing} are not in the item vectors "
                                  f"(they have {items.modalities}).")
        if not modalities and not config.item_ids:
            raise ConfigError("TwoTower: no modality and no item ids: the item tower has no input.")
        self.item_ids_ = pd.Index(ids)
        self.vocabulary_ = EventVocabulary(tuple(sorted(set(events.frame["event"]))))
        self.scalers_ = {m: items.scalers[m] for m in modalities} if items is not None else {}
        content = {m: torch.from_numpy(normalised_content(items, m, self.scalers_[m]))
                   for m in modalities} if items is not None else {}
        present = (torch.from_numpy(np.stack([items.masks[m] for m in modalities], axis=1))
                   if modalities and items is not None else torch.zeros(len(ids), 0, dtype=torch.bool))
        trained = torch.from_numpy(pd.Index(ids).isin(pd.unique(events.frame["item"])))
        with torch_seeded(self.training.seed):
            self.net_ = TwoTowerNet(config, n_items=len(ids), n_events=len(self.vocabulary_),
                                    content=content, present=present, trained=trained,
                                    user_schema=self.user_schema_)

    def _validator(self, train_events: Interactions, valid: Interactions, training: TrainConfig):
        users = pd.unique(valid.frame["user"].to_numpy(dtype=object))
        if training.max_valid_users is not None and len(users) > training.max_valid_users:
            pick = np.random.default_rng(training.seed).choice(len(users), training.max_valid_users,
                                                               replace=False)
            users = users[np.sort(pick)]
        history = train_events.for_users(users)
        targets = valid.for_users(users)
        key = f"recall@{training.valid_k}"

        def validate() -> float:
            return self.evaluate(history, targets, ks=(training.valid_k,), device=training.device)[key]

        return validate

    # ----------------------------------------------------------------------------- encoding
    def _fitted(self) -> TwoTowerNet:
        if self.net_ is None or self.item_ids_ is None:
            raise NotFittedError("this TwoTower is not fitted yet; call fit() or TwoTower.load().")
        return self.net_

    def histories(self, events: Interactions, users: Sequence[str] | None = None) -> Histories:
        """``events`` (Interactions or a DataFrame) as the model's time-ordered histories (``users``
        fixes the rows)."""
        events = as_interactions(events, caller="TwoTower")
        self._fitted()
        assert self.item_ids_ is not None and self.vocabulary_ is not None
        return Histories.from_interactions(events, self.item_ids_, self.vocabulary_,
                                           event_weights=self.event_weights, users=users)

    @torch.no_grad()
    def _user_chunks(self, histories: Histories, device: torch.device, table: torch.Tensor | None = None,
                     codes: UserCodes | None = None
                     ) -> Iterator[tuple[np.ndarray, torch.Tensor, Any, torch.Tensor]]:
        """Per chunk of users: their rows, final states, the batch and the history inputs. Without
        the item ``table``, only the items of each chunk's histories are fused (a few users over a
        large catalog cost their own history, not the whole table). With attribute ``codes`` (rows:
        the histories' users) each state includes the user's attribute vector — alone for a user
        without events."""
        net = self._fitted()
        for start in range(0, len(histories), SCORE_CHUNK):
            rows = np.arange(start, min(len(histories), start + SCORE_CHUNK))
            batch = histories.latest(rows, self.config.max_len).to(device)
            chunk_table = table if table is not None else net.item_table(
                torch.unique(batch.items[batch.mask] - 1))[0]
            profile = None if codes is None else net.profile(*codes.rows(rows).tensors(device))
            states, x, _ = net.user_states(batch, chunk_table, profile)
            final = states[:, -1]
            if profile is not None:
                final = torch.where(batch.mask[:, -1:], final, profile.to(final.dtype))
            yield rows, final, batch, x

    def _cold_part(self, histories: Histories):
        """``rows -> (len(rows), n_items)`` what the content blend adds to the cosines of the table's
        cold items (zero elsewhere); ``None`` without a blend or without cold items."""
        net = self._fitted()
        cold = np.flatnonzero(~net.trained.numpy())
        if self.blend_ is None or not cold.size:
            return None
        coords = self.blend_.project(self._raw_content(None))
        profiles = self.blend_.profile(_history_matrix(histories, net.n_items), coords)
        blend = self.blend_

        def part(rows: np.ndarray) -> np.ndarray:
            out = np.zeros((len(rows), net.n_items), dtype=np.float32)
            out[:, cold] = blend.cold_scores(profiles[rows], coords[cold])
            return out

        return part

    def _has_signal(self, histories: Histories, codes: UserCodes | None) -> np.ndarray:
        """Users with a vector: a known event, or an attribute row."""
        return (histories.lengths > 0) | (codes.known if codes is not None else False)

    @torch.no_grad()
    def _cosines(self, histories: Histories, codes: UserCodes | None) -> np.ndarray:
        """Cosines ``(users, items)`` of the users' vectors and every model item's (0 for users
        without signal)."""
        net = self._fitted()
        with _placed(net, torch.device("cpu")):
            table = F.normalize(net.item_vectors()[0].float(), dim=-1)
            out = np.zeros((len(histories), net.n_items), dtype=np.float32)
            cold_part = self._cold_part(histories)
            for rows, final, _, _ in self._user_chunks(histories, torch.device("cpu"), table, codes):
                out[rows] = (F.normalize(final.float(), dim=-1) @ table.T).numpy()
                if cold_part is not None:
                    out[rows] += cold_part(rows)
        out[~self._has_signal(histories, codes)] = 0.0
        return out

    @torch.no_grad()
    def encode_users(self, events: Interactions, *, users: Sequence[str] | None = None,
                     device: str | None = None) -> UserVectors:
        """L2-normalised interest vectors ``(n_users, dim)`` float32 from the users' histories.

        ``users`` defaults to every user in ``events``; a user without a known event gets their
        attribute vector (:meth:`set_user_attributes`), or, without attributes either, a zero
        vector and ``has_signal=False`` (serve them a fallback, e.g. popular items).
        """
        histories = self.histories(events, users)
        vectors = self._learned_users(histories, resolve_device(device or "cpu"))
        has_signal = self._has_signal(histories, self._codes(histories.user_ids))
        if self.blend_ is not None:
            profiles = self.blend_.profile(_history_matrix(histories, self._fitted().n_items),
                                           self.blend_.project(self._raw_content(None)))
            vectors = self.blend_.user_vectors(vectors, profiles, has_signal)
        vectors[~has_signal] = 0.0
        return UserVectors(histories.user_ids, vectors, has_signal)

    def _learned_users(self, histories: Histories, device: torch.device) -> np.ndarray:
        """The user tower's unit vectors ``(users, dim)`` (zeros for users without signal)."""
        codes = self._codes(histories.user_ids)
        vectors = np.zeros((len(histories), self.config.dim), dtype=np.float32)
        with _placed(self._fitted(), device):
            for rows, final, _, _ in self._user_chunks(histories, device, codes=codes):
                vectors[rows] = F.normalize(final.float(), dim=-1).cpu().numpy()
        vectors[~self._has_signal(histories, codes)] = 0.0
        return vectors

    def prior_segments(self, users: Sequence[str]) -> list[np.ndarray] | None:
        """Each user's segment rows for a segment-aware prior (their attributes from
        :meth:`set_user_attributes`); ``None`` when everyone gets the overall popularity."""
        return self.prior_.segment_rows(self.user_attributes_, users) if self.prior_ is not None else None

    def history_lengths(self, events: Interactions, users: Sequence[str] | None = None) -> np.ndarray:
        """Known events per user (rows: ``users``): what the popularity prior's weight reads."""
        return self.histories(events, users).lengths

    def _item_inputs(self, items: ItemVectors | None) -> tuple[np.ndarray, list[torch.Tensor],
                                                                torch.Tensor, torch.Tensor]:
        net = self._fitted()
        assert self.item_ids_ is not None
        if items is None:
            rows = net.id_rows(torch.arange(net.n_items))
            content = [getattr(net, f"content_{i}") for i in range(len(net.modalities))]
            return self.item_ids_.to_numpy(dtype=object), content, net.present, rows
        if not isinstance(items, ItemVectors):
            raise SchemaError(f"expected ItemVectors (mmrec.encode_items), got {type(items).__name__}.")
        content, present = [], []
        for modality in net.modalities:
            if modality in items.vectors:
                content.append(torch.from_numpy(normalised_content(items, modality, self.scalers_[modality])))
                present.append(torch.from_numpy(items.masks[modality]))
            else:
                width = getattr(net, f"content_{net.modalities.index(modality)}").shape[1]
                content.append(torch.zeros(len(items), width))
                present.append(torch.zeros(len(items), dtype=torch.bool))
        mask = torch.stack(present, dim=1) if present else torch.zeros(len(items), 0, dtype=torch.bool)
        rows = torch.from_numpy(self.item_ids_.get_indexer(items.ids).astype(np.int64))
        return items.ids, content, mask, net.id_rows(rows)

    @torch.no_grad()
    def _fused(self, items: ItemVectors | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        net = self._fitted().eval()
        ids, content, present, rows = self._item_inputs(items)
        vectors, weights = [], []
        for start in range(0, len(ids), 4096):
            part = slice(start, start + 4096)
            fused, share = net.fuse([c[part] for c in content], present[part], rows[part])
            vectors.append(F.normalize(fused.float(), dim=-1))
            weights.append(share.float())
        return ids, torch.cat(vectors).numpy(), torch.cat(weights).numpy()

    def encode_items(self, items: ItemVectors | None = None) -> ItemVectors:
        """Learned, L2-normalised item vectors (``fused``) for ``items`` (default: the training table).

        Items the model never saw are encoded from their content alone (no id embedding), so new
        items can join an index without retraining. Pass the result to :func:`mmrec.build_index`.
        """
        ids, fused, _ = self._fused(items)
        known = (pd.Index(ids).isin(self.item_ids_) if self.config.item_ids
                 else np.zeros(len(ids), dtype=bool))
        if self.blend_ is not None:  # cold items: + the content-neighbour part and the calibration
            cold = (self._item_inputs(items)[3] < 0).numpy()
            fused = self.blend_.item_vectors(fused, self.blend_.project(self._raw_content(items)), cold)
        if items is not None and (~known).any() and not self._fitted().modalities:
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
        ids, _, weights = self._fused(items)
        return pd.DataFrame(weights, index=pd.Index(ids, name="item"), columns=self._fitted().tokens)

    # ----------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def _score_chunks(self, histories: Histories, *, candidate_aware: bool, device: torch.device
                      ) -> Iterator[tuple[np.ndarray, Any, torch.Tensor]]:
        """Per chunk of history rows: the rows, their batch and float32 logits over the item table
        (with the fading popularity prior, when the model has one)."""
        net = self._fitted()
        codes = self._codes(histories.user_ids)
        cold_part = self._cold_part(histories)
        if self.prior_ is not None:
            weights = torch.from_numpy(self.prior_.weight(histories.lengths)).float().to(device)
            log_pop = torch.from_numpy(self.prior_.log_popularity.astype(np.float32)).to(device)
            segment_rows = self.prior_segments(histories.user_ids)
        with _placed(net, device):
            table, _ = net.item_vectors()
            for rows, final, batch, x in self._user_chunks(histories, device, table, codes):
                prior = None  # what the prior and the cold items' blend add to this chunk's logits
                if self.prior_ is not None:
                    own = log_pop if segment_rows is None else torch.from_numpy(
                        self.prior_.for_users([segment_rows[r] for r in rows])).to(device)
                    prior = weights[torch.from_numpy(rows).to(device)].unsqueeze(1) * own * net.scale
                if cold_part is not None:
                    added = torch.from_numpy(cold_part(rows)).to(device) * net.scale
                    prior = added if prior is None else prior + added
                if candidate_aware and net.has_candidate_scores:
                    parts = torch.arange(net.n_items, device=device).split(1024)
                    logits = torch.cat([net.candidate_logits(x, batch.mask, table[part],
                                                             last_only=True)[:, -1] for part in parts],
                                       dim=1)
                else:
                    logits = net.logits(final, table)
                yield rows, batch, logits.float() if prior is None else (logits + prior).float()

    def score_items(self, events: Interactions, *, users: Sequence[str] | None = None,
                    candidate_aware: bool = True, device: str | None = None) -> np.ndarray:
        """Scores ``(n_users, n_items)`` float32 of every model item (columns: :attr:`item_ids_`) for
        each user's history in ``events`` (rows: ``users``, default every user in ``events``); seen
        items are not masked. Users without a known event get the score of an empty history."""
        histories = self.histories(events, users)
        assert self.item_ids_ is not None
        scores = np.empty((len(histories), len(self.item_ids_)), dtype=np.float32)
        for rows, _, logits in self._score_chunks(histories, candidate_aware=candidate_aware,
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

    @torch.no_grad()
    def predict_ratings(self, history: Interactions, pairs: pd.DataFrame) -> np.ndarray:
        """The rating head's prediction for each ``(user, item)`` row of ``pairs`` after the user's
        ``history`` (NaN for items the model does not know)."""
        net = self._fitted().eval()
        assert self.item_ids_ is not None
        users = pd.unique(pairs["user"].to_numpy(dtype=object))
        histories = self.histories(history, users)
        row_of_user = pd.Index(users).get_indexer(pairs["user"].to_numpy(dtype=object))
        item_rows = self.item_ids_.get_indexer(pairs["item"].to_numpy(dtype=object))
        predicted = np.full(len(pairs), np.nan)
        table, _ = net.item_vectors()
        codes = self._codes(histories.user_ids)
        for rows, final, _, _ in self._user_chunks(histories, torch.device("cpu"), table, codes):
            wanted = np.flatnonzero(np.isin(row_of_user, rows) & (item_rows >= 0))
            if wanted.size:
                states = final[torch.from_numpy(row_of_user[wanted] - rows[0])]
                items = torch.from_numpy(item_rows[wanted].astype(np.int64))
                predicted[wanted] = net.predicted_rating(states, table[items], items).double().numpy()
        return predicted

    @torch.no_grad()
    def _rank(self, histories: Histories, k: int, *, exclude_seen: bool, candidate_aware: bool,
              device: torch.device) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` table rows and scores per history row, ranked over the whole item table."""
        k = min(k, self._fitted().n_items)
        top = np.full((len(histories), k), -1, dtype=np.int64)
        scores = np.full((len(histories), k), -np.inf, dtype=np.float32)
        for rows, batch, logits in self._score_chunks(histories, candidate_aware=candidate_aware,
                                                      device=device):
            if exclude_seen:
                seen = batch.items - 1
                counts = torch.zeros_like(logits).scatter_add_(1, seen.clamp_min(0), (seen >= 0).float())
                logits = logits.masked_fill(counts > 0, -torch.inf)
                for row in rows:  # histories longer than max_len: mask the rest too
                    lo, hi = histories.offsets[row], histories.offsets[row + 1]
                    if hi - lo > self.config.max_len:
                        older = torch.from_numpy(histories.item_idx[lo : hi - self.config.max_len])
                        logits[row - rows[0], older.to(device)] = -torch.inf
            value, index = logits.topk(k, dim=1)
            index[~torch.isfinite(value)] = -1
            top[rows], scores[rows] = index.cpu().numpy(), value.cpu().numpy()
        return top, scores

    def evaluate(self, history: Interactions, targets: Interactions, *, ks: Sequence[int] = (10, 20),
                 exclude_seen: bool = True, candidate_aware: bool = True,
                 device: str | None = None) -> dict[str, float]:
        """Full-ranking metrics: each user's ``targets`` ranked among all items from their ``history``.

        Items in the history are excluded (``exclude_seen``); target events on items the model
        does not know count as misses. ``candidate_aware`` uses the attention tower's
        candidate-aware scores (other towers ignore it).
        """
        self._fitted()
        frame = targets.frame
        users = pd.unique(frame["user"].to_numpy(dtype=object))
        histories = self.histories(history, users)
        top, _ = self._rank(histories, max(ks), exclude_seen=exclude_seen,
                            candidate_aware=candidate_aware,
                            device=resolve_device(device or self.training.device))
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
        """Write weights (safetensors), configs and id maps (JSON) into a folder, atomically.

        In a data-parallel run (a process group initialised) only rank 0 writes; the other
        processes hold the same weights and return the path without touching it."""
        net = self._fitted()
        assert self.item_ids_ is not None and self.vocabulary_ is not None
        path = Path(path)
        if self.rank_ != 0 or not is_main_process():
            return path
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        for modality, scaler in self.scalers_.items():
            tensors[f"scaler.{modality}"] = torch.from_numpy(np.stack([scaler.mean, scaler.scale]))
        if self.prior_ is not None:
            tensors.update(_prior_tensors(self.prior_))
        if self.blend_ is not None:
            tensors["blend.mean"] = torch.from_numpy(self.blend_.mean)
            tensors["blend.directions"] = torch.from_numpy(self.blend_.directions)
        with atomic_directory(path) as tmp:
            save_file(tensors, tmp / "model.safetensors")
            (tmp / "item_ids.json").write_text(json.dumps(self.item_ids_.tolist()), "utf-8")
            write_manifest(tmp, ARTIFACT_KIND, version=FORMAT_VERSION, payload={
                "config": config_to_dict(self.config),
                "training": config_to_dict(self.training),
                "event_weights": {**config_to_dict(self.event_weights),
                                  "weights": dict(self.event_weights.weights)},
                "events": list(self.vocabulary_.names),
                "modalities": net.modalities,
                "tokens": net.tokens,
                "history": self.history_.to_dict() if self.history_ else None,
                "user_schema": self.user_schema_.to_dict() if self.user_schema_ else None,
                "prior": self.prior_.to_dict() if self.prior_ else None,
                "blend": self.blend_.to_dict() if self.blend_ else None,
            }, files=["model.safetensors", "item_ids.json"])
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TwoTower:
        """Load a folder written by :meth:`save` (checksums verified, no pickle)."""
        path = Path(path)
        manifest = read_manifest(path, ARTIFACT_KIND, version=FORMAT_VERSION,
                                 require=["model.safetensors", "item_ids.json"])
        try:
            config = config_from_dict(TwoTowerConfig, manifest["config"], where=f"{path} config")
            training = config_from_dict(TrainConfig, manifest["training"], where=f"{path} training")
            weights = manifest["event_weights"]
            event_weights = config_from_dict(EventWeights, {**weights,
                                                            "explicit": tuple(weights["explicit"])})
            ids = json.loads((path / "item_ids.json").read_text("utf-8"))
            vocabulary = EventVocabulary(tuple(manifest["events"]))
            modalities = manifest["modalities"]
            schema = (UserFeatureSchema.from_dict(manifest["user_schema"]) if manifest.get("user_schema")
                      else None)
            _check_shapes(path, config, n_items=len(ids), n_events=len(vocabulary), modalities=modalities,
                          user_schema=schema)
            tensors = load_file(path / "model.safetensors")
            prior = _load_prior(manifest["prior"], tensors, pd.Index(ids)) if manifest.get("prior") else None
            blend = None
            if manifest.get("blend"):
                mean, directions = tensors.pop("blend.mean").numpy(), tensors.pop("blend.directions").numpy()
                width = sum(tensor_shapes(path / "model.safetensors")[f"net.content_{i}"][1]
                            for i in range(len(modalities)))
                if mean.shape != (width,) or directions.ndim != 2 or directions.shape[1] != width:
                    raise ValueError(f"the content blend has shapes {mean.shape} / {directions.shape}, the "
                                     f"content is {width} wide")
                saved = manifest["blend"]
                blend = ContentBlend(mean, directions, float(saved["weight"]), float(saved["offset"]),
                                     saved.get("valid") or {})
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise ArtifactError(f"{path.name}: the model cannot be read ({exc}).") from exc
        model = cls(config, training=training, event_weights=event_weights)
        model.item_ids_ = pd.Index(ids)
        model.vocabulary_ = vocabulary
        model.user_schema_, model.prior_, model.blend_ = schema, prior, blend
        model.scalers_ = {m: ModalityScaler(*tensors[f"scaler.{m}"].numpy()) for m in modalities}
        content = {m: tensors[f"net.content_{i}"] for i, m in enumerate(modalities)}
        present = tensors["net.present"]
        model.net_ = TwoTowerNet(config, n_items=len(ids), n_events=len(model.vocabulary_),
                                 content=content, present=present, trained=tensors.get("net.trained"),
                                 init_projections=False, user_schema=schema)
        state = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
        state.setdefault("trained", model.net_.trained)  # saved before cold items were tracked
        try:
            model.net_.load_state_dict(state)
        except RuntimeError as exc:
            raise ArtifactError(f"{path.name}: weights do not fit the saved configuration ({exc}).") from exc
        model.net_.eval()
        if manifest.get("history"):
            model.history_ = TrainingHistory(**manifest["history"])
        return model


def _prior_tensors(prior: PopularityPrior) -> dict[str, torch.Tensor]:
    """The prior's arrays, for safetensors."""
    tensors = {"prior.log_popularity": torch.from_numpy(prior.log_popularity.astype(np.float32))}
    if prior.unknown_items is not None:
        tensors["prior.unknown_items"] = torch.from_numpy(prior.unknown_items.astype(np.uint8))
    if prior.segments is not None:
        counts = np.ascontiguousarray(prior.segments.counts, dtype=np.float32)
        tensors["prior.segment_counts"] = torch.from_numpy(counts)
        tensors["prior.segment_members"] = torch.from_numpy(prior.segments.members.astype(np.float32))
    return tensors


def _load_prior(saved: Mapping[str, Any], tensors: dict[str, torch.Tensor], ids: pd.Index) -> PopularityPrior:
    """The prior :func:`_prior_tensors` and ``PopularityPrior.to_dict`` wrote (shapes checked)."""
    log_pop = tensors.pop("prior.log_popularity").numpy()
    if log_pop.shape != (len(ids),):
        raise ValueError(f"the prior's popularity has shape {log_pop.shape}, not ({len(ids)},)")
    unknown = tensors.pop("prior.unknown_items", None)
    if unknown is not None and tuple(unknown.shape) != (len(ids),):
        raise ValueError(f"the prior's unknown items have shape {tuple(unknown.shape)}, not ({len(ids)},)")
    segments = None
    if saved.get("segments"):
        keys = pd.Index(saved["segments"]["keys"], dtype=object)
        counts = tensors.pop("prior.segment_counts").numpy()
        members = tensors.pop("prior.segment_members").numpy()
        if counts.shape != (len(keys), len(ids)) or members.shape != (len(keys),):
            raise ValueError(f"the prior's segment counts have shapes {counts.shape} / {members.shape}, not "
                             f"({len(keys)}, {len(ids)}) / ({len(keys)},)")
        edges = {str(c): [float(e) for e in v] for c, v in saved["segments"]["edges"].items()}
        segments = SegmentPrior(SegmentRule(edges), keys, counts, members, int(saved["segments"]["n_users"]))
    return PopularityPrior(ids, log_pop, tuple(int(n) for n in saved["steps"]),
                           tuple(float(w) for w in saved["weights"]), saved.get("valid"), segments=segments,
                           unknown_items=None if unknown is None else unknown.numpy().astype(bool))


def _history_matrix(histories: Histories, n_items: int) -> Any:
    """``(users, items)`` sparse matrix of the histories' event weights (positive weights only)."""
    from scipy.sparse import csr_matrix

    rows = np.repeat(np.arange(len(histories)), histories.lengths)
    weights = np.maximum(histories.weights, 0.0).astype(np.float32)
    return csr_matrix((weights, (rows, histories.item_idx)), shape=(len(histories), n_items))


def _check_shapes(path: Path, config: TwoTowerConfig, *, n_items: int, n_events: int,
                  modalities: list[str], user_schema: UserFeatureSchema | None = None) -> None:
    """The saved weights' shapes (from the safetensors header) against the network the saved
    configuration describes, laid out on the ``meta`` device: an edited manifest (say, a larger
    ``dim``) is an ArtifactError before anything is allocated."""
    found = tensor_shapes(path / "model.safetensors")
    content = {}
    for i, modality in enumerate(modalities):
        shape = found.get(f"net.content_{i}")
        if shape is None or len(shape) != 2 or shape[0] != n_items:
            raise ArtifactError(f"{path.name}/model.safetensors: the {modality!r} content table has shape "
                                f"{shape}, not ({n_items}, d) for the {n_items} saved item ids; re-save it.")
        content[modality] = torch.empty(shape, device="meta")
    with torch.device("meta"):
        skeleton = TwoTowerNet(config, n_items=n_items, n_events=n_events, content=content,
                               present=torch.empty((n_items, len(modalities)), dtype=torch.bool),
                               init_projections=False, user_schema=user_schema)
    for name, tensor in skeleton.state_dict().items():
        saved = found.get(f"net.{name}")
        if saved is None and name == "trained":  # saved before cold items were tracked
            continue
        if saved != tuple(tensor.shape):
            raise ArtifactError(f"{path.name}/model.safetensors: {name!r} is saved with shape {saved}, the "
                                f"saved configuration needs {tuple(tensor.shape)}: the manifest or the "
                                "weights were edited; re-save the model.")
