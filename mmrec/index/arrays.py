"""The array contract of the index: float32, C-contiguous ``(n, d)`` matrices, unit rows."""

from __future__ import annotations

import numpy as np

from mmrec.errors import SchemaError

__all__ = ["as_matrix", "l2_normalize"]


def as_matrix(vectors: np.ndarray, *, name: str) -> np.ndarray:
    """float32, C-contiguous ``(n, d)``; NaN/inf rows are a :class:`SchemaError` naming the row."""
    try:
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf: reported below
            matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:  # text or objects where numbers belong
        raise SchemaError(f"{name} must be numbers (float32); got {np.asarray(vectors).dtype} "
                          f"values that cannot be converted ({exc}).") from None
    if matrix.ndim != 2:
        raise SchemaError(f"{name} must have shape (n, d); got {matrix.shape}.")
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise SchemaError(f"{name} row {int(np.flatnonzero(~finite)[0])} holds NaN or inf; "
                          "clean the vectors first.")
    return matrix


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    matrix = np.asarray(matrix, dtype=np.float32)
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        out = np.ascontiguousarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)
    # rows whose squared norm overflows or underflows float32 (entries near 1e±19 and beyond)
    redo = ~((norms[:, 0] > 1e-12) & (norms[:, 0] < 1e15))  # the clamp above must not bite
    if redo.any():
        rows = matrix[redo].astype(np.float64)
        wide = np.linalg.norm(rows, axis=1, keepdims=True)
        out[redo] = rows / np.where(wide > 0, wide, 1.0)
    return out
