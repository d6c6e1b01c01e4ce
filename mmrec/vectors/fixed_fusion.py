"""Fixed (not learned) fusion of per-modality vectors into one item vector.

The learned fusion layers (concat+MLP, gated, attention) build on the same inputs: a matrix per
modality and a presence mask per modality. Everything here works in row blocks, so matrices may be
memory-mapped and larger than RAM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mmrec.errors import ConfigError

__all__ = ["ModalityScaler", "fit_scalers", "concat_fusion", "chunk_rows_for"]

# Row blocks are sized so one block of float64 temporaries stays near this many bytes (a few such
# temporaries live at once): memory for fusion is bounded, whatever the catalog size.
CHUNK_BYTES = 4 << 20


def chunk_rows_for(width: int) -> int:
    """Rows per block for matrices ``width`` columns wide (at least 256)."""
    return max(256, CHUNK_BYTES // (8 * max(width, 1)))


@dataclass(frozen=True)
class ModalityScaler:
    """Per-dimension centring and scaling of one modality, fitted on the items that have it."""

    mean: np.ndarray
    scale: np.ndarray

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        return ((np.asarray(matrix, dtype=np.float32) - self.mean) / self.scale).astype(np.float32)


def fit_scalers(
    vectors: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]
) -> dict[str, ModalityScaler]:
    """Z-score parameters per modality over present items (std floored at 1e-6 of the largest)."""
    scalers = {}
    for modality, matrix in vectors.items():
        mask = np.asarray(masks[modality], dtype=bool)
        d = matrix.shape[1]
        chunk_rows = chunk_rows_for(d)
        total, sum_, sum_sq = 0, np.zeros(d), np.zeros(d)
        for start in range(0, len(matrix), chunk_rows):
            block = np.asarray(matrix[start : start + chunk_rows], dtype=np.float64)
            block = block[mask[start : start + chunk_rows]]
            total += len(block)
            sum_ += block.sum(axis=0)
            sum_sq += np.square(block).sum(axis=0)
        if total == 0:
            scalers[modality] = ModalityScaler(np.zeros(d, np.float32), np.ones(d, np.float32))
            continue
        mean = sum_ / total
        std = np.sqrt(np.maximum(sum_sq / total - np.square(mean), 0.0))
        std = np.maximum(std, max(float(std.max()), 1e-12) * 1e-6)
        scalers[modality] = ModalityScaler(mean.astype(np.float32), std.astype(np.float32))
    return scalers


def concat_fusion(
    vectors: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    *,
    weights: Mapping[str, float] | None = None,
    scalers: Mapping[str, ModalityScaler] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Normalised weighted concatenation, ``(n, sum of dims)`` float32 (written into ``out`` if given).

    Each modality block is z-scored per dimension (``scalers``, fitted on the present items when not
    given), L2-normalised per item, multiplied by ``sqrt(weight)`` and zeroed where the item lacks
    the modality; the concatenation is L2-normalised again. So the dot product of two items that
    have every modality is the weight-averaged cosine similarity of their modalities; an item with
    a missing modality is compared on the ones it has. Items with no modality at all get zeros.
    """
    modalities = list(vectors)
    if not modalities:
        raise ConfigError("concat_fusion: no modality vectors given.")
    weights = {m: 1.0 for m in modalities} | dict(weights or {})
    for modality, weight in weights.items():
        if modality in vectors and (not np.isfinite(weight) or weight < 0):
            raise ConfigError(f"fusion weight of {modality!r} must be finite and >= 0, got {weight}.")
    scalers = scalers or fit_scalers(vectors, masks)
    n = len(next(iter(vectors.values())))
    width = sum(vectors[m].shape[1] for m in modalities)
    chunk_rows = chunk_rows_for(width)
    if out is None:
        out = np.empty((n, width), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        rows = slice(start, min(n, start + chunk_rows))
        blocks = []
        for modality in modalities:
            block = scalers[modality].transform(vectors[modality][rows])
            block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            block *= np.sqrt(weights[modality]) * np.asarray(masks[modality][rows])[:, None]
            blocks.append(block)
        fused = np.concatenate(blocks, axis=1)
        fused /= np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)
        out[rows] = fused
    return out
