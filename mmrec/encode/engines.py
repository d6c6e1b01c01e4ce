"""Where ``encode_items`` runs: engines by name (``"local"``, ``"ray"``) and their settings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mmrec.errors import ConfigError
from mmrec.registry import Registry
from mmrec.utils.config import config_from_dict

__all__ = ["EncodeEngine", "ENCODE_ENGINES", "resolve_engine"]


@dataclass(frozen=True)
class EncodeEngine:
    """How and where items are encoded.

    Parameters
    ----------
    name : str
        ``"local"`` (this process; the default) or ``"ray"`` (Ray Data: each modality's encoder runs
        in a pool of actors over batches of the catalog; needs ``pip install "mmrec[ray]"``).
    address : str, optional
        Ray cluster to join (``"auto"``, ``"ray://host:10001"``); ``None`` starts a local Ray with
        ``num_cpus`` CPUs unless Ray is already initialised in this process (then that one is used).
    num_cpus : int, optional
        CPUs of a local Ray started here (default: all of this machine's).
    workers : int
        Actors per modality.
    cpus_per_worker, gpus_per_worker : float, optional
        Ray resources of each actor. Default CPUs: the cluster's CPUs shared by all actors of all
        modalities; default GPUs: on a cluster with GPUs, its GPUs shared by the actors of encoders
        that are not fitted on the corpus (the pretrained networks), else 0.
    shard_rows, row_group_rows : int
        Rows per Parquet shard and per row group of the ``out`` folder.
    """

    name: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    workers: int = 2
    cpus_per_worker: float | None = None
    gpus_per_worker: float | None = None
    shard_rows: int = 65_536
    row_group_rows: int = 8_192

    def __post_init__(self) -> None:
        if self.name.lower() not in ENCODE_ENGINES:
            ENCODE_ENGINES.get(self.name)  # raises UnknownNameError with suggestions
        for field in ("workers", "shard_rows", "row_group_rows"):
            if getattr(self, field) < 1:
                raise ConfigError(f"EncodeEngine.{field} must be >= 1, got {getattr(self, field)}.")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"EncodeEngine.num_cpus must be >= 1, got {self.num_cpus}.")
        for field in ("cpus_per_worker", "gpus_per_worker"):
            value = getattr(self, field)
            if value is not None and value < 0:
                raise ConfigError(f"EncodeEngine.{field} must be >= 0, got {value}.")


# name → runner(catalog, chosen encoders, *, engine, **encode_items options) -> ItemVectors;
# filled by mmrec.encode.api (the engines live beside it).
ENCODE_ENGINES: Registry[Callable[..., Any]] = Registry("encode engine")


def resolve_engine(engine: str | EncodeEngine | Mapping[str, Any] | None) -> EncodeEngine:
    """An :class:`EncodeEngine` from a name, a mapping of its fields, or itself."""
    if engine is None:
        return EncodeEngine()
    if isinstance(engine, EncodeEngine):
        return engine
    if isinstance(engine, str):
        return EncodeEngine(name=engine)
    if isinstance(engine, Mapping):
        return config_from_dict(EncodeEngine, engine, where="encode engine")
    raise ConfigError(f"engine must be a name, a mapping or an EncodeEngine, got {type(engine).__name__}.")

