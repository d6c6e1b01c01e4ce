"""The local engine: ``encode_items`` in this process, DataLoader workers decoding files ahead of the
models, an optional content-hash cache, and matrices streamed into an ``out`` folder."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.data.catalog import Catalog
from mmrec.encode.batches import (
    MODALITY_SOURCES,
    EncoderSpec,
    choose_encoders,
    describe_encoder,
    encode_batch,
    fit_on_corpus,
    prepared_batches,
    record_modality,
    warn_issues,
)
from mmrec.encode.cache import EncodeCache, content_key
from mmrec.encode.engines import EncodeEngine
from mmrec.encoders import Encoder, Preset, create_encoder
from mmrec.errors import ConfigError
from mmrec.utils.arrays import RowSink, npy_path
from mmrec.utils.io import atomic_directory
from mmrec.utils.progress import progress
from mmrec.vectors.fixed_fusion import concat_fusion, fit_scalers
from mmrec.vectors.item_vectors import EncodeReport, ItemIssue, ItemVectors

__all__ = ["encode_local", "encode_modality"]


def encode_local(
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
    warn_issues(report, described)
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
    pending = _longest_first(encoder, raws, pending)
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


def _longest_first(encoder: Encoder, raws: Sequence[Any], pending: list[int]) -> list[int]:
    """``pending`` ordered longest first when the encoder sizes its raw values (batches of similar
    lengths pad less; every vector is still written to its own item), else unchanged."""
    sizes = [encoder.length_of(raws[i]) for i in pending]
    if not pending or any(size is None for size in sizes):
        return pending
    order = np.argsort(-np.asarray(sizes, dtype=np.int64), kind="stable")
    return [pending[i] for i in order]


def _raw_key(cache: EncodeCache, raw: Any) -> str | None:
    """Content key of a raw catalog value: file bytes for paths, the value itself otherwise."""
    return cache.file_key(raw) if isinstance(raw, Path) else content_key(raw)

