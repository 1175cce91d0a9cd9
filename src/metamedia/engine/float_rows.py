"""Float32 rows by position: a read-only base (any array, e.g. a file mapping) and an
in-RAM tail of rows appended after it.

The compressed index kind ("hnsw_sq8") keeps its exact vectors here, beside the
quantised graph. A loaded index gets its base from the storage layer (a read-only
`numpy.memmap` of the sidecar file), so only the rows a search touches become
resident; rows upserted since then live in the tail until a save writes them
to the file and `rebase` swaps in a longer mapping. No I/O happens here.

The half-precision kind ("hnsw_fp16") hands out its rows as a `FloatRows` whose base
is a float16 view of faiss's own storage codes: every read (`take`, indexing, `rows`,
`dot_top`) converts just the rows it gathers to float32, so callers see float32 rows
and no second copy of the catalog exists. Exact search's inner products over such
rows (`dot`) go through the C kernel `_halfdot` when the build compiled it: it reads
each gathered row in place and converts and multiplies in one pass (AVX2 + F16C + FMA
where the CPU has them), where numpy must gather, widen and then multiply.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from metamedia.engine.vectors import FloatArray, top_k

try:  # compiled by `pip install` when a C compiler is at hand (see pyproject.toml)
    from metamedia.engine import _halfdot
except ImportError:  # pragma: no cover - a build without a compiler: numpy serves
    _halfdot = None  # type: ignore[assignment]

# The kernel exact search uses over float16 rows, or None for the numpy path
# (`half_dot`). Module-level so tests can force the fallback and compare the two.
HALF_KERNEL = None if _halfdot is None else _halfdot.half_dot_at

IntArray = npt.NDArray[np.int64]
BaseArray = npt.NDArray[np.float32] | npt.NDArray[np.float16]

# Rows gathered per block when scanning many positions: bounds the copy a scan makes.
SCAN_BLOCK_ROWS = 4096

# float16 -> float32 by bit arithmetic (see `half_to_float`): the half's exponent and
# mantissa shifted into float32's fields read as 2^-112 times the value, so one
# multiply by 2^112 rescales normal and subnormal halves alike.
_HALF_BODY_MASK = np.int32(-0x70000001)  # 0x8FFFFFFF: the sign and the 28 bits below
_HALF_SCALE = np.float32(2.0**112)


def half_to_float(halves: BaseArray) -> FloatArray:
    """float16 values as float32, exactly, in three whole-array passes.

    numpy's own cast converts one value at a time on this machine (~1.5 ns each, a
    third of an exact filtered search); this runs ~4x faster. The halves are
    sign-extended to int32 and shifted left 13 bits, which puts the mantissa and
    exponent where float32 keeps them; clearing bits 28-30 leaves the sign (and bits
    29-31 of a negative's sign extension) out of the exponent. Infinities and NaNs
    come out finite, which unit vectors never hold.
    """
    bits = np.left_shift(halves.view(np.int16), 13, dtype=np.int32)  # widen and shift
    bits &= _HALF_BODY_MASK
    out = bits.view(np.float32)
    out *= _HALF_SCALE
    return out


def half_dot(halves: BaseArray, query: FloatArray) -> FloatArray:
    """Inner products of float16 rows with a float32 query, as `half_to_float(halves)
    @ query` would give them, with the 2^112 rescale moved onto the products: one pass
    fewer over the rows, which for a few dozen rows is a fifth of the time."""
    bits = halves.view(np.int16).astype(np.int32)
    bits <<= 13
    bits &= _HALF_BODY_MASK
    sims: FloatArray = bits.view(np.float32) @ query
    sims *= _HALF_SCALE
    return sims


def half_dot_at(halves: BaseArray, positions: IntArray, query: FloatArray) -> FloatArray:
    """`half_dot(halves[positions], query)`, through the C kernel when it is built:
    float32 inner products of the float16 rows at `positions` (each in [0, n)) with
    `query`.

    The kernel wants C-contiguous float16 rows, int64 positions and a float32 query;
    other inputs are made so (a copy of the small ones only) or, for rows that are not
    contiguous, left to numpy. A negative position raises IndexError on the kernel's
    path rather than counting from the end.
    """
    kernel = HALF_KERNEL
    if kernel is None or not halves.flags.c_contiguous:
        return half_dot(halves[positions], query)
    if positions.dtype != np.int64 or not positions.flags.c_contiguous:
        positions = np.ascontiguousarray(positions, dtype=np.int64)
    if query.dtype != np.float32 or not query.flags.c_contiguous:
        query = np.ascontiguousarray(query, dtype=np.float32)
    out = np.empty(positions.shape[0], dtype=np.float32)
    kernel(halves, positions, query, out)
    return out


def _as_float(rows: BaseArray) -> FloatArray:
    """float32 rows: float16 ones converted, float32 ones as they are (a view)."""
    if rows.dtype == np.float16:
        return half_to_float(rows)
    return np.asarray(rows, dtype=np.float32)


class FloatRows:
    """Append-only (n, dim) float32 rows: `base` rows first, then the in-RAM tail.

    The base may be float16 (read as float32: each read converts the rows it gathers)."""

    def __init__(self, dim: int, base: BaseArray | None = None) -> None:
        self.dim = dim
        self._base: BaseArray = np.empty((0, dim), dtype=np.float32) if base is None else base
        if self._base.ndim != 2 or self._base.shape[1] != dim:
            raise ValueError(f"base rows of shape {self._base.shape}, expected (n, {dim})")
        if self._base.dtype not in (np.float32, np.float16):
            raise ValueError(f"base rows of dtype {self._base.dtype}, expected float32/16")
        self._tail = np.empty((0, dim), dtype=np.float32)  # capacity; rows [0, _tail_rows)
        self._tail_rows = 0

    def __len__(self) -> int:
        return int(self._base.shape[0]) + self._tail_rows

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.dim)

    @property
    def base_rows(self) -> int:
        """Rows held by the base (the file mapping, for a loaded index)."""
        return int(self._base.shape[0])

    @property
    def tail_bytes(self) -> int:
        """Bytes of RAM the in-RAM tail holds (its capacity)."""
        return int(self._tail.nbytes)

    def append(self, matrix: FloatArray) -> None:
        rows = matrix.shape[0]
        need = self._tail_rows + rows
        if need > self._tail.shape[0]:
            grown = np.empty((max(need, 2 * self._tail.shape[0], 64), self.dim), dtype=np.float32)
            grown[: self._tail_rows] = self._tail[: self._tail_rows]
            self._tail = grown
        self._tail[self._tail_rows : need] = matrix
        self._tail_rows = need

    def rebase(self, base: npt.NDArray[np.float32]) -> None:
        """Replace the base by `base`, which holds the first `len(base)` rows (the old
        base's and the tail's first ones, e.g. a longer mapping after a save); the tail
        keeps only the rows past it."""
        start = int(base.shape[0])
        if start < self.base_rows or start > len(self) or base.shape[1:] != (self.dim,):
            raise ValueError(f"cannot rebase {len(self)} rows onto {base.shape}")
        if base.dtype != np.float32:
            raise ValueError(f"base rows of dtype {base.dtype}, expected float32")
        rest = self.rows(start, len(self)).copy()
        self._base = base
        self._tail = np.empty((0, self.dim), dtype=np.float32)
        self._tail_rows = 0
        if rest.shape[0]:
            self.append(rest)

    def rows(self, start: int, stop: int) -> FloatArray:
        """Rows [start, stop): a view when they lie in one part of float32 rows, else a
        float32 copy."""
        n_base = self.base_rows
        stop = min(stop, len(self))
        if start >= stop:
            return np.empty((0, self.dim), dtype=np.float32)
        if stop <= n_base:
            return _as_float(self._base[start:stop])
        if start >= n_base:
            return self._tail[start - n_base : stop - n_base]
        return np.concatenate([_as_float(self._base[start:]), self._tail[: stop - n_base]])

    def take(self, positions: npt.ArrayLike) -> FloatArray:
        """A copy of the rows at `positions` (in that order)."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        out = np.empty((pos.shape[0], self.dim), dtype=np.float32)
        if pos.shape[0] == 0:
            return out
        n_base = self.base_rows
        if pos.min() < 0 or pos.max() >= len(self):
            raise IndexError(f"row positions out of range for {len(self)} rows")
        in_base = pos < n_base
        if in_base.all():
            return self._base_rows(pos)
        out[in_base] = self._base_rows(pos[in_base])
        out[~in_base] = self._tail[pos[~in_base] - n_base]
        return out

    def dot(self, positions: IntArray, query: FloatArray) -> FloatArray:
        """Inner products of the rows at `positions` (valid row numbers) with `query`.
        The short path of exact search: no range checks or copies beyond the gather."""
        if self._tail_rows == 0:
            if self._base.dtype == np.float16:
                return half_dot_at(self._base, positions, query)
            sims: FloatArray = self._base[positions] @ query
            return sims
        taken: FloatArray = self.take(positions) @ query
        return taken

    def _base_rows(self, positions: IntArray) -> FloatArray:
        return _as_float(self._base[positions])

    def __getitem__(self, key: int | slice | npt.ArrayLike) -> FloatArray:
        """Row access like an (n, dim) array: an int (a copy of one row), a slice, or
        integer positions / a boolean mask (copies)."""
        if isinstance(key, int | np.integer):
            index = int(key)
            if index < 0:
                index += len(self)
            row: FloatArray = self.take([index])[0]
            return row
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self.rows(start, stop)
            return self.take(np.arange(start, stop, step))
        arr = np.asarray(key)
        if arr.dtype == np.bool_:
            if arr.shape != (len(self),):
                raise IndexError(f"mask of shape {arr.shape} for {len(self)} rows")
            return self.take(np.flatnonzero(arr))
        return self.take(arr)

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> FloatArray:
        """Every row as one array: a copy once the tail holds rows (tests, small data)."""
        whole = self.rows(0, len(self))
        return whole if dtype is None else whole.astype(dtype)

    def dot_top(
        self, query: FloatArray, k: int, positions: IntArray
    ) -> tuple[IntArray, FloatArray]:
        """The k of `positions` (ascending) with the largest inner product with `query`,
        best first, and their scores: exact, scanned in blocks so the copy stays small."""
        best_pos = np.empty(0, dtype=np.int64)
        best_sim = np.empty(0, dtype=np.float32)
        for start in range(0, positions.shape[0], SCAN_BLOCK_ROWS):
            block = positions[start : start + SCAN_BLOCK_ROWS]
            first, last = int(block[0]), int(block[-1])
            if last - first + 1 == block.shape[0]:  # contiguous: read in place
                sims = self.rows(first, last + 1) @ query
            else:
                sims = self.dot(block, query)
            pool_pos = np.concatenate([best_pos, block])
            pool_sim = np.concatenate([best_sim, sims.astype(np.float32)])
            keep = top_k(pool_sim, k)
            best_pos, best_sim = pool_pos[keep], pool_sim[keep]
        return best_pos, best_sim
