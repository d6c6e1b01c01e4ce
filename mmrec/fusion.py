"""Fixed (not learned) fusion of per-modality vectors into one item vector.

The learned fusion layers (concat+MLP, gated, attention) build on the same inputs: a matrix per
modality and a presence mask per modality.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mmrec.errors import ConfigError

__all__ = ["ModalityScaler", "fit_scalers", "concat_fusion"]


@dataclass(frozen=True)
class ModalityScaler:
    """Per-dimension centring and scaling of one modality, fitted on the items that have it."""

    mean: np.ndarray
    scale: np.ndarray

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        return ((matrix - self.mean) / self.scale).astype(np.float32)


def fit_scalers(
    vectors: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]
) -> dict[str, ModalityScaler]:
    """Z-score parameters per modality (std floored at 1e-6 of the largest, to leave constants at 0)."""
    scalers = {}
    for modality, matrix in vectors.items():
        present = matrix[masks[modality]]
        if len(present) == 0:
            mean = np.zeros(matrix.shape[1], np.float32)
            std = np.ones(matrix.shape[1], np.float32)
        else:
            mean = present.mean(axis=0, dtype=np.float64).astype(np.float32)
            std = present.std(axis=0, dtype=np.float64).astype(np.float32)
            std = np.maximum(std, max(float(std.max()), 1e-12) * 1e-6)
        scalers[modality] = ModalityScaler(mean, std)
    return scalers


def concat_fusion(
    vectors: Mapping[str, np.ndarray],
    masks: Mapping[str, np.ndarray],
    *,
    weights: Mapping[str, float] | None = None,
    scalers: Mapping[str, ModalityScaler] | None = None,
) -> np.ndarray:
    """Normalised weighted concatenation, ``(n, sum of dims)`` float32.

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
    blocks = []
    for modality in modalities:
        block = scalers[modality].transform(vectors[modality])
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        block *= np.sqrt(weights[modality]) * masks[modality][:, None]
        blocks.append(block)
    fused = np.concatenate(blocks, axis=1)
    fused /= np.maximum(np.linalg.norm(fused, axis=1, keepdims=True), 1e-12)
    return np.ascontiguousarray(fused, dtype=np.float32)
