"""Exact vector math on float32 arrays (BLAS through numpy)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


class BadVectorError(ValueError):
    """A vector is NaN, infinite, or of the wrong shape."""


def as_matrix(vectors: npt.ArrayLike, dim: int | None = None) -> FloatArray:
    """Validate and convert to a C-contiguous (n, d) float32 matrix."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise BadVectorError(f"expected a 2-d array of vectors, got shape {matrix.shape}")
    if dim is not None and matrix.shape[1] != dim:
        raise BadVectorError(f"expected vectors of dimension {dim}, got {matrix.shape[1]}")
    if not np.isfinite(matrix).all():
        raise BadVectorError("vectors contain NaN or infinite values")
    return matrix


def normalize(vectors: npt.ArrayLike) -> FloatArray:
    """Unit-normalise rows; zero rows stay zero instead of becoming NaN."""
    matrix = as_matrix(vectors)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    return np.ascontiguousarray(matrix / norms, dtype=np.float32)


def batch_dot(query: FloatArray, matrix: FloatArray) -> FloatArray:
    """Inner products of one normalised query against normalised rows.

    The hot path: callers guarantee normalisation, so this is a single GEMV.
    """
    return np.asarray(matrix @ query, dtype=np.float32)


def top_k(scores: FloatArray, k: int) -> npt.NDArray[np.int64]:
    """Indices of the k largest scores, best first (argpartition, then sort k)."""
    n = scores.shape[0]
    if k <= 0 or n == 0:
        return np.empty(0, dtype=np.int64)
    if k >= n:
        return np.argsort(-scores, kind="stable").astype(np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)
