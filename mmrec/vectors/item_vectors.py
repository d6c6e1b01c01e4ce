"""ItemVectors: per-modality item vectors, presence masks, the fused vector, and the encode report."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmrec.data.validation import positions_of
from mmrec.errors import ArtifactError, SchemaError
from mmrec.utils.arrays import npy_path
from mmrec.utils.io import atomic_directory, load_npy, read_manifest, require_files, write_manifest
from mmrec.vectors.fixed_fusion import ModalityScaler, concat_fusion
from mmrec.vectors.shards import ARTIFACT_KIND, ID_COLUMN, SHARD_DIR, ShardedColumn, shard_files
from mmrec.vectors.shards import LAYOUT as SHARDS_LAYOUT

__all__ = ["ItemIssue", "EncodeReport", "ItemVectors"]

FORMAT_VERSION = 1  # bump when the folder layout changes; load reads 1..FORMAT_VERSION


@dataclass(frozen=True)
class ItemIssue:
    """One item whose modality could not be encoded, and why."""

    item_id: str
    modality: str
    reason: str


@dataclass
class EncodeReport:
    """What happened to every item in every modality: encoded, absent (no value) or failed.

    For each modality ``encoded + absent + failed`` equals the number of items.
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    issues: list[ItemIssue] = field(default_factory=list)
    cache_hits: dict[str, int] = field(default_factory=dict)  # encoded items read from the cache
    warnings: list[str] = field(default_factory=list)  # e.g. an encoder running with random weights

    def to_frame(self) -> pd.DataFrame:
        """Issues as a table with columns ``item_id, modality, reason``."""
        return pd.DataFrame([vars(i) for i in self.issues], columns=["item_id", "modality", "reason"])

    def __str__(self) -> str:
        lines = [f"WARNING: {warning}" for warning in self.warnings]
        lines += [
            f"{m}: {c['encoded']} encoded, {c['absent']} absent, {c['failed']} failed"
            for m, c in self.counts.items()
        ]
        lines += [f"  {i.item_id} [{i.modality}]: {i.reason}" for i in self.issues[:20]]
        if len(self.issues) > 20:
            lines.append(f"  ... and {len(self.issues) - 20} more (report.to_frame())")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "issues": [vars(i) for i in self.issues],
                "cache_hits": self.cache_hits, "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncodeReport:
        return cls(dict(data["counts"]), [ItemIssue(**i) for i in data["issues"]],
                   dict(data.get("cache_hits", {})), list(data.get("warnings", [])))


class ItemVectors:
    """Vectors of a catalog's items: one float32 matrix and one presence mask per modality, plus
    the fused vector used for retrieval.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
        Item ids in catalog order.
    vectors : dict of str to ndarray, float32, shape (n, d_m)
        Per-modality vectors; rows of items lacking the modality are zero.
    masks : dict of str to ndarray, bool, shape (n,)
        Which items have each modality.
    fused : ndarray, float32, shape (n, d)
        L2-normalised fused vectors: :func:`mmrec.vectors.fixed_fusion.concat_fusion` of the modalities, or a
        trained model's learned fusion (``fusion_kind`` says which).
    report : EncodeReport
        Per-modality counts and the items that failed, with reasons.
    """

    def __init__(
        self,
        ids: Sequence[str] | np.ndarray,
        vectors: Mapping[str, np.ndarray],
        masks: Mapping[str, np.ndarray],
        *,
        fusion_weights: Mapping[str, float] | None = None,
        scalers: Mapping[str, ModalityScaler] | None = None,
        fused: np.ndarray | None = None,
        report: EncodeReport | None = None,
        encoders: Mapping[str, Any] | None = None,
        fusion_kind: str = "concat",
    ) -> None:
        self.ids = np.asarray([str(i) for i in ids], dtype=object)
        n = len(self.ids)
        if len(set(self.ids.tolist())) != n:
            raise SchemaError("ItemVectors: item ids must be unique.")
        # Parquet-sharded matrices (ShardedColumn) stay on disk; everything else is float32 in memory
        self.vectors = {m: v if isinstance(v, ShardedColumn) else np.ascontiguousarray(v, dtype=np.float32)
                        for m, v in vectors.items()}
        self.masks = {m: np.asarray(masks[m], dtype=bool) for m in self.vectors}
        for modality, matrix in self.vectors.items():
            if matrix.ndim != 2 or matrix.shape[0] != n or self.masks[modality].shape != (n,):
                raise SchemaError(
                    f"ItemVectors: modality {modality!r} has shape {matrix.shape} / mask "
                    f"{self.masks[modality].shape}; expected ({n}, d) / ({n},)."
                )
        self.fusion_weights = {m: 1.0 for m in self.vectors} | dict(fusion_weights or {})
        if scalers is None:
            from mmrec.vectors.fixed_fusion import fit_scalers

            scalers = fit_scalers(self.vectors, self.masks)
        self.scalers = dict(scalers)
        self.fused = (
            concat_fusion(self.vectors, self.masks, weights=self.fusion_weights, scalers=self.scalers)
            if fused is None else fused if isinstance(fused, ShardedColumn)
            else np.ascontiguousarray(fused, dtype=np.float32)
        )
        self.report = report or EncodeReport(
            counts={m: {"encoded": int(k.sum()), "absent": int((~k).sum()), "failed": 0}
                    for m, k in self.masks.items()}
        )
        self.encoders = dict(encoders or {})
        self.fusion_kind = fusion_kind
        self._id_index = pd.Index(self.ids)

    # ----------------------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        dims = {m: v.shape[1] for m, v in self.vectors.items()}
        present = {m: int(k.sum()) for m, k in self.masks.items()}
        return f"ItemVectors({len(self)} items, dims={dims}, present={present}, fused_dim={self.dim})"

    @property
    def modalities(self) -> list[str]:
        return list(self.vectors)

    @property
    def dim(self) -> int:
        """Dimension of the fused vectors."""
        return int(self.fused.shape[1])

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Dense positions (int64) of ``item_ids``; an unknown id is a :class:`SchemaError`."""
        return positions_of(self._id_index, item_ids, what="ItemVectors")

    # ----------------------------------------------------------------------------- persistence
    def array_files(self) -> dict[str, np.ndarray]:
        """Arrays by file stem: ``vectors.<m>``, ``mask.<m>``, ``scaler.<m>`` and ``fused``."""
        arrays: dict[str, np.ndarray] = {"fused": self.fused}
        for modality in self.vectors:
            arrays[f"vectors.{modality}"] = self.vectors[modality]
            arrays[f"mask.{modality}"] = self.masks[modality]
            arrays[f"scaler.{modality}"] = np.stack([self.scalers[modality].mean,
                                                     self.scalers[modality].scale])
        return arrays

    def write_into(self, folder: Path, *, already_written: frozenset[str] = frozenset()) -> None:
        """Write every file of the artifact into ``folder`` (those in ``already_written`` exist)."""
        names = []
        for stem, array in self.array_files().items():
            path = npy_path(folder, stem)
            if stem not in already_written:
                np.save(path, array, allow_pickle=False)
            names.append(path.name)
        (folder / "ids.json").write_text(json.dumps(self.ids.tolist()), "utf-8")
        (folder / "report.json").write_text(json.dumps(self.report.to_dict(), indent=1), "utf-8")
        write_manifest(folder, ARTIFACT_KIND, version=FORMAT_VERSION, payload={
            "n_items": len(self),
            "modalities": {m: int(v.shape[1]) for m, v in self.vectors.items()},
            "fused_dim": self.dim,
            "fusion": {"kind": self.fusion_kind, "weights": self.fusion_weights},
            "encoders": self.encoders,
        }, files=[*names, "ids.json", "report.json"])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a folder (one ``.npy`` per array, ids, report, checksummed manifest) atomically."""
        path = Path(path)
        with atomic_directory(path) as tmp:
            self.write_into(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, mmap: bool = False, verify: bool = True) -> ItemVectors:
        """Load a folder written by :meth:`save`.

        Every file is checked against the manifest first (size and SHA-256); a missing, truncated or
        modified file is an :class:`ArtifactError`. ``mmap=True`` memory-maps the arrays instead of
        reading them, for catalogs larger than RAM; ``verify=False`` then skips the checksums (which
        read every byte once) and checks only file sizes: for multi-GB folders you trust.
        """
        path = Path(path)
        manifest = read_manifest(path, ARTIFACT_KIND, version=FORMAT_VERSION, verify=verify)
        if manifest.get("layout") == SHARDS_LAYOUT:  # written by encode_items(engine="ray", out=...)
            return _open_shards(path, manifest)
        modalities = list(manifest.get("modalities", {}))
        stems = ["fused", *(f"{kind}.{m}" for m in modalities for kind in ("vectors", "mask", "scaler"))]
        require_files(path, manifest, [*(npy_path(path, stem).name for stem in stems), "ids.json",
                                       "report.json"])

        def array(stem: str) -> np.ndarray:
            return load_npy(npy_path(path, stem), mmap=mmap)

        ids = json.loads((path / "ids.json").read_text("utf-8"))
        vectors = {m: array(f"vectors.{m}") for m in modalities}
        masks = {m: np.asarray(array(f"mask.{m}"), dtype=bool) for m in modalities}
        scalers = {m: ModalityScaler(*np.asarray(array(f"scaler.{m}"))) for m in modalities}
        report = EncodeReport.from_dict(json.loads((path / "report.json").read_text("utf-8")))
        return cls(ids, vectors, masks, fusion_weights=manifest["fusion"]["weights"],
                   scalers=scalers, fused=array("fused"), report=report,
                   encoders=manifest["encoders"], fusion_kind=manifest["fusion"].get("kind", "concat"))


def _open_shards(path: str | os.PathLike[str], manifest: Mapping[str, Any]) -> ItemVectors:
    """An :class:`~mmrec.vectors.item_vectors.ItemVectors` over a ``parquet-shards`` folder: ids and masks
    read, every matrix left on disk as a :class:`ShardedColumn`."""
    path = Path(path)
    files = shard_files(path, manifest)
    require_files(path, manifest, [*(f"{SHARD_DIR}/{f.name}" for f in files), "report.json",
                                   *(npy_path(path, f"scaler.{m}").name for m in manifest["modalities"])])
    modalities = dict(manifest["modalities"])
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [ID_COLUMN, *(f"mask.{m}" for m in modalities)]
    try:
        table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
    except (OSError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{path}: cannot read the item-vector shards ({exc}); re-create them.") from exc
    if table.num_rows != int(manifest["n_items"]):
        raise ArtifactError(f"{path}: the shards hold {table.num_rows} rows, the manifest says "
                            f"{manifest['n_items']}; re-create the artifact.")
    ids = table.column(ID_COLUMN).to_numpy(zero_copy_only=False).astype(object)
    masks = {m: table.column(f"mask.{m}").to_numpy(zero_copy_only=False).astype(bool) for m in modalities}
    vectors = {m: ShardedColumn(files, f"vectors.{m}", d) for m, d in modalities.items()}
    scalers = {m: ModalityScaler(*load_npy(npy_path(path, f"scaler.{m}")))
               for m in modalities}
    report = EncodeReport.from_dict(json.loads((path / "report.json").read_text("utf-8")))
    fused = ShardedColumn(files, "fused", int(manifest["fused_dim"]))
    return ItemVectors(ids, vectors, masks, fusion_weights=manifest["fusion"]["weights"], scalers=scalers,
                       fused=fused, report=report, encoders=manifest["encoders"],
                       fusion_kind=manifest["fusion"].get("kind", "concat"))
