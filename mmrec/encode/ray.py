"""The ``"ray"`` encode engine: Ray Data reads the catalog and runs each modality's encoder in a pool
of actors over batches; the driver streams the results into (Parquet-sharded) ItemVectors.

Every actor encodes through :func:`mmrec.encode.batches.encode_chunk` (the local engine's per-batch step),
so vectors and the report are those of ``engine="local"``. Encoders fitted on the corpus (TF-IDF)
are fitted once on the driver, exactly as the local engine fits them, and shipped to the actors
through the object store; other encoders are built inside each actor from their preset (weights
read from local paths there) or shipped as they are when an encoder object was passed.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

import mmrec.errors as errors
from mmrec.data.catalog import URL_SCHEME, Catalog, CatalogSchema
from mmrec.encode.batches import (
    MODALITY_SOURCES,
    EncoderSpec,
    choose_encoders,
    describe_encoder,
    encode_chunk,
    fit_on_corpus,
    record_modality,
    warn_issues,
)
from mmrec.encode.engines import EncodeEngine
from mmrec.encoders import Encoder, Preset, create_encoder
from mmrec.errors import ConfigError, MissingDependencyError, MmrecError, SchemaError
from mmrec.registry import Registry
from mmrec.utils.io import atomic_directory
from mmrec.vectors.fixed_fusion import fit_scalers
from mmrec.vectors.item_vectors import EncodeReport, ItemIssue, ItemVectors
from mmrec.vectors.shards import (
    ID_COLUMN,
    ShardedColumn,
    ShardWriter,
    column_matrix,
    vector_array,
    write_sharded_artifact,
)

__all__ = ["ActorOptions", "actor_device", "actor_options", "encode_with_ray", "ray_catalog"]

logger = logging.getLogger(__name__)

ID_OUT = "_mmrec_id"  # validated ids, written by every modality's actors
ERROR_OUT = "_mmrec_error"  # the error an actor raised on the batch, as JSON (null when none)
SCHEMA_SAMPLE_ROWS = 10_000  # rows a schema is inferred from when a catalog file is read by Ray
# CPUs a read task asks for: kept small and left free by the actors' default share, so that reading
# is never starved by actor pools holding every CPU (which would stall the pipeline).
READ_CPUS = 0.25


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"engine='ray' needs Ray Data ({exc}); pip install \"mmrec[ray]\"."
        ) from exc
    return ray


# ----------------------------------------------------------------------------- reading the catalog
def _read_csv(ray: Any, path: str, sep: str) -> Any:
    """Every column as text, blanks as missing: what :func:`mmrec.data.readers.read_table` does."""
    import pyarrow.csv as pcsv
    import pyarrow.fs as pfs

    filesystem, where = pfs.FileSystem.from_uri(path) if URL_SCHEME.match(path) else (
        pfs.LocalFileSystem(), os.path.abspath(path))
    with filesystem.open_input_stream(where) as stream:
        header = pcsv.open_csv(stream, parse_options=pcsv.ParseOptions(delimiter=sep)).schema.names
    import pyarrow as pa

    convert = pcsv.ConvertOptions(column_types={c: pa.string() for c in header}, null_values=[""],
                                  strings_can_be_null=True, quoted_strings_can_be_null=True)
    return ray.data.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=sep), convert_options=convert,
                             num_cpus=READ_CPUS)


# extension → reader(ray, path) -> Dataset
RAY_READERS: Registry[Any] = Registry("table format")
RAY_READERS.add(".parquet", lambda ray, path: ray.data.read_parquet(path, num_cpus=READ_CPUS), ".pq")
RAY_READERS.add(".csv", lambda ray, path: _read_csv(ray, path, ","))
RAY_READERS.add(".tsv", lambda ray, path: _read_csv(ray, path, "\t"), ".tab")
RAY_READERS.add(".jsonl", lambda ray, path: ray.data.read_json(path, lines=True, num_cpus=READ_CPUS),
                ".ndjson")


def ray_catalog(
    catalog: Catalog | str | os.PathLike[str], *, schema: CatalogSchema | None = None,
    blocks: int = 8,
) -> tuple[Any, Catalog, str | Path]:
    """A Ray Dataset of the catalog's id and media/text columns, a small validated sample of it
    (a whole in-memory ``Catalog``, or the first rows of a file) and the base folder of media paths.
    """
    ray = _ray()
    if isinstance(catalog, Catalog):
        import pyarrow as pa

        schema = _encoding_schema(catalog.schema)
        frame = catalog.frame
        table = pa.table({c: pa.array(frame[c].tolist(), type=pa.string()) for c in schema.columns})
        step = max(1, -(-len(frame) // blocks))
        parts = [table.slice(s, step) for s in range(0, len(frame), step)]
        return ray.data.from_arrow(parts), catalog, catalog.base_dir
    path = os.fspath(catalog)
    suffix = Path(path).suffix.lower()
    if suffix not in RAY_READERS:
        raise SchemaError(f"engine='ray' cannot read {path!r}: unknown extension {suffix!r}; use one of "
                          f"{', '.join(RAY_READERS.names())}.")
    remote = bool(URL_SCHEME.match(path))
    if not remote and not Path(path).is_file():
        raise SchemaError(f"table file {path!r} does not exist (cwd: {os.getcwd()}).")
    dataset = RAY_READERS.get(suffix)(ray, path)
    base_dir: str | Path = path.rsplit("/", 1)[0] if remote else Path(path).resolve().parent
    head = dataset.limit(SCHEMA_SAMPLE_ROWS).to_pandas()
    sample = Catalog.from_frame(head, schema=schema, base_dir=None if remote else base_dir)
    encoding = _encoding_schema(sample.schema)
    # Materialised before the actor pools start (the table of ids, texts and paths is small next to
    # the media): read tasks then never wait for CPUs the pools hold.
    return dataset.select_columns(encoding.columns, num_cpus=READ_CPUS).materialize(), sample, base_dir


def _encoding_schema(schema: CatalogSchema) -> CatalogSchema:
    """The columns encoding reads: id, text, image, audio (no attributes)."""
    return dataclasses.replace(schema, categorical=(), numeric=())


def _validated(batch: Any, schema: CatalogSchema, base_dir: str | Path, first_row: int | None) -> Catalog:
    """A batch of raw rows as a Catalog (the same validation as the local path)."""
    frame = batch.to_pandas()
    try:
        catalog = Catalog.from_frame(frame, schema=schema, base_dir=base_dir if isinstance(base_dir, Path)
                                     else None)
    except SchemaError as exc:
        where = f" (rows counted from {first_row})" if first_row is not None else " (rows of one batch)"
        raise SchemaError(f"{exc}{where}") from None
    if not isinstance(base_dir, Path):  # an object-store prefix: media paths stay URIs
        catalog.base_dir = Path(base_dir)
    return catalog


# ----------------------------------------------------------------------------- the actors
class ModalityWorker:
    """A Ray Data callable class: encodes one modality of each batch with its own encoder copy.

    An error (here or in the encoder) does not go through Ray's exception wrapping, which loses the
    original exception: the batch comes back with zero vectors and the error, as JSON, in
    ``ERROR_OUT``, which later modalities pass on and :func:`_stream` raises on the driver."""

    def __init__(self, modality: str, encoder: Any, schema: CatalogSchema, base_dir: str | Path,
                 device: Any, threads: int, dim: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.modality, self.dim, self.schema, self.base_dir = modality, dim, schema, base_dir
        self.encoder: Encoder | None = None
        self.error: BaseException | None = None
        try:
            self.encoder = _actor_encoder(encoder, device)
        except Exception as exc:  # reported with the first batch (Ray would only say the actor died)
            self.error = exc

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        m, n = self.modality, batch.num_rows
        previous = batch.column(ERROR_OUT) if ERROR_OUT in batch.column_names else None
        error: str | None = None
        matrix, mask, reasons = np.zeros((n, self.dim), np.float32), np.zeros(n, bool), [None] * n
        ids: list[Any] = [None] * n
        if previous is not None and previous.null_count < n:
            pass  # an earlier modality failed on this batch: its error travels on
        elif self.error is not None or self.encoder is None:
            error = _error_record(self.error, m, "building the encoder", batch, self.schema)
        else:
            try:
                catalog = _validated(batch, self.schema, self.base_dir, None)
                matrix, mask, issues = encode_chunk(self.encoder, catalog.ids,
                                                    MODALITY_SOURCES.get(m)(catalog))
                ids = list(catalog.ids)
                for position, issue in issues:
                    reasons[position] = issue.reason
            except Exception as exc:
                what = f"encoding with {type(self.encoder).__name__}"
                error = _error_record(exc, m, what, batch, self.schema)
        columns = {
            ID_OUT: pa.array(ids, type=pa.string()),
            f"vectors.{m}": vector_array(matrix),
            f"mask.{m}": pa.array(mask, type=pa.bool_()),
            f"issue.{m}": pa.array(reasons, type=pa.string()),
            ERROR_OUT: previous if error is None and previous is not None
            else pa.array([error] * n, type=pa.string()),
        }
        for name, column in columns.items():
            if name in batch.column_names:
                batch = batch.drop_columns([name])
            batch = batch.append_column(name, column)
        return batch


def actor_device(device: Any, gpu_ids: list[Any]) -> Any:
    """The device an actor builds a preset on: ``device`` when given, else ``"cuda"`` when Ray
    assigned the actor a GPU (Ray sets CUDA_VISIBLE_DEVICES to it), else ``"cpu"``."""
    if device is not None:
        return device
    return "cuda" if gpu_ids else "cpu"


def _actor_encoder(payload: Any, device: Any) -> Encoder:
    """The actor's encoder: an object ref (fitted or passed encoder) fetched, a preset built."""
    ray = _ray()
    if isinstance(payload, ray.ObjectRef):
        payload = ray.get(payload)
    if isinstance(payload, Encoder):
        return payload
    return create_encoder(payload, device=actor_device(device, ray.get_gpu_ids()))


def _mmrec_cause(exc: BaseException) -> MmrecError | None:
    """The mmrec error an exception is, or wraps (Ray wraps errors of deserialising an object ref)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cause = todo.pop()
        if cause is None or id(cause) in seen:
            continue
        seen.add(id(cause))
        if isinstance(cause, MmrecError):
            return cause
        todo += [getattr(cause, "client_exc", None), getattr(cause, "cause", None), cause.__cause__,
                 cause.__context__]
    return None


def _error_record(exc: BaseException | None, modality: str, what: str, batch: Any,
                  schema: CatalogSchema) -> str:
    """The error as JSON (data, never pickled): an mmrec error by its class in :mod:`mmrec.errors`
    and its message; anything else (a bug) by its type and text, with a message naming the
    modality, the batch's items and the actor's traceback."""
    import traceback

    mmrec_error = _mmrec_cause(exc) if exc is not None else None
    if mmrec_error is not None:
        known = next(c for c in type(mmrec_error).__mro__ if c.__module__ == errors.__name__)
        return json.dumps({"mmrec_error": known.__name__, "message": str(mmrec_error)})
    ids = batch.column(schema.id).to_pylist() if schema.id in batch.column_names else []
    shown = ", ".join(map(str, ids[:3])) + (f", ..., {ids[-1]}" if len(ids) > 3 else "")
    trace = "".join(traceback.format_exception(exc)) if exc is not None else ""
    message = (f"engine='ray': {what} for {modality!r} failed on a batch of {len(ids)} items ({shown}): "
               f"{type(exc).__name__}: {exc}\nactor traceback:\n{trace}")
    return json.dumps({"cause": type(exc).__name__, "cause_message": str(exc), "message": message})


def _raise_recorded(record: str) -> None:
    """Raise the error :func:`_error_record` wrote: an mmrec error as itself; a bug as a
    RuntimeError with the message, its cause rebuilt when it is a builtin exception type."""
    data = json.loads(record)
    if "mmrec_error" in data:
        kind = getattr(errors, data["mmrec_error"], MmrecError)
        raise kind(data["message"]) from None
    builtin = getattr(builtins, data["cause"], None)
    cause = (builtin(data["cause_message"]) if isinstance(builtin, type) and issubclass(builtin, Exception)
             else RuntimeError(f"{data['cause']}: {data['cause_message']}"))
    raise RuntimeError(data["message"]) from cause


# ----------------------------------------------------------------------------- the driver
def _ensure_ray(engine: EncodeEngine) -> bool:
    """Connect to / start Ray; True when this call started it (and must shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    if engine.address is None:
        ray.init(num_cpus=engine.num_cpus or os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=engine.address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    return True


def _encoder_payload(
    ray: Any, spec: str | Preset | Encoder, modality: str, catalog: Catalog | None, dataset: Any,
    schema: CatalogSchema, base_dir: str | Path, *, batch_size: int, device: Any,
    show_progress: bool | None,
) -> tuple[Any, Encoder | None]:
    """What each actor builds its encoder from: the preset itself, or (for encoder objects and
    encoders fitted on the corpus, fitted here like the local engine fits them) an object ref."""
    encoder = spec if isinstance(spec, Encoder) else None
    if encoder is None:
        encoder = create_encoder(spec, device=device or "cpu")
        if not encoder.requires_fit:
            return spec, encoder
    if encoder.requires_fit:
        if catalog is not None and len(catalog) > 0 and dataset is None:
            ids, raws = catalog.ids, MODALITY_SOURCES.get(modality)(catalog)
        else:
            ids, raws = _all_raws(dataset, schema, base_dir, modality)
        fit_on_corpus(encoder, ids, raws, batch_size=batch_size, num_workers=0,
                      show_progress=show_progress, issues=[])
    return ray.put(encoder), encoder


def _all_raws(dataset: Any, schema: CatalogSchema, base_dir: str | Path, modality: str
              ) -> tuple[np.ndarray, list[Any]]:
    """Ids and one modality's raw values of a whole Ray-read catalog, read on the driver."""
    ids: list[Any] = []
    raws: list[Any] = []
    for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=4096):
        part = _validated(batch, schema, base_dir, len(ids))
        ids.extend(part.ids.tolist())
        raws.extend(MODALITY_SOURCES.get(modality)(part))
    return np.asarray(ids, dtype=object), raws


@dataclasses.dataclass(frozen=True)
class ActorOptions:
    """Ray resources of each actor of one modality's pool, and the pool's size."""

    num_cpus: float
    num_gpus: float
    concurrency: int


def _floor(value: float) -> float:
    """Down to Ray's resource granularity (1e-4), so that shares never add up to more than there is."""
    return math.floor(value * 10_000 + 1e-6) / 10_000


def actor_options(cluster: Mapping[str, float], engine: EncodeEngine, pretrained: Mapping[str, bool],
                  device: Any = None) -> dict[str, ActorOptions]:
    """Actor options of each modality (``pretrained``: modality → built from a preset in the actor).

    CPUs: ``cpus_per_worker``, else the cluster's CPUs less the read tasks' share, split over all
    actors. GPUs go only to actors that build a pretrained preset, and none when ``device`` is the
    CPU: ``gpus_per_worker``, else the cluster's GPUs split over those actors, at most 1 each.
    Corpus-fitted encoders (TF-IDF) and encoder objects passed as they are never get a GPU.
    """
    actors = engine.workers * len(pretrained)
    cpus = engine.cpus_per_worker
    if cpus is None:
        cpus = max(0.01, (float(cluster.get("CPU", 1)) - READ_CPUS) / actors)
    networks = [m for m, is_pretrained in pretrained.items() if is_pretrained]
    on_cpu = device is not None and str(device).startswith("cpu")
    gpus = engine.gpus_per_worker
    if gpus is None:
        total = float(cluster.get("GPU", 0))
        gpus = min(1.0, total / (engine.workers * len(networks))) if networks and total else 0.0
    return {m: ActorOptions(_floor(cpus), _floor(gpus) if m in networks and not on_cpu else 0.0,
                            engine.workers) for m in pretrained}


def _stream(dataset: Any) -> Iterator[Any]:
    """The encoded batches in catalog order; an error raised in an actor is raised here: an mmrec
    error as itself, anything else as a RuntimeError naming the modality and items, cause chained."""
    for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        recorded = batch.column(ERROR_OUT).drop_null()
        if len(recorded):
            _raise_recorded(recorded[0].as_py())
        yield batch


def encode_with_ray(
    catalog: Catalog | str | os.PathLike[str],
    encoders: Mapping[str, EncoderSpec] | None,
    *,
    engine: EncodeEngine,
    batch_size: int,
    fusion_weights: Mapping[str, float] | None,
    device: Any,
    num_workers: int | None,
    cache_dir: str | os.PathLike[str] | None,
    out: str | os.PathLike[str] | None,
    show_progress: bool | None,
) -> ItemVectors:
    """The ``"ray"`` engine of :func:`mmrec.encode_items` (see there)."""
    if cache_dir is not None:
        raise ConfigError("cache_dir is a local-engine option; engine='ray' re-encodes every item "
                          "(drop cache_dir, or use engine='local').")
    if num_workers is not None:
        raise ConfigError("num_workers is a local-engine option; with engine='ray' set "
                          "EncodeEngine(workers=...) (actors per modality).")
    ray = _ray()
    started = _ensure_ray(engine)
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = bool(show_progress)
        dataset, sample, base_dir = ray_catalog(catalog)
        schema = _encoding_schema(sample.schema)
        chosen = choose_encoders(sample, encoders)
        in_memory = isinstance(catalog, Catalog)
        payloads: dict[str, Any] = {}
        described: dict[str, Any] = {}
        dims: dict[str, int] = {}
        for modality, spec in chosen.items():
            payload, encoder = _encoder_payload(
                ray, spec, modality, catalog if in_memory else None, None if in_memory else dataset,
                schema, base_dir, batch_size=batch_size, device=device, show_progress=show_progress)
            if encoder.modality != modality:
                raise ConfigError(f"encoder for {modality!r} is a {encoder.modality!r} encoder "
                                  f"({type(encoder).__name__}).")
            payloads[modality], dims[modality] = payload, encoder.dim
            described[modality] = describe_encoder(spec, encoder)
        shares = actor_options(ray.cluster_resources(), engine,
                               {m: isinstance(p, str | Preset) for m, p in payloads.items()}, device)
        for modality, payload in payloads.items():
            share = shares[modality]
            dataset = dataset.map_batches(
                ModalityWorker, batch_size=batch_size, batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=share.concurrency),
                num_cpus=share.num_cpus, num_gpus=share.num_gpus, zero_copy_batch=False,
                fn_constructor_kwargs={"modality": modality, "encoder": payload, "schema": schema,
                                       "base_dir": base_dir, "device": device,
                                       "threads": max(1, int(share.num_cpus)), "dim": dims[modality]})
        logger.info("ray engine: actor options per modality %s", shares)
        if out is None:
            return _collect(_stream(dataset), dims, fusion_weights, described)
        with atomic_directory(out) as folder:
            _write_shards(_stream(dataset), folder, dims, fusion_weights, described, engine)
        return ItemVectors.load(out)
    finally:
        if started:
            ray.shutdown()


def _batch_arrays(batch: Any, dims: Mapping[str, int]) -> tuple[list[str], dict, dict, dict]:
    ids = batch.column(ID_OUT).to_pylist()
    vectors = {m: column_matrix(batch.column(f"vectors.{m}"), d) for m, d in dims.items()}
    masks = {m: batch.column(f"mask.{m}").to_numpy(zero_copy_only=False).astype(bool) for m in dims}
    reasons = {m: batch.column(f"issue.{m}").to_pylist() for m in dims}
    return ids, vectors, masks, reasons


class _Tally:
    """Ids, masks and issues of the streamed batches, in catalog order."""

    def __init__(self, dims: Mapping[str, int]) -> None:
        self.ids: list[str] = []
        self.masks: dict[str, list[np.ndarray]] = {m: [] for m in dims}
        self.issues: dict[str, list[ItemIssue]] = {m: [] for m in dims}

    def add(self, ids: list[str], masks: Mapping[str, np.ndarray], reasons: Mapping[str, list]) -> None:
        for modality, mask in masks.items():
            self.masks[modality].append(mask)
            self.issues[modality] += [ItemIssue(ids[j], modality, r)
                                      for j, r in enumerate(reasons[modality]) if r is not None]
        self.ids.extend(ids)

    def report(self, described: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], EncodeReport]:
        if len(set(self.ids)) != len(self.ids):
            raise SchemaError("catalog: item ids must be unique; the Ray-read table repeats some.")
        masks = {m: np.concatenate(parts) if parts else np.zeros(0, bool) for m, parts in self.masks.items()}
        report = EncodeReport()
        for modality, mask in masks.items():
            record_modality(report, modality, mask, self.issues[modality], 0)
        warn_issues(report, described)
        return masks, report


def _collect(batches: Iterator[Any], dims: Mapping[str, int], fusion_weights: Mapping[str, float] | None,
             described: Mapping[str, Any]) -> ItemVectors:
    tally = _Tally(dims)
    parts: dict[str, list[np.ndarray]] = {m: [] for m in dims}
    for batch in batches:
        ids, vectors, masks, reasons = _batch_arrays(batch, dims)
        tally.add(ids, masks, reasons)
        for m in dims:
            parts[m].append(vectors[m])
    masks, report = tally.report(described)
    vectors = {m: np.concatenate(p) if p else np.zeros((0, dims[m]), np.float32) for m, p in parts.items()}
    return ItemVectors(tally.ids, vectors, masks, fusion_weights=fusion_weights, report=report,
                       encoders=described)


def _write_shards(batches: Iterator[Any], folder: Path, dims: Mapping[str, int],
                  fusion_weights: Mapping[str, float] | None, described: Mapping[str, Any],
                  engine: EncodeEngine) -> None:
    """Stream the batches into raw shards, fit the fusion scalers over them (the same row blocks as
    the local engine), rewrite each shard with its fused column, then the manifest."""
    import pyarrow as pa

    tally = _Tally(dims)
    writer = ShardWriter(folder / ".raw", shard_rows=engine.shard_rows, row_group_rows=engine.row_group_rows)
    for batch in batches:
        ids, vectors, masks, reasons = _batch_arrays(batch, dims)
        tally.add(ids, masks, reasons)
        columns = {ID_COLUMN: pa.array(ids, type=pa.string())}
        for m in dims:
            columns[f"vectors.{m}"] = vector_array(vectors[m])
            columns[f"mask.{m}"] = pa.array(masks[m], type=pa.bool_())
        writer.write(pa.table(columns))
    raw = [folder / ".raw" / shard["file"] for shard in writer.close()]
    masks, report = tally.report(described)
    if not raw:
        raise SchemaError("catalog: the table has no rows.")
    scalers = fit_scalers({m: ShardedColumn(raw, f"vectors.{m}", d) for m, d in dims.items()}, masks)
    weights = {m: 1.0 for m in dims} | dict(fusion_weights or {})
    write_sharded_artifact(folder, raw, dims, n_items=len(tally.ids), weights=weights, scalers=scalers,
                           report=report, encoders=described, row_group_rows=engine.row_group_rows)
    (folder / ".raw").rmdir()
