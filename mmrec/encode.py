"""``encode_items``: run each modality's encoder over a catalog in batches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mmrec.data.catalog import Catalog
from mmrec.encoders import Encoder, Preset, create_encoder
from mmrec.errors import ConfigError, MediaError, SchemaError
from mmrec.item_vectors import EncodeReport, ItemIssue, ItemVectors
from mmrec.registry import Registry
from mmrec.utils.progress import progress

__all__ = ["encode_items", "DEFAULT_ENCODERS"]

logger = logging.getLogger(__name__)

DEFAULT_ENCODERS: dict[str, str] = {
    "text": "text-tfidf-svd",
    "image": "image-resnet18",
    "audio": "audio-mfcc-stats",
}

# Where each modality's raw values come from in a catalog (None = the catalog has no such column).
MODALITY_SOURCES: Registry[Callable[[Catalog], list[Any] | None]] = Registry("modality")
MODALITY_SOURCES.add("text", lambda c: c.texts() if c.schema.text else None)
MODALITY_SOURCES.add("image", lambda c: c.image_paths if c.schema.image else None)
MODALITY_SOURCES.add("audio", lambda c: c.audio_paths if c.schema.audio else None)

EncoderSpec = str | Preset | Encoder | None


def encode_items(
    catalog: Catalog,
    *,
    encoders: Mapping[str, EncoderSpec] | None = None,
    batch_size: int = 32,
    fusion_weights: Mapping[str, float] | None = None,
    device: Any = None,
    show_progress: bool | None = None,
) -> ItemVectors:
    """Encode every item of ``catalog`` with one encoder per modality.

    Parameters
    ----------
    catalog : Catalog
        The items.
    encoders : mapping of modality to preset name, Preset, Encoder or None, optional
        Overrides :data:`DEFAULT_ENCODERS`; ``None`` switches a modality off. Modalities the catalog
        has no column for are skipped unless named here explicitly (then it is an error).
    batch_size : int
        Items per encoder call.
    fusion_weights : mapping of modality to float, optional
        Weights of the fixed fused vector (default 1 each).
    device : str or torch.device, optional
        Where neural encoders run; CUDA when present by default.
    show_progress : bool, optional
        Progress bars; by default when the ``mmrec`` logger is at INFO.

    Returns
    -------
    ItemVectors
        Per-modality float32 matrices and masks, the fused vectors, and ``report``: a missing or
        corrupt file marks that item's modality as missing and is listed with its reason.
    """
    if not isinstance(catalog, Catalog):
        raise SchemaError(
            f"encode_items expects a mmrec.Catalog, got {type(catalog).__name__}; "
            "build one with mmrec.Catalog.from_path(...) or Catalog.from_frame(...)."
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
    chosen = _choose_encoders(catalog, encoders)
    ids = catalog.ids
    vectors: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    report = EncodeReport()
    described = {}
    for modality, spec in chosen.items():
        encoder = create_encoder(spec, device=device)
        if encoder.modality != modality:
            raise ConfigError(
                f"encoder for {modality!r} is a {encoder.modality!r} encoder ({type(encoder).__name__})."
            )
        raws = MODALITY_SOURCES.get(modality)(catalog)
        matrix, mask, issues = _encode_modality(encoder, ids, raws, batch_size=batch_size,
                                                show_progress=show_progress)
        vectors[modality], masks[modality] = matrix, mask
        report.issues.extend(issues)
        report.counts[modality] = {
            "encoded": int(mask.sum()),
            "absent": len(ids) - int(mask.sum()) - len(issues),
            "failed": len(issues),
        }
        described[modality] = {"preset": spec if isinstance(spec, str) else None,
                               **encoder.describe()}
        logger.info("encoded %s: %s", modality, report.counts[modality])
    if report.issues:
        first = "; ".join(f"{i.item_id} [{i.modality}]: {i.reason}" for i in report.issues[:3])
        more = f" (+{len(report.issues) - 3} more)" if len(report.issues) > 3 else ""
        logger.warning("encode_items: %d item modalities failed and are marked missing "
                       "(ItemVectors.report lists them): %s%s", len(report.issues), first, more)
    return ItemVectors(ids, vectors, masks, fusion_weights=fusion_weights, report=report,
                       encoders=described)


def _choose_encoders(
    catalog: Catalog, encoders: Mapping[str, EncoderSpec] | None
) -> dict[str, str | Preset | Encoder]:
    requested = dict(encoders or {})
    for modality in requested:
        MODALITY_SOURCES.get(modality)  # unknown modality → error with suggestions
    chosen: dict[str, str | Preset | Encoder] = {}
    for modality in MODALITY_SOURCES.names():
        spec = requested.get(modality, DEFAULT_ENCODERS.get(modality))
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


def _prepare(
    encoder: Encoder, item_id: str, raw: Any, issues: list[ItemIssue]
) -> Any | None:
    if raw is None:
        return None
    try:
        return encoder.prepare(raw)
    except MediaError as exc:
        issues.append(ItemIssue(item_id, encoder.modality, str(exc)))
        return None


def _encode_modality(
    encoder: Encoder,
    ids: np.ndarray,
    raws: Sequence[Any],
    *,
    batch_size: int,
    show_progress: bool | None,
) -> tuple[np.ndarray, np.ndarray, list[ItemIssue]]:
    n = len(ids)
    issues: list[ItemIssue] = []
    matrix = np.zeros((n, encoder.dim), dtype=np.float32)
    mask = np.zeros(n, dtype=bool)
    todo = [i for i in range(n) if raws[i] is not None]
    prepared_all: dict[int, Any] = {}
    if encoder.requires_fit:  # prepare everything first, fit, then encode from memory
        for i in progress(todo, desc=f"{encoder.modality}: reading", show=show_progress):
            value = _prepare(encoder, ids[i], raws[i], issues)
            if value is not None:
                prepared_all[i] = value
        if prepared_all:
            encoder.fit(list(prepared_all.values()))
        todo = list(prepared_all)
    starts = range(0, len(todo), batch_size)
    for start in progress(starts, desc=f"{encoder.modality}: encoding", show=show_progress):
        positions, inputs = [], []
        for i in todo[start : start + batch_size]:
            value = prepared_all.pop(i) if encoder.requires_fit else _prepare(
                encoder, ids[i], raws[i], issues)
            if value is not None:
                positions.append(i)
                inputs.append(value)
        if not inputs:
            continue
        out = encoder.encode(inputs)
        finite = np.isfinite(out).all(axis=1)
        nonzero = np.any(out != 0, axis=1)
        for i in np.asarray(positions)[~finite]:
            issues.append(ItemIssue(ids[i], encoder.modality, "encoder produced NaN/inf"))
        for i in np.asarray(positions)[finite & ~nonzero]:
            issues.append(ItemIssue(ids[i], encoder.modality,
                                    "encoder found nothing to encode (all-zero vector, e.g. no known word)"))
        good = finite & nonzero
        keep = np.asarray(positions)[good]
        matrix[keep] = out[good]
        mask[keep] = True
    return matrix, mask, issues
