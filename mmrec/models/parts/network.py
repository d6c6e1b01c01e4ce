"""The network part: the item table, the learned fusion and user tower, and their training.

Reads the item vectors and the training events (:class:`FitData`, after the other parts' hold-outs;
when no validation events were given it holds each user's last event out for early stopping),
builds a :class:`TwoTowerNet` over the catalog and trains it (:func:`mmrec.models.training.train`).
Gives the rest of the model the users' states and the items' fused vectors, chunk by chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mmrec.data.interactions import EventWeights, Interactions, as_interactions
from mmrec.data.splits import leave_last_out
from mmrec.errors import ConfigError, NotFittedError, SchemaError
from mmrec.models.config import TrainConfig, TwoTowerConfig
from mmrec.models.distributed import collective, local_device
from mmrec.models.histories import EventVocabulary, Histories
from mmrec.models.network import TwoTowerNet
from mmrec.models.parts.base import Composition, FitData, Part
from mmrec.models.training import TrainingHistory, train
from mmrec.models.user_features import UserCodes, UserFeatureSchema
from mmrec.utils.config import config_from_dict, config_to_dict
from mmrec.utils.device import resolve_device
from mmrec.utils.seed import torch_seeded
from mmrec.vectors.fixed_fusion import ModalityScaler, concat_fusion
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["Network", "has_signal", "normalised_content", "placed"]

SCORE_CHUNK = 256  # users a chunk when scoring
# users × items scored against the whole table at once: a chunk's logits and a part's term are
# each that big (at a million items, 256 users with the terms summed beside the logits and a
# seen-item mask made ~7 GB of transients — the L benchmark's fit peak, in its end-of-epoch
# validation); fewer users a chunk read the whole table more often
FULL_TABLE_CELLS = 1 << 27
FUSE_CHUNK = 4096  # items fused at once


def full_table_chunk(n_items: int) -> int:
    """Users a chunk when every one is scored against all ``n_items``."""
    return max(1, min(SCORE_CHUNK, FULL_TABLE_CELLS // max(n_items, 1)))


def normalised_content(items: ItemVectors, modality: str, scaler: ModalityScaler) -> np.ndarray:
    """One modality z-scored with ``scaler`` and L2-normalised per item (zero where absent)."""
    return concat_fusion({modality: items.vectors[modality]}, {modality: items.masks[modality]},
                         scalers={modality: scaler})


@contextlib.contextmanager
def placed(net: torch.nn.Module, device: torch.device) -> Iterator[torch.nn.Module]:
    """``net`` on ``device`` in eval mode for the block, then back on its device and in its mode
    (validation during training on a GPU must leave the model, and its optimizer, where they were)."""
    home = next(iter(net.state_dict().values())).device
    was_training = net.training
    net.to(device).eval()
    try:
        yield net
    finally:
        net.to(home).train(was_training)


def has_signal(histories: Histories, codes: UserCodes | None) -> np.ndarray:
    """Users with a vector: a known event, or an attribute row."""
    return (histories.lengths > 0) | (codes.known if codes is not None else False)


class Network(Part):
    """The trained :class:`TwoTowerNet` with its item ids, event vocabulary and content scalers."""

    name = "network"

    def __init__(self, config: TwoTowerConfig, training: TrainConfig, event_weights: EventWeights) -> None:
        self.config, self.training, self.event_weights = config, training, event_weights
        self.net_: TwoTowerNet | None = None
        self.item_ids_: pd.Index | None = None
        self.vocabulary_: EventVocabulary | None = None
        self.scalers_: dict[str, ModalityScaler] = {}
        self.history_: TrainingHistory | None = None
        self.user_schema_: UserFeatureSchema | None = None  # the attributes the user tower reads
        self.rank_ = 0  # this process's rank in the data-parallel run that fitted it (0: it saves)

    @classmethod
    def for_model(cls, model: Composition) -> Network:
        return cls(model.config, model.training, model.event_weights)

    @property
    def fitted(self) -> bool:
        return self.net_ is not None and self.item_ids_ is not None

    @property
    def net(self) -> TwoTowerNet:
        """The fitted network (:class:`NotFittedError` before ``fit`` or ``load``)."""
        if self.net_ is None or self.item_ids_ is None:
            raise NotFittedError("this TwoTower is not fitted yet; call fit() or TwoTower.load().")
        return self.net_

    # ----------------------------------------------------------------------------- fitting
    def fit(self, model: Composition, data: FitData) -> None:
        """Split validation off (when none was given), build the network over the catalog, train it."""
        training = data.training
        device = data.device = local_device(resolve_device(training.device))
        group = collective(device)
        if data.valid is None:
            split = leave_last_out(data.events, n_test=0, n_valid=1, min_train=2)
            data.events, data.valid = split.train, split.valid
        events, valid = data.events, data.valid
        self.build(data.items, events, data.user_schema)
        net = self.net.to(device)
        histories = self.histories(events)
        if int(histories.lengths.sum()) == 0:
            raise SchemaError("TwoTower.fit: no training event refers to a known item.")
        popularity = np.bincount(histories.item_idx, weights=histories.weights,
                                 minlength=net.n_items).astype(np.float64)
        validate = _validator(model, events, valid, training) if len(valid) else None
        reserved = [mask for part in model.parts.values()
                    if (mask := part.reserve_items(model, data)) is not None]
        keep_ids = np.logical_or.reduce(reserved) if reserved else None
        with torch_seeded(training.seed):
            self.history_ = train(net, histories, config=training, popularity=popularity,
                                  validate=validate, device=device, checkpoint_dir=data.checkpoint_dir,
                                  show_progress=data.show_progress, group=group,
                                  user_codes=data.codes(histories.user_ids), keep_ids=keep_ids,
                                  epoch_scale=data.epoch_scale)
        self.rank_ = group.rank
        net.cpu()

    def build(self, items: ItemVectors | None, events: Interactions,
              user_schema: UserFeatureSchema | None) -> None:
        """A freshly initialised network over ``items`` (or the items of ``events`` for an id-only model)."""
        config = self.config
        if items is None:
            if not config.item_ids:
                raise ConfigError("TwoTower: without item content (items=None) the model needs "
                                  "item_ids=True.")
            ids = events.distinct("item")
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
        self.item_ids_, self.user_schema_ = pd.Index(ids), user_schema
        self.vocabulary_ = EventVocabulary(tuple(sorted(events.distinct("event"))))
        self.scalers_ = {m: items.scalers[m] for m in modalities} if items is not None else {}
        content = {m: torch.from_numpy(normalised_content(items, m, self.scalers_[m]))
                   for m in modalities} if items is not None else {}
        present = (torch.from_numpy(np.stack([items.masks[m] for m in modalities], axis=1))
                   if modalities and items is not None else torch.zeros(len(ids), 0, dtype=torch.bool))
        trained = torch.from_numpy(pd.Index(ids).isin(events.distinct("item")))
        with torch_seeded(self.training.seed):
            self.net_ = TwoTowerNet(config, n_items=len(ids), n_events=len(self.vocabulary_),
                                    content=content, present=present, trained=trained,
                                    user_schema=user_schema)

    # ----------------------------------------------------------------------------- users
    def histories(self, events: Interactions, users: Sequence[str] | None = None) -> Histories:
        """``events`` as the network's time-ordered histories (``users`` fixes the rows)."""
        events = as_interactions(events, caller="TwoTower")
        self.net  # noqa: B018 - raises NotFittedError before anything is read
        assert self.item_ids_ is not None and self.vocabulary_ is not None
        return Histories.from_interactions(events, self.item_ids_, self.vocabulary_,
                                           event_weights=self.event_weights, users=users)

    @torch.no_grad()
    def user_chunks(self, histories: Histories, device: torch.device, table: torch.Tensor | None = None,
                    codes: UserCodes | None = None, chunk: int = SCORE_CHUNK
                    ) -> Iterator[tuple[np.ndarray, torch.Tensor, Any, torch.Tensor]]:
        """Per chunk of users: their rows (ascending), final states, the batch and the history inputs.

        Chunks are users of similar history length when the tower ignores left padding (each batch
        is then cut to its longest history: the cost follows the events), in order otherwise.
        Without the item ``table``, only the items of each chunk's histories are fused, into a
        compact table the chunk's histories are renumbered into (a few users over a large catalog
        cost their own history, not a catalog-sized table: at a million items a zero-filled
        ``(n_items, dim)`` table per chunk made scoring 1M users take hours). With attribute ``codes``
        (rows: the histories' users) each state includes the user's attribute vector — alone for a
        user without events. ``chunk``: users a chunk (fewer when each is scored against a large
        table: :func:`full_table_chunk`)."""
        net = self.net
        order = (np.argsort(histories.lengths, kind="stable") if net.padding_invariant
                 else np.arange(len(histories)))
        for start in range(0, len(histories), chunk):
            rows = np.sort(order[start : start + chunk])
            width = net.batch_width(histories.lengths[rows], self.config.max_len)
            batch = histories.latest(rows, width).to(device)
            inputs = batch
            if table is None:
                used = torch.unique(batch.items[batch.mask] - 1)
                chunk_table = (net.item_vectors(used)[0] if len(used)
                               else torch.zeros(1, self.config.dim, device=device))  # nothing to read
                inputs = batch.renumbered(used)
            else:
                chunk_table = table
            profile = None if codes is None else net.profile(*codes.rows(rows).tensors(device))
            states, x, _ = net.user_states(inputs, chunk_table, profile)
            final = states[:, -1]
            if profile is not None:
                final = torch.where(batch.mask[:, -1:], final, profile.to(final.dtype))
            yield rows, final, batch, x

    def learned_users(self, histories: Histories, device: torch.device, codes: UserCodes | None
                      ) -> np.ndarray:
        """The user tower's unit vectors ``(users, dim)`` float32 (zeros for users without signal)."""
        vectors = np.zeros((len(histories), self.config.dim), dtype=np.float32)
        with placed(self.net, device):
            for rows, final, _, _ in self.user_chunks(histories, device, codes=codes):
                vectors[rows] = F.normalize(final.float(), dim=-1).cpu().numpy()
        vectors[~has_signal(histories, codes)] = 0.0
        return vectors

    @torch.no_grad()
    def predict_ratings(self, histories: Histories, row_of_user: np.ndarray, items: Sequence[Any],
                        codes: UserCodes | None) -> np.ndarray:
        """The rating head's prediction for each (history row, item id) pair (NaN for unknown items)."""
        net = self.net.eval()
        assert self.item_ids_ is not None
        item_rows = self.item_ids_.get_indexer(np.asarray(items, dtype=object))
        predicted = np.full(len(row_of_user), np.nan)
        table, _ = net.item_vectors()
        position = np.zeros(len(histories), dtype=np.int64)  # a history row's place in its chunk
        for rows, final, _, _ in self.user_chunks(histories, torch.device("cpu"), table, codes):
            wanted = np.flatnonzero(np.isin(row_of_user, rows) & (item_rows >= 0))
            position[rows] = np.arange(len(rows))
            if wanted.size:
                states = final[torch.from_numpy(position[row_of_user[wanted]])]
                picked = torch.from_numpy(item_rows[wanted].astype(np.int64))
                predicted[wanted] = net.predicted_rating(states, table[picked], picked).double().numpy()
        return predicted

    # ----------------------------------------------------------------------------- items
    def item_inputs(self, items: ItemVectors | None) -> tuple[np.ndarray, list[torch.Tensor],
                                                              torch.Tensor, torch.Tensor]:
        """Ids, normalised content per modality, presence mask and id-embedding rows (-1: an item
        the table does not hold) of ``items`` (default: the network's item table)."""
        net = self.net
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
    def fused(self, items: ItemVectors | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ids, L2-normalised fused vectors and per-token fusion shares of ``items``."""
        net = self.net.eval()
        ids, content, present, rows = self.item_inputs(items)
        vectors, weights = [], []
        for start in range(0, len(ids), FUSE_CHUNK):
            part = slice(start, start + FUSE_CHUNK)
            fused, share = net.fuse([c[part] for c in content], present[part], rows[part])
            vectors.append(F.normalize(fused.float(), dim=-1))
            weights.append(share.float())
        return ids, torch.cat(vectors).numpy(), torch.cat(weights).numpy()

    def raw_content(self, items: ItemVectors | None) -> np.ndarray:
        """The items' normalised content, modalities side by side (zeros where absent)."""
        _, content, present, _ = self.item_inputs(items)
        parts = [c.numpy() * present[:, i : i + 1].numpy() for i, c in enumerate(content)]
        return np.hstack(parts).astype(np.float32) if parts else np.zeros((len(present), 0), np.float32)

    @property
    def content_width(self) -> int:
        """Width of :meth:`raw_content`."""
        net = self.net
        return sum(getattr(net, f"content_{i}").shape[1] for i in range(len(net.modalities)))

    # ----------------------------------------------------------------------------- persistence
    def params(self) -> dict[str, Any]:
        return {"config": config_to_dict(self.config), "training": config_to_dict(self.training),
                "event_weights": {**config_to_dict(self.event_weights),
                                  "weights": dict(self.event_weights.weights)}}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Network:
        weights = params["event_weights"]
        return cls(config_from_dict(TwoTowerConfig, params["config"], where="network config"),
                   config_from_dict(TrainConfig, params["training"], where="network training"),
                   config_from_dict(EventWeights, {**weights, "explicit": tuple(weights["explicit"])}))

    def state(self) -> dict[str, Any]:
        net = self.net
        assert self.item_ids_ is not None and self.vocabulary_ is not None
        state: dict[str, Any] = {f"net.{k}": v.detach().cpu().contiguous().numpy()
                                 for k, v in net.state_dict().items()}
        for modality, scaler in self.scalers_.items():
            state[f"scaler.{modality}"] = np.stack([scaler.mean, scaler.scale])
        return {**state, "item_ids": self.item_ids_, "events": list(self.vocabulary_.names),
                "modalities": list(net.modalities), "tokens": list(net.tokens),
                "history": self.history_.to_dict() if self.history_ else None,
                "user_schema": self.user_schema_.to_dict() if self.user_schema_ else None}

    def set_state(self, state: dict[str, Any]) -> None:
        """Build the saved network (its shapes checked against the configuration first, on the
        ``meta`` device: an edited configuration is refused before anything is allocated)."""
        ids, modalities = pd.Index(state["item_ids"], dtype=object), list(state["modalities"])
        vocabulary = EventVocabulary(tuple(state["events"]))
        weights = {k[len("net."):]: torch.from_numpy(np.asarray(v)) for k, v in state.items()
                   if k.startswith("net.")}
        schema = UserFeatureSchema.from_dict(state["user_schema"]) if state.get("user_schema") else None
        build = _builder(self.config, len(ids), len(vocabulary), schema)
        _check_shapes(weights, modalities, len(ids), build)
        content = {m: weights[f"content_{i}"] for i, m in enumerate(modalities)}
        self.net_ = build(content, weights["present"], weights.get("trained"))
        weights.setdefault("trained", self.net_.trained)  # saved before cold items were tracked
        try:
            self.net_.load_state_dict(weights)
        except RuntimeError as exc:
            raise ValueError(f"the weights do not fit the saved configuration ({exc})") from None
        self.net_.eval()
        self.item_ids_, self.vocabulary_, self.user_schema_ = ids, vocabulary, schema
        self.scalers_ = {m: ModalityScaler(*np.asarray(state[f"scaler.{m}"])) for m in modalities}
        self.history_ = TrainingHistory(**state["history"]) if state.get("history") else None


def _builder(config: TwoTowerConfig, n_items: int, n_events: int, user_schema: UserFeatureSchema | None
             ) -> Callable[..., TwoTowerNet]:
    def build(content: dict[str, torch.Tensor], present: torch.Tensor, trained: torch.Tensor | None
              ) -> TwoTowerNet:
        return TwoTowerNet(config, n_items=n_items, n_events=n_events, content=content, present=present,
                           trained=trained, init_projections=False, user_schema=user_schema)
    return build


def _check_shapes(weights: dict[str, torch.Tensor], modalities: list[str], n_items: int,
                  build: Callable[..., TwoTowerNet]) -> None:
    """The saved weights' shapes against the network the saved configuration describes, laid out
    on the ``meta`` device: an edited configuration (say, a larger ``dim``) is an error before a
    real network is allocated."""
    content = {}
    for i, modality in enumerate(modalities):
        shape = tuple(weights[f"content_{i}"].shape) if f"content_{i}" in weights else None
        if shape is None or len(shape) != 2 or shape[0] != n_items:
            raise ValueError(f"the {modality!r} content table has shape {shape}, not ({n_items}, d) for the "
                             f"{n_items} saved item ids")
        content[modality] = torch.empty(shape, device="meta")
    with torch.device("meta"):
        skeleton = build(content, torch.empty((n_items, len(modalities)), dtype=torch.bool), None)
    for name, tensor in skeleton.state_dict().items():
        saved = tuple(weights[name].shape) if name in weights else None
        if saved is None and name == "trained":  # saved before cold items were tracked
            continue
        if saved != tuple(tensor.shape):
            raise ValueError(f"{name!r} is saved with shape {saved}, the saved configuration needs "
                             f"{tuple(tensor.shape)}: the manifest or the weights were edited")


def _validator(model: Composition, train_events: Interactions, valid: Interactions, training: TrainConfig
               ) -> Callable[[], float]:
    """Early stopping's metric: recall@``valid_k`` of (a sample of) the validation users."""
    users = pd.unique(valid.frame["user"].to_numpy(dtype=object))
    if training.max_valid_users is not None and len(users) > training.max_valid_users:
        pick = np.random.default_rng(training.seed).choice(len(users), training.max_valid_users,
                                                           replace=False)
        users = users[np.sort(pick)]
    history = train_events.for_users(users)
    targets = valid.for_users(users)
    key = f"recall@{training.valid_k}"

    def validate() -> float:
        return model.evaluate(history, targets, ks=(training.valid_k,), device=training.device)[key]

    return validate
