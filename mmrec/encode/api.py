"""``encode_items``: run each modality's encoder over a catalog, on the engine asked for."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from mmrec.data.catalog import Catalog
from mmrec.encode.batches import EncoderSpec
from mmrec.encode.engines import ENCODE_ENGINES, EncodeEngine, resolve_engine
from mmrec.encode.local import encode_local
from mmrec.encode.ray import encode_with_ray
from mmrec.errors import ConfigError, SchemaError
from mmrec.vectors.item_vectors import ItemVectors

__all__ = ["encode_items", "ENCODE_ENGINES"]

# The engine table: name → runner(catalog, encoders, *, engine, **encode_items options) -> ItemVectors.
ENCODE_ENGINES.add("local", encode_local)
ENCODE_ENGINES.add("ray", encode_with_ray)  # Ray itself is imported only when this engine runs


def encode_items(
    catalog: Catalog | pd.DataFrame | str | os.PathLike[str],
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
    catalog : Catalog, DataFrame or path
        The items (a DataFrame is read with :meth:`Catalog.from_frame`, schema inferred), or a
        catalog file (read with :meth:`Catalog.from_path`; the ``"ray"`` engine
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
        Content-hash cache (:class:`mmrec.encode.cache.EncodeCache`): items whose content, encoder
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
        :class:`mmrec.encode.engines.EncodeEngine`; same vectors and report as ``"local"``; with
        ``out`` the result is a folder of Parquet shards opened lazily). ``cache_dir`` and
        ``num_workers`` are local-engine options.

    Returns
    -------
    ItemVectors
        Per-modality float32 matrices and masks, the fused vectors, and ``report``: a missing or
        corrupt file marks that item's modality as missing and is listed with its reason.
    """
    if isinstance(catalog, pd.DataFrame):
        catalog = Catalog.from_frame(catalog)  # the schema inferred from the column names
    if not isinstance(catalog, Catalog | str | os.PathLike):
        raise SchemaError(
            f"encode_items expects a mmrec.Catalog, a DataFrame or a catalog file, got "
            f"{type(catalog).__name__}; build one with mmrec.Catalog.from_path(...) or "
            "Catalog.from_frame(...)."
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

