"""The array contract of the index: float32, C-contiguous ``(n, d)`` matrices, unit rows."""

from __future__ import annotations

import numpy as np

from mmrec.errors import SchemaError

__all__ = ["as_matrix", "l2_normalize", "inner_product_items", "inner_product_queries"]


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
    # a finite sum means every entry is finite (half the time of the per-entry check); an infinite
    # one may only be an overflow of large finite values, so the per-row check decides and names it
    with np.errstate(over="ignore", invalid="ignore"):
        total = matrix.sum()
    if not np.isfinite(total):
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


def inner_product_items(vectors: np.ndarray) -> np.ndarray:
    """Item vectors whose inner products rank as themselves, mapped onto the unit sphere for a
    cosine index (maximum inner product search as nearest neighbour, Bachrach et al. 2014): each
    row scaled by the largest row norm ``M`` and given one more coordinate ``sqrt(1 - |x|^2 / M^2)``.
    With :func:`inner_product_queries`, ``item' . query' = item . query / (M |query|)``, so the
    order of every query's scores is unchanged. Rows already of unit length (or zero) are returned
    as they are: a cosine index ranks them by inner product without the extra coordinate."""
    matrix = as_matrix(vectors, name="item vectors")
    norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
    if np.all((np.abs(norms - 1.0) < 1e-4) | (norms == 0)):
        return matrix
    ratio = norms / float(norms.max())
    extra = np.sqrt(np.clip(1.0 - np.square(ratio), 0.0, None))
    return np.ascontiguousarray(np.hstack([matrix / float(norms.max()), extra[:, None]]), dtype=np.float32)


def inner_product_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """Queries for an index of width ``dim`` over :func:`inner_product_items`: unit rows (zero rows
    stay zero), with a zero last coordinate when the items gained one."""
    matrix = l2_normalize(as_matrix(queries, name="queries"))
    if dim == matrix.shape[1]:
        return matrix
    if dim != matrix.shape[1] + 1:
        raise SchemaError(f"queries have dim {matrix.shape[1]}; the index has {dim}.")
    return np.ascontiguousarray(np.hstack([matrix, np.zeros((len(matrix), 1), np.float32)]))
