"""The fading popularity prior part: how strongly a user with few events leans on popular items.

Before training it holds ``TrainConfig.prior_users`` users out of training altogether (at most a
tenth of the users with 3+ events, seeded; an epoch keeps the steps a pass over every user would
take). After training it fits the prior's weight per history length on them — their first ``n``
events revealed, every later event a target — capped by the validation users' next events
(:func:`mmrec.models.prior.fit_prior_weights`), and keeps the log-popularity of every event given
to ``fit``; with user attributes the popularity is each user's segments' (:class:`SegmentPrior`).
At serving time it adds ``weight(n) · log-popularity`` to the cosines. ``prior_users=0`` switches
it off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from mmrec.data.interactions import Interactions
from mmrec.data.matrix import distinct_user_counts
from mmrec.data.segments import SegmentRule
from mmrec.models.histories import Histories
from mmrec.models.parts.base import Composition, FitData, Part, ScoreTerm, validation_sample
from mmrec.models.parts.network import full_table_chunk, has_signal, placed
from mmrec.models.prior import (
    PRIOR_STEPS,
    PopularityPrior,
    SegmentPrior,
    fit_prior_weights,
    log_popularity,
    neutral_unknown,
    step_buckets,
)
from mmrec.models.user_features import UserCodes

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FadingPrior"]

logger = logging.getLogger(__name__)

MIN_HELD_OUT = 20  # fewer held-out users than this: no prior
HELD_OUT_CELLS = 100_000_000  # held-out users × items scored at most (float32 scores + float64 log-pops)


class FadingPrior(Part):
    """The fitted :class:`PopularityPrior` (``prior_``), or ``None``."""

    name = "prior"

    def __init__(self) -> None:
        self.prior_: PopularityPrior | None = None
        self._heldout: Interactions | None = None  # during fit only

    @property
    def fitted(self) -> bool:
        return self.prior_ is not None

    # ----------------------------------------------------------------------------- fitting
    def before_training(self, model: Composition, data: FitData) -> None:
        """Hold the prior's users out of ``data.events`` and ``data.valid``."""
        n_items = len(data.items.ids) if data.items is not None else len(data.events.codes("item")[1])
        held = _held_out_users(data.events, data.training.prior_users, data.training.seed, n_items)
        self._heldout = None
        if not held.size:
            return
        held_events = data.events.user_mask(held)
        self._heldout = data.events.select(held_events)
        data.epoch_scale = len(data.events) / max(len(data.events) - len(self._heldout), 1)
        data.events = data.events.select(~held_events)
        if data.valid is not None:
            data.valid = data.valid.select(~data.valid.user_mask(held))

    def fit(self, model: Composition, data: FitData) -> None:
        """Fit the fading weights on the held-out users (popularity of the training events), capped
        per history length by the validation users' next events; then keep the log-popularity of
        every event given to ``fit``."""
        heldout, self._heldout = self._heldout, None
        if heldout is None:
            return
        network = model.network
        item_ids = network.item_ids_
        assert item_ids is not None and data.valid is not None
        unknown = ~network.net.trained.numpy()
        table = model.attributes.table_
        fitting_pop = neutral_unknown(log_popularity(_distinct_users(item_ids, data.events)), unknown)
        fitting = PopularityPrior(item_ids, fitting_pop, (0,), (0.0,), unknown_items=unknown,
                                  segments=SegmentPrior.fit(table, data.events, item_ids))

        def own_log_pop(user_ids: np.ndarray) -> np.ndarray | None:
            segment_rows = fitting.segment_rows(table, user_ids)
            return None if segment_rows is None else fitting.for_users(segment_rows)

        histories = network.histories(heldout)
        codes = data.codes(histories.user_ids)

        def cosines(n: int) -> tuple[Any, ...]:
            rows = np.flatnonzero(histories.lengths > n)
            offsets = histories.offsets
            scores = _cosines(model, histories.prefixes(rows, n), None if codes is None else codes.rows(rows))
            given = [histories.item_idx[offsets[r] : offsets[r] + n] for r in rows]
            targets = [np.unique(histories.item_idx[offsets[r] + n : offsets[r + 1]]) for r in rows]
            return scores, given, targets, own_log_pop(histories.user_ids[rows])

        warm = _warm_folds(model, data, own_log_pop)
        weights, valid_recall = fit_prior_weights(cosines, fitting_pop, warm=warm)
        logger.info("popularity prior: weights %s at %s events (held-out recall %s)", weights,
                    valid_recall["steps"], valid_recall)
        self.prior_ = PopularityPrior(
            item_ids, neutral_unknown(log_popularity(_distinct_users(item_ids, data.counted)), unknown),
            tuple(valid_recall["steps"]), weights, valid_recall, unknown_items=unknown,
            segments=SegmentPrior.fit(table, data.counted, item_ids))

    # ----------------------------------------------------------------------------- serving
    def segments(self, model: Composition, users: Any) -> list[np.ndarray] | None:
        """Each user's segment rows (their attributes from the model's table); ``None`` when
        everyone gets the overall popularity."""
        return self.prior_.segment_rows(model.attributes.table_, users) if self.prior_ is not None else None

    def score_term(self, model: Composition, histories: Histories, device: torch.device) -> ScoreTerm | None:
        """``weight(n) · log-popularity`` (each user's segments' with a segment-aware prior)."""
        prior = self.prior_
        if prior is None:
            return None
        weights = torch.from_numpy(prior.weight(histories.lengths)).float().to(device)
        log_pop = torch.from_numpy(prior.log_popularity.astype(np.float32)).to(device)
        segment_rows = self.segments(model, histories.user_ids)

        def term(rows: np.ndarray) -> torch.Tensor:
            own = log_pop if segment_rows is None else torch.from_numpy(
                prior.for_users([segment_rows[r] for r in rows])).to(device)
            return weights[torch.from_numpy(rows).to(device)].unsqueeze(1) * own

        return term

    def check(self, model: Composition) -> None:
        ids = model.network.item_ids_
        if self.prior_ is not None and ids is not None and not self.prior_.item_ids.equals(ids):
            raise ValueError(f"the prior covers {len(self.prior_.item_ids)} items, not the network's "
                             f"{len(ids)}")

    # ----------------------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        prior = self.prior_
        assert prior is not None
        state: dict[str, Any] = {"item_ids": prior.item_ids, "prior": prior.to_dict(),
                                 "log_popularity": prior.log_popularity.astype(np.float32)}
        if prior.unknown_items is not None:
            state["unknown_items"] = prior.unknown_items.astype(np.uint8)
        if prior.segments is not None:
            state["segment_counts"] = sp.csr_matrix(prior.segments.counts, dtype=np.float32)
            state["segment_members"] = prior.segments.members.astype(np.float32)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """The prior :meth:`state` wrote (shapes checked)."""
        ids, saved = pd.Index(state["item_ids"], dtype=object), state["prior"]
        log_pop = np.asarray(state["log_popularity"])
        if log_pop.shape != (len(ids),):
            raise ValueError(f"the prior's popularity has shape {log_pop.shape}, not ({len(ids)},)")
        unknown = state.get("unknown_items")
        if unknown is not None and np.shape(unknown) != (len(ids),):
            raise ValueError(f"the prior's unknown items have shape {np.shape(unknown)}, not ({len(ids)},)")
        segments = None
        if saved.get("segments"):
            keys = pd.Index(saved["segments"]["keys"], dtype=object)
            counts = sp.csr_matrix(state["segment_counts"], dtype=np.float32)  # dense in older saves
            members = np.asarray(state["segment_members"])
            if counts.shape != (len(keys), len(ids)) or members.shape != (len(keys),):
                raise ValueError(f"the prior's segment counts have shapes {counts.shape} / {members.shape}, "
                                 f"not ({len(keys)}, {len(ids)}) / ({len(keys)},)")
            edges = {str(c): [float(e) for e in v] for c, v in saved["segments"]["edges"].items()}
            segments = SegmentPrior(SegmentRule(edges), keys, counts, members,
                                    int(saved["segments"]["n_users"]))
        unknown = None if unknown is None else np.asarray(unknown).astype(bool)
        self.prior_ = PopularityPrior(ids, log_pop, tuple(int(n) for n in saved["steps"]),
                                      tuple(float(w) for w in saved["weights"]), saved.get("valid"),
                                      segments=segments, unknown_items=unknown)


def _held_out_users(events: Interactions, prior_users: int, seed: int, n_items: int) -> np.ndarray:
    """``prior_users`` users (at most a tenth of the users with 3+ events, and fewer on a catalog
    so large that their ``(users × items)`` scores would not fit :data:`HELD_OUT_CELLS`), seeded;
    none when fewer than :data:`MIN_HELD_OUT` would be left."""
    if not prior_users:
        return np.empty(0, dtype=object)
    codes, users = events.codes("user")
    counts = np.bincount(codes, minlength=len(users))
    eligible = np.sort(np.asarray(users, dtype=object)[counts >= 3].astype(str))
    n = min(prior_users, int((counts > 0).sum()) // 10, max(MIN_HELD_OUT, HELD_OUT_CELLS // max(n_items, 1)))
    if n < MIN_HELD_OUT:
        return np.empty(0, dtype=object)
    rng = np.random.default_rng([seed, 7])
    return eligible[np.sort(rng.choice(len(eligible), min(n, len(eligible)), replace=False))]


def _distinct_users(item_ids: pd.Index, events: Interactions) -> np.ndarray:
    """Distinct users per item of the table (events on other items dropped)."""
    rows = events.positions("item", item_ids)
    users = events.codes("user")[0]
    return distinct_user_counts(users[rows >= 0], rows[rows >= 0], len(item_ids))


@torch.no_grad()
def _cosines(model: Composition, histories: Histories, codes: UserCodes | None) -> np.ndarray:
    """Cosines ``(users, items)`` of the users' vectors and every model item's, with what the other
    fitted parts add (0 for users without signal): the scores the prior is fitted on top of."""
    network = model.network
    net, cpu = network.net, torch.device("cpu")
    with placed(net, cpu):
        table = F.normalize(net.item_vectors()[0].float(), dim=-1)
        out = np.zeros((len(histories), net.n_items), dtype=np.float32)
        terms = model.score_terms(histories, cpu)
        for rows, final, _, _ in network.user_chunks(histories, cpu, table, codes,
                                                     chunk=full_table_chunk(net.n_items)):
            out[rows] = (F.normalize(final.float(), dim=-1) @ table.T).numpy()
            for term in terms:
                out[rows] += term(rows).numpy()
    out[~has_signal(histories, codes)] = 0.0
    return out


def _warm_folds(model: Composition, data: FitData, own_log_pop: Callable[[np.ndarray], np.ndarray | None]
                ) -> Callable[[int], tuple[Any, ...]]:
    """``warm(n)`` gives the validation users whose training history is nearest ``n`` events long —
    their cosines, their history (masked), their validation items and (segment-aware) their own
    log-popularity."""
    network = model.network
    assert network.item_ids_ is not None and data.valid is not None
    users, targets = validation_sample(network.item_ids_, data.valid, seed=data.training.seed, salt=17,
                                       cap=5000)
    histories = network.histories(data.events, users)
    scores = _cosines(model, histories, data.codes(histories.user_ids))
    log_pops = own_log_pop(histories.user_ids)
    offsets = histories.offsets
    bucket = step_buckets(histories.lengths, PRIOR_STEPS)
    usable = (histories.lengths > 0) & np.array([len(t) > 0 for t in targets], dtype=bool)

    def warm(n: int) -> tuple[Any, ...]:
        picked = np.flatnonzero((bucket == PRIOR_STEPS.index(n)) & usable)
        return (scores[picked].copy(), [histories.item_idx[offsets[r] : offsets[r + 1]] for r in picked],
                [targets[r] for r in picked], None if log_pops is None else log_pops[picked])

    return warm
