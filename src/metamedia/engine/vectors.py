"""Exact vector math on float32 arrays (BLAS through numpy)."""

from __future__ import annotations

import math

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


def as_query(query: npt.ArrayLike, dim: int) -> FloatArray:
    """One query vector as a (dim,) float32 array, validated like `as_matrix`.

    A float32 vector of the right shape (what the encoder hands over) is taken as
    it is and checked with one inner product: NaN or infinity anywhere makes q.q
    non-finite. A search under a selective filter is tens of microseconds, and the
    general path's four whole-array calls were a fifth of it.
    """
    if (
        isinstance(query, np.ndarray)
        and query.dtype == np.float32
        and query.shape == (dim,)
        and query.flags.c_contiguous
    ):
        if not math.isfinite(float(query @ query)):
            raise BadVectorError("vector contains NaN or infinite values (or is too large)")
        vector: FloatArray = query
        return vector
    matrix = as_matrix(query, dim)
    if matrix.shape[0] != 1:
        raise BadVectorError(f"expected one query vector, got {matrix.shape[0]}")
    row: FloatArray = matrix[0]
    return row


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


# Up to this many scores a full sort is cheaper than partition-then-sort: the few
# numpy calls, not the comparisons, are the cost of ranking a small filter's rows.
SORT_WHOLE_MAX = 256


def top_k(scores: FloatArray, k: int) -> npt.NDArray[np.int64]:
    """Indices of the k largest scores, best first (argpartition, then sort k)."""
    n = scores.shape[0]
    if k <= 0 or n == 0:
        return np.empty(0, dtype=np.int64)
    if k >= n or n <= SORT_WHOLE_MAX:
        return np.argsort(-scores, kind="stable")[:k].astype(np.int64, copy=False)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")].astype(np.int64)
