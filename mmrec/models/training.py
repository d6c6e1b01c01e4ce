"""The training loop: every position of every history window is a next-item target in one pass.

Implicit feedback trains with a full softmax over the item table (small catalogs) or a sampled
softmax over the batch's positives plus shared uniform negatives with the log-q correction; explicit
ratings also train the rating-regression head (MSE). Deterministic for a seed, resumable from the
last epoch's checkpoint, early-stopped on a validation metric.

Under ``torchrun`` (a ``torch.distributed`` process group initialised) the same loop runs data
parallel: every process takes a strided share of each global batch, the model is wrapped in
DistributedDataParallel (gradients averaged), the sampled softmax's candidates are the whole global
batch's positives (gathered across processes) plus the same shared negatives, and every loss is
normalised by the global batch — so N processes take the steps one process would, up to float
summation order. Rank 0 validates, checkpoints and decides when to stop.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrec.errors import ConfigError
from mmrec.models.checkpoint import load_checkpoint, restore_optimizer, save_checkpoint
from mmrec.models.config import TrainConfig
from mmrec.models.distributed import Collective, ProcessGroup, SingleProcess, shard_of_batch
from mmrec.models.histories import Histories, SequenceBatch
from mmrec.models.losses import rating_mse, sampled_softmax_loss, weighted_cross_entropy
from mmrec.models.network import TwoTowerNet
from mmrec.models.optimizers import SPARSE_ID_ITEMS, TrainOptimizer, clip_grad_norm
from mmrec.models.schedules import LR_FACTORS, RunClock
from mmrec.models.user_features import UserCodes
from mmrec.utils.config import config_to_dict
from mmrec.utils.progress import progress

__all__ = ["TrainingHistory", "train", "uses_full_softmax"]

logger = logging.getLogger(__name__)


@dataclass
class TrainingHistory:
    """What happened per epoch: loss, validation metric, seconds, targets per second.

    ``best_epoch`` 0 means no epoch beat the untrained model on validation (its weights are kept).
    """

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_metric: float = -math.inf
    stopped_early: bool = False
    out_of_time: bool = False  # ended by ``TrainConfig.time_budget_s``

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "best_epoch": self.best_epoch, "best_metric": self.best_metric,
                "stopped_early": self.stopped_early, "out_of_time": self.out_of_time}


def uses_full_softmax(config: TrainConfig, n_items: int) -> bool:
    return config.loss == "full" or (config.loss == "auto" and n_items <= config.full_softmax_items)


def _autocast(device: torch.device, config: TrainConfig) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for a training step: on CUDA with ``amp`` (bfloat16 where supported, else
    float16), on CPU with ``cpu_amp`` (bfloat16: matrix products on AMX / AVX512-BF16 units, 3.3x
    a float32 product of ML-1M's full softmax on this project's 2-core machine; softmax and
    losses stay float32 under autocast)."""
    if device.type == "cuda" and config.amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and config.cpu_amp:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _Batcher:
    """Step losses for one model and one configuration."""

    def __init__(self, net: TwoTowerNet, config: TrainConfig, popularity: np.ndarray,
                 device: torch.device, group: Collective | None = None,
                 user_codes: UserCodes | None = None, keep_ids: np.ndarray | None = None) -> None:
        self.net, self.config, self.device = net, config, device
        # attribute codes of every history's user (rows of the Histories), when the model reads them
        self.codes = (user_codes.tensors(device) + (torch.from_numpy(user_codes.known).to(device),)
                      if user_codes is not None and net.attributes is not None else None)
        self.group = group or SingleProcess()
        self.full = uses_full_softmax(config, net.n_items)
        share = popularity / max(popularity.sum(), 1.0)
        self.item_share = torch.as_tensor(share, dtype=torch.float32, device=device)
        # only items with training events compete: cold items are not known to exist yet
        self.trained_rows = torch.nonzero(net.trained.to(device)).squeeze(1)
        self.cold = None if bool(net.trained.all()) else ~net.trained.to(device)
        # id dropout (DropoutNet, Volkovs et al. 2017): some candidates are fused from content alone
        # at every step, so the content-only path — the one cold items take — is trained to land
        # where the users' vectors expect items, not in an untrained corner every user is near.
        # Only candidates: histories keep their ids (dropping those too cost 0.046 Recall@20 on
        # ML-1M at a rate of 0.5, and 0.016 at 0.2 on ML-100K, for no better cold ranking)
        has_both = net.id_embedding is not None and bool(net.modalities)
        self.id_dropout = config.id_dropout if has_both else 0.0
        # items whose content-only path is never trained directly: held back to fit the cold blend on
        self.keep_ids = (None if keep_ids is None
                         else torch.as_tensor(keep_ids, dtype=torch.bool, device=device))

    def _with_dropped_ids(self, vectors: torch.Tensor, rows: torch.Tensor | None,
                          generator: torch.Generator) -> torch.Tensor:
        """``vectors`` (of table ``rows``, default all) with a random ``id_dropout`` share of
        them replaced by their content-only fusion."""
        if self.id_dropout <= 0:
            return vectors
        drop = torch.rand(len(vectors), generator=generator, device=self.device) < self.id_dropout
        if self.keep_ids is not None:
            drop &= ~self.keep_ids[rows if rows is not None else slice(None)]
        picked = torch.nonzero(drop).squeeze(1)
        source = picked if rows is None else rows[picked]
        alone, _ = self.net.item_vectors(source, content_only=True)
        return vectors.index_copy(0, picked, alone.to(vectors.dtype))

    def loss(self, batch: SequenceBatch, generator: torch.Generator,
             normalizer: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """This process's share of the step loss and the global batch's number of targets.

        The loss is a weighted sum over the targets divided by the global batch's (weight sum,
        targets, rated targets), or by ``normalizer`` (the epoch's mean per batch) when given."""
        net, config = self.net, self.config
        inputs, targets = batch.shifted()
        keep = targets.mask & inputs.mask & (targets.weights > 0)
        rated = keep & (targets.rated > 0)
        target_rows = targets.items[keep] - 1
        weights = targets.weights[keep]
        # global normalisers (weight sum, targets, rated targets) over the number of processes
        local = torch.stack([weights.float().sum(), keep.sum().float(), rated.sum().float()])
        totals = self.group.sum(local)
        per_process = (totals if normalizer is None else normalizer) / self.group.world_size
        n_targets = int(totals[1])
        if self.full:
            table, _ = net.item_vectors()
            candidates, candidate_rows, log_q = table, None, None
            positives = target_rows
            step_rows = None
        else:
            candidate_rows, positives, log_q = self._candidates(inputs, target_rows, generator)
            # a compact table: the fused vectors of the rows this step touches only, the history's
            # items renumbered into it (a table-sized scatter cost a zero fill, a copy and a dense
            # gradient of n_items x dim every step: 41 % of a step's CPU at 100k items)
            step_rows = torch.unique(torch.cat([inputs.items[inputs.mask] - 1, candidate_rows]))
            table, _ = net.item_vectors(step_rows)
            inputs = inputs.renumbered(step_rows)
            candidates = table[torch.searchsorted(step_rows, candidate_rows)]
        candidates = self._with_dropped_ids(candidates, candidate_rows, generator)
        profile = per_position = None
        if self.codes is not None:  # one attribute vector per history (a row, or a packed segment)
            categories, numbers, _ = self.codes
            profile = net.profile(categories[batch.users], numbers[batch.users])
            per_position = profile if inputs.segments is None else profile[inputs.owners()]
        states, x, _ = net.user_states(inputs, table, per_position)
        logits = net.logits(states[keep], candidates)
        if log_q is None:
            if self.cold is not None:
                logits = logits.masked_fill(self.cold, -torch.inf)
            loss = weighted_cross_entropy(logits, positives, weights, per_process[0])
        else:
            loss = sampled_softmax_loss(logits, positives, log_q, weights, per_process[0])
        if profile is not None and config.user_attribute_weight > 0:
            loss = loss + config.user_attribute_weight * self._attribute_loss(
                profile, inputs, keep, candidates, positives, log_q, weights, per_process[0])
        if net.has_candidate_scores:
            loss = loss + self._candidate_loss(x, inputs, keep, target_rows, table, step_rows, generator,
                                               per_process[1])
        if config.rating_weight > 0 and bool(rated.any()):
            rows = targets.items[rated] - 1  # positives: rows of the step's table
            vectors = table[rows if step_rows is None else torch.searchsorted(step_rows, rows)]
            predicted = net.predicted_rating(states[rated], vectors, rows)
            loss = loss + config.rating_weight * rating_mse(predicted, targets.values[rated],
                                                            normalizer=per_process[2])
        return loss, n_targets

    def _attribute_loss(self, profile: torch.Tensor, inputs: SequenceBatch, keep: torch.Tensor,
                        candidates: torch.Tensor, positives: torch.Tensor, log_q: torch.Tensor | None,
                        weights: torch.Tensor, normalizer: torch.Tensor) -> torch.Tensor:
        """The attribute vector alone scored against every target of its user's window: what a
        user with no event yet gets is trained (a demographic taste, in the items' space)."""
        assert self.codes is not None
        known = self.codes[2][inputs.users]
        owner_of_target = inputs.owners()[keep]
        use = known[owner_of_target]
        if not bool(use.any()):
            return profile.sum() * 0.0
        logits = self.net.logits(profile, candidates)[owner_of_target[use]]
        if log_q is None:
            if self.cold is not None:
                logits = logits.masked_fill(self.cold, -torch.inf)
            return weighted_cross_entropy(logits, positives[use], weights[use], normalizer)
        return sampled_softmax_loss(logits, positives[use], log_q, weights[use], normalizer)

    def _candidates(self, inputs: SequenceBatch, target_rows: torch.Tensor, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unique candidate rows (the global batch's positives + uniform negatives), each local
        target's position among them, and the log of each candidate's expected count in the set
        (log-q correction)."""
        n_trained = len(self.trained_rows)
        negatives = self.trained_rows[torch.randint(n_trained, (self.config.n_negatives,),
                                                    generator=generator, device=self.device)]
        batch_rows = self.group.gather_rows(target_rows)
        rows = torch.unique(torch.cat([batch_rows, negatives]))
        expected = len(batch_rows) * self.item_share[rows] + self.config.n_negatives / n_trained
        return rows, torch.searchsorted(rows, target_rows), torch.log(expected.clamp_min(1e-12))

    def _candidate_loss(self, x: torch.Tensor, inputs: SequenceBatch, keep: torch.Tensor,
                        target_rows: torch.Tensor, table: torch.Tensor, step_rows: torch.Tensor | None,
                        generator: torch.Generator, normalizer: torch.Tensor) -> torch.Tensor:
        """Sampled softmax of the candidate-aware scores (their cost grows with the candidates);
        its own negatives are fused here when the step's table is compact (``step_rows``)."""
        rows, positives, log_q = self._candidates(inputs, target_rows, generator)
        vectors = table[rows] if step_rows is None else self.net.item_vectors(rows)[0]
        logits = self.net.candidate_logits(x, inputs.mask, vectors)[keep]
        return sampled_softmax_loss(logits, positives, log_q, normalizer=normalizer)


class _StepLoss(torch.nn.Module):
    """One step's loss as a module's forward, the form DistributedDataParallel wraps."""

    def __init__(self, batcher: _Batcher) -> None:
        super().__init__()
        self.net = batcher.net
        self.batcher = batcher

    def forward(self, batch: SequenceBatch, generator: torch.Generator,
                normalizer: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        return self.batcher.loss(batch, generator, normalizer)


def _data_parallel(step: _StepLoss, group: Collective, device: torch.device) -> torch.nn.Module:
    if not isinstance(group, ProcessGroup):
        return step
    # content tables are constant buffers: nothing to broadcast per step; heads unused by a step
    # (no rated event on this process, say) must not stall the gradient all-reduce
    ddp = torch.nn.parallel.DistributedDataParallel
    no_buffer_sync = ({"forward_sync_buffers": False}  # torch >= 2.12 (syncs once, at wrapping)
                      if "forward_sync_buffers" in inspect.signature(ddp).parameters
                      else {"broadcast_buffers": False})
    return ddp(step, device_ids=[device.index] if device.type == "cuda" else None,
               find_unused_parameters=True, **no_buffer_sync)


@dataclass
class _Progress:
    """Where training stands: the history so far, the best weights, the next epoch, the epochs
    without a validation gain."""

    record: TrainingHistory
    best_state: dict[str, torch.Tensor]
    start_epoch: int = 0
    bad_epochs: int = 0


def _resume(net: TwoTowerNet, optimizer: torch.optim.Optimizer, config: TrainConfig,
            checkpoint_dir: str | Path | None) -> _Progress:
    """A fresh start, or the state of the checkpoint in ``checkpoint_dir`` (weights and optimizer
    restored in place)."""
    progress = _Progress(TrainingHistory(), {k: v.detach().clone() for k, v in net.state_dict().items()})
    saved = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if saved is None:
        return progress
    made_with = saved["progress"].get("model_config")
    if made_with != config_to_dict(net.config):
        raise ConfigError(
            f"the checkpoint in {checkpoint_dir} was made by a different model configuration "
            f"({made_with}); train into a new folder or delete that one.")
    net.load_state_dict(saved["model"])
    restore_optimizer(optimizer, saved["optimizer"], saved["optimizer_meta"])
    state = saved["progress"]
    record = TrainingHistory(state["epochs"], state["best_epoch"], state["best_metric"],
                             state["stopped_early"])
    logger.info("resuming from %s after epoch %d", checkpoint_dir, len(record.epochs))
    start = config.epochs if record.stopped_early else len(record.epochs)
    return _Progress(record, saved["best"], start, state["bad_epochs"])


def length_bucketed(order: np.ndarray, lengths: np.ndarray, batch_size: int, pool: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of windows of similar length: ``order`` (shuffled) cut into pools of ``pool``
    batches, each pool sorted by window length and cut into batches, the batches shuffled (a last
    partial one stays last). A batch is then padded to about its own windows' length, not to the
    longest window of a random sample; each batch is still a random draw within its pool."""
    size = batch_size * pool
    full: list[np.ndarray] = []
    partial: list[np.ndarray] = []
    for start in range(0, len(order), size):
        chunk = order[start : start + size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        for at in range(0, len(chunk), batch_size):
            (full if at + batch_size <= len(chunk) else partial).append(chunk[at : at + batch_size])
    return [full[i] for i in rng.permutation(len(full))] + partial


def mean_batch_totals(histories: Histories, spans: np.ndarray, batches: list[np.ndarray]) -> np.ndarray:
    """The mean over ``batches`` (lists of window indices into ``spans``) of a batch's target
    weight sum, targets and rated targets (float32, the step loss's normalisers)."""
    positive = histories.weights > 0
    per_event = np.stack([np.where(positive, histories.weights, 0.0), positive,
                          positive & (histories.rated > 0)], axis=1).astype(np.float64)
    cumulative = np.concatenate([np.zeros((1, 3)), np.cumsum(per_event, axis=0)])
    windows = np.concatenate(batches)
    first_target, stop = spans[windows, 0] + 1, spans[windows, 1]  # a window's first event is no target
    totals = (cumulative[stop] - cumulative[np.minimum(first_target, stop)]).sum(axis=0)
    return (totals / len(batches)).astype(np.float32)


def _run_epoch(step_loss: torch.nn.Module, optimizer: TrainOptimizer, net: TwoTowerNet,
               histories: Histories, spans: np.ndarray, *, epoch: int, config: TrainConfig,
               device: torch.device, group: Collective, show_progress: bool | None, clock: RunClock,
               epoch_scale: float = 1.0) -> tuple[float, int]:
    """One pass over the shuffled windows (``epoch_scale`` > 1: that many passes' worth of steps, the
    extra windows drawn without replacement); returns the summed loss (over all processes) and
    this process's number of targets."""
    net.train()
    rng = np.random.default_rng([config.seed, epoch])
    order = rng.permutation(len(spans))
    extra = int(round(len(spans) * (epoch_scale - 1.0)))
    while extra > 0:
        more = rng.permutation(len(spans))[: min(extra, len(spans))]
        order = rng.permutation(np.concatenate([order, more]))
        extra -= len(more)
    generator = torch.Generator(device=device).manual_seed(config.seed * 100_003 + epoch)
    total_loss, total_targets = 0.0, 0
    size, normalizer = config.batch_size, None
    packed = config.pack and net.packable  # short windows share rows
    cut = packed or (net.padding_invariant and config.length_buckets > 0)  # as wide as the longest window
    bucketed = cut and config.length_buckets > 1  # batches drawn by window length
    if bucketed:
        batches = length_bucketed(order, spans[:, 1] - spans[:, 0], size, config.length_buckets, rng)
    else:
        batches = [order[start : start + size] for start in range(0, len(order), size)]
    # a last batch too small to give every process a window is left to the next epoch's shuffle
    batches = [batch for batch in batches if len(batch) >= group.world_size]
    if bucketed and batches:
        # a batch of short windows holds few targets: divided by its own count they would weigh
        # more than the targets of a batch of long ones; the epoch's mean keeps every target equal
        normalizer = torch.from_numpy(mean_batch_totals(histories, spans, batches)).to(device)
    forked = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
    with forked, optimizer.sparse_gradients():  # the item tables' gradients sparse for these steps
        torch.manual_seed(config.seed * 100_003 + epoch + 1_000_003 * group.rank)  # dropout
        lr_factor = LR_FACTORS[config.lr_schedule]
        for step, windows in enumerate(progress(batches, desc=f"epoch {epoch + 1}/{config.epochs}",
                                                show=show_progress if group.is_main else False)):
            share = shard_of_batch(windows, group)
            chosen = spans[share]  # cut to the longest window when the tower ignores left padding
            width = (net.batch_width(chosen[:, 1] - chosen[:, 0], net.config.max_len + 1) if cut
                     else net.config.max_len + 1)
            batch = (histories.packed_batch(chosen, width) if packed
                     else histories.batch(chosen, width)).to(device)
            with _autocast(device, config):
                loss, n_targets = step_loss(batch, generator, normalizer)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch + 1}; "
                                         "lower the learning rate.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                clip_grad_norm(list(net.parameters()), config.grad_clip)
            if config.lr_schedule != "constant":  # a constant rate is never reset
                optimizer.scale_lr(lr_factor(clock.fraction(epoch, step, len(batches)), config.lr_floor))
            optimizer.step()
            # this process's share of the global mean loss, weighted by the global targets
            total_loss += float(loss.detach()) * n_targets / group.world_size
            total_targets += n_targets
    return float(group.sum(torch.tensor([total_loss], dtype=torch.float64))[0]), total_targets


def _checkpoint(checkpoint_dir: str | Path | None, net: TwoTowerNet, optimizer: torch.optim.Optimizer,
                state: _Progress, group: Collective) -> None:
    """Save the progress (rank 0 writes; every process waits until it is written)."""
    if checkpoint_dir is not None and group.is_main:
        save_checkpoint(checkpoint_dir, model=net.state_dict(), best=state.best_state, optimizer=optimizer,
                        progress={**state.record.to_dict(), "bad_epochs": state.bad_epochs,
                                  "model_config": config_to_dict(net.config)})
    group.barrier()  # no process reads a checkpoint rank 0 is still writing


def _over_budget(config: TrainConfig, elapsed: float, done: int) -> bool:
    """Whether another epoch would end past ``config.time_budget_s`` (elapsed this run plus the mean
    epoch so far, validation included; the first epoch always runs)."""
    if config.time_budget_s is None or done == 0:
        return False
    return elapsed + elapsed / done > config.time_budget_s


def _sparse_tables(config: TrainConfig, net: TwoTowerNet, group: Collective) -> bool:
    """Whether the per-item tables train with sparse gradients (``TrainConfig.sparse_ids``; auto:
    past SPARSE_ID_ITEMS items, without weight decay, in one process)."""
    if config.sparse_ids is not None:
        return bool(config.sparse_ids)
    n_items = net.id_embedding.num_embeddings if net.id_embedding is not None else 0
    return n_items > SPARSE_ID_ITEMS and config.weight_decay == 0 and group.world_size == 1


def train(
    net: TwoTowerNet,
    histories: Histories,
    *,
    config: TrainConfig,
    popularity: np.ndarray,
    validate: Callable[[], float] | None,
    device: torch.device,
    checkpoint_dir: str | Path | None = None,
    show_progress: bool | None = None,
    group: Collective | None = None,
    user_codes: UserCodes | None = None,
    keep_ids: np.ndarray | None = None,
    epoch_scale: float = 1.0,
) -> TrainingHistory:
    """Train ``net`` in place on ``histories``; on return it holds the best validated weights.

    ``epoch_scale`` stretches an epoch to that many passes' worth of steps: a caller that held
    some of its users out (to fit something on them) keeps the steps an epoch over all of them
    would take.

    ``group`` is the process group of a data-parallel run (default: this process alone); every
    process passes the same histories, configuration and checkpoint folder. ``user_codes`` are
    the attribute codes of the histories' users (rows of ``histories``), for a model that reads them;
    ``keep_ids`` marks items never scored content-only (id dropout skips them).
    """
    group = group or SingleProcess()
    spans = histories.windows(net.config.max_len)
    # fused AdamW: one kernel over every parameter (the foreach/for-loop AdamW walks the whole id
    # embedding ~10 times a step: 13.6x slower updates at 100k and 1M items); past SPARSE_ID_ITEMS
    # the per-item tables are updated lazily, the rows a step touches only (models/optimizers.py)
    optimizer = TrainOptimizer(net, lr=config.lr, weight_decay=config.weight_decay,
                               sparse=_sparse_tables(config, net, group))
    state = _resume(net, optimizer, config, checkpoint_dir)
    record = state.record

    def validated() -> float:
        assert validate is not None
        return group.from_main(validate() if group.is_main else 0.0)

    if state.start_epoch == 0 and validate is not None:
        # the untrained model is a candidate too: training must beat it on validation to count
        record.best_metric, record.best_epoch = validated(), 0
        logger.info("before training: valid %.4f", record.best_metric)
    batcher = _Batcher(net, config, popularity, device, group, user_codes, keep_ids)
    step_loss = _data_parallel(_StepLoss(batcher), group, device)
    clock = RunClock(config.epochs, config.time_budget_s, by_time=group.world_size == 1)
    began = clock.began
    for epoch in range(state.start_epoch, config.epochs):
        started = time.perf_counter()
        if _over_budget(config, started - began, epoch - state.start_epoch):
            logger.info("time budget: %d epoch(s) in %.0f s, no room for another", epoch, started - began)
            record.out_of_time = True
            break
        total_loss, total_targets = _run_epoch(step_loss, optimizer, net, histories, spans, epoch=epoch,
                                               config=config, device=device, group=group,
                                               show_progress=show_progress, epoch_scale=epoch_scale,
                                               clock=clock)
        seconds = time.perf_counter() - started
        metric = validated() if validate is not None else -float(total_loss / max(total_targets, 1))
        entry = {"epoch": epoch + 1, "loss": total_loss / max(total_targets, 1), "valid": metric,
                 "seconds": seconds, "targets": total_targets,
                 "targets_per_s": total_targets / max(seconds, 1e-9)}
        record.epochs.append(entry)
        if metric > record.best_metric:
            record.best_metric, record.best_epoch, state.bad_epochs = metric, epoch + 1, 0
            state.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            state.bad_epochs += 1
        logger.info("epoch %d: loss %.4f, valid %.4f, %.1f s (%.0f targets/s)", epoch + 1,
                    entry["loss"], metric, seconds, entry["targets_per_s"])
        record.stopped_early = state.bad_epochs > config.patience
        _checkpoint(checkpoint_dir, net, optimizer, state, group)
        if record.stopped_early:
            logger.info("early stop: no validation gain for %d epochs", state.bad_epochs)
            break
    if isinstance(step_loss, torch.nn.parallel.DistributedDataParallel):
        # free the DDP reducer (its hooks hold it in reference cycles) while the process group
        # lives: destroyed at interpreter exit, after the group, it aborted the process
        del step_loss
        gc.collect()
    net.load_state_dict(state.best_state)
    net.eval()
    return record
