"""The C kernel behind exact search over float16 rows (`metamedia.engine._halfdot`):
that the build has it, that both its paths (AVX2/F16C/FMA and portable scalar) give
what the numpy path gives, that `FloatRows.dot` agrees with and without it, and that
no input crashes it."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# A missing kernel must fail here (a collection error), not slow every filtered search
# down unnoticed: `pip install -e .` builds it whenever a C compiler exists
# (scripts/setup.sh installs gcc), and an optional extension that failed to compile
# only prints a warning.
from metamedia.engine import _halfdot, float_rows
from metamedia.engine.float_rows import FloatRows, half_dot, half_dot_at, half_to_float
from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.engine.vectors import normalize

Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]
KERNELS: dict[str, Kernel] = {
    "dispatched": _halfdot.half_dot_at,
    "scalar": _halfdot.half_dot_at_scalar,
}


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_the_build_has_the_kernel() -> None:
    assert float_rows.HALF_KERNEL is _halfdot.half_dot_at
    assert _halfdot.IMPLEMENTATION in ("avx2", "scalar")
    if platform.machine() in ("x86_64", "AMD64") and {"avx2", "f16c", "fma"} <= _cpu_flags():
        assert _halfdot.IMPLEMENTATION == "avx2"


def _run(kernel: Kernel, rows: np.ndarray, pos: np.ndarray, query: np.ndarray) -> np.ndarray:
    out = np.full(pos.shape[0], np.nan, dtype=np.float32)
    kernel(rows, pos, query, out)
    return out


@pytest.mark.parametrize("name", KERNELS)
def test_every_half_value_converts_exactly(name: str) -> None:
    """All 65,536 float16 bit patterns times 1.0: zeros, subnormals, normals,
    infinities and NaNs come out as numpy's cast gives them."""
    rows = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(-1, 1)
    out = _run(KERNELS[name], rows, np.arange(rows.shape[0]), np.ones(1, np.float32))
    np.testing.assert_array_equal(out, rows[:, 0].astype(np.float32))


def _halves(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Random float16 rows, one value in eight a subnormal (|x| < 2^-14)."""
    rows = rng.normal(size=(n, dim)).astype(np.float16)
    tiny = rng.random(size=(n, dim)) < 0.125
    rows[tiny] = (rng.uniform(-1, 1, size=int(tiny.sum())) * 2.0**-14).astype(np.float16)
    return rows


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dim", [1, 7, 8, 13, 33, 100, 384])
def test_matches_the_numpy_path(name: str, dim: int) -> None:
    rng = np.random.default_rng(dim)
    rows = _halves(rng, 500, dim)
    pos = rng.integers(0, 500, size=300).astype(np.int64)
    query = rng.normal(size=dim).astype(np.float32)
    query[::5] *= 2.0**-20  # products of subnormal size too
    got = _run(KERNELS[name], rows, pos, query)
    wide = half_to_float(rows[pos]).astype(np.float64)
    exact = wide @ query.astype(np.float64)
    # float32 accumulation: a few ulps of the sum of the products' magnitudes.
    bound = 1e-6 * (np.abs(wide) @ np.abs(query.astype(np.float64))) + 1e-30
    assert np.all(np.abs(got - exact) <= bound)
    # The numpy path multiplies values scaled by 2^-112, so products that small lose
    # bits below float32's subnormal floor: 2^-149 * 2^112 per term, absolutely.
    numpy_bound = bound + dim * 2.0**-37
    assert np.all(np.abs(half_dot(rows[pos], query) - exact) <= numpy_bound)


def _dot_cases() -> list[tuple[FloatRows, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    rows = FloatRows(384, _halves(rng, 4000, 384))
    query = normalize(rng.normal(size=(1, 384)))[0].astype(np.float32)
    return [
        (rows, np.sort(rng.choice(4000, size=count, replace=False)), query)
        for count in (0, 1, 28, 369, 3000)
    ]


def test_float_rows_dot_same_with_and_without_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    for rows, pos, query in _dot_cases():
        fast = rows.dot(pos, query)
        with monkeypatch.context() as patch:
            patch.setattr(float_rows, "HALF_KERNEL", None)
            slow = rows.dot(pos, query)
        assert fast.dtype == np.float32 and fast.shape == pos.shape
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)
        top_fast = rows.dot_top(query, 10, pos)
        with monkeypatch.context() as patch:
            patch.setattr(float_rows, "HALF_KERNEL", None)
            top_slow = rows.dot_top(query, 10, pos)
        np.testing.assert_array_equal(top_fast[0], top_slow[0])


def test_wrapper_adapts_its_inputs() -> None:
    """int32 positions, a float64 or strided query are converted; rows that are not
    C-contiguous go to numpy; either way the answer is the same."""
    rng = np.random.default_rng(3)
    rows = _halves(rng, 50, 24)
    pos = rng.integers(0, 50, size=20)
    query = rng.normal(size=48).astype(np.float32)[::2]
    want = half_dot(rows[pos], np.ascontiguousarray(query))
    np.testing.assert_allclose(half_dot_at(rows, pos.astype(np.int32), query), want, rtol=1e-5)
    np.testing.assert_allclose(half_dot_at(rows, pos, query.astype(np.float64)), want, rtol=1e-5)
    wide = np.zeros((50, 48), dtype=np.float16)
    wide[:, ::2] = rows
    np.testing.assert_allclose(half_dot_at(wide[:, ::2], pos, query), want, rtol=1e-5)


@pytest.mark.parametrize("fallback", [False, True])
def test_fp16_index_filtered_exact_search(fallback: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The index's selective-filter path (gather the allowed rows, multiply) returns the
    float16 rows' own top k, with or without the kernel."""
    if fallback:
        monkeypatch.setattr(float_rows, "HALF_KERNEL", None)
    rng = np.random.default_rng(11)
    vecs = normalize(rng.normal(size=(3000, 32)))
    index = VectorIndex(32, IndexParams(kind="hnsw_fp16"))
    index.upsert(np.arange(3000), vecs)
    allowed = rng.random(3000) < 0.01
    halves = vecs.astype(np.float16).astype(np.float32)
    for q in vecs[:5]:
        got = index.exact_search(q, 5, allowed)
        sims = halves[allowed] @ q.astype(np.float32)
        want = np.flatnonzero(allowed)[np.argsort(-sims)[:5]]
        assert got.keys.tolist() == want.tolist()


# ---- bad input raises, never crashes ------------------------------------------------


def _good() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rows = np.ones((10, 16), dtype=np.float16)
    return rows, np.arange(4, dtype=np.int64), np.ones(16, np.float32), np.empty(4, np.float32)


def _unaligned_positions() -> np.ndarray:
    raw = np.zeros(4 * 8 + 1, dtype=np.uint8)
    return np.frombuffer(raw.data, dtype=np.int64, count=4, offset=1)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize(
    ("slot", "value", "error", "message"),
    [
        (0, np.ones((10, 16), np.float32), TypeError, "float16"),
        (0, np.ones((10, 32), np.float16)[:, ::2], TypeError, "C-contiguous"),
        (0, np.ones(160, np.float16), ValueError, "2-D"),
        (0, [[1.0] * 16] * 10, TypeError, "buffer"),
        (1, np.arange(4, dtype=np.int32), TypeError, "int64"),
        (1, np.arange(4, dtype=np.uint64), TypeError, "int64"),
        (1, np.arange(4, dtype=np.int64).reshape(2, 2), ValueError, "1-D"),
        (1, np.array([0, 10, 1, 2]), IndexError, "out of range"),
        (1, np.array([0, -1, 1, 2]), IndexError, "out of range"),
        (1, _unaligned_positions(), ValueError, "aligned"),
        (2, np.ones(15, np.float32), ValueError, "shape"),
        (2, np.ones(16, np.float64), TypeError, "float32"),
        (2, np.ones((1, 16), np.float32), ValueError, "shape"),
        (3, np.empty(5, np.float32), ValueError, "shape"),
        (3, np.empty(4, np.float64), TypeError, "float32"),
        (3, bytes(16), TypeError, "C-contiguous"),  # read-only
        (3, None, TypeError, "buffer"),
    ],
)
def test_bad_input_raises(name: str, slot: int, value: object, error: type, message: str) -> None:
    args: list[object] = list(_good())
    args[slot] = value
    with pytest.raises(error, match=message):
        KERNELS[name](*args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", KERNELS)
def test_argument_count_and_empty_input(name: str) -> None:
    rows, pos, query, _ = _good()
    with pytest.raises(TypeError, match="4 positional"):
        KERNELS[name](rows, pos, query)  # type: ignore[call-arg]
    empty = np.empty(0, dtype=np.int64)
    KERNELS[name](rows, empty, query, np.empty(0, np.float32))
    KERNELS[name](np.empty((0, 16), np.float16), empty, query, np.empty(0, np.float32))
    flat = np.empty((10, 0), np.float16)
    zeros = np.full(4, np.nan, np.float32)
    KERNELS[name](flat, pos, np.empty(0, np.float32), zeros)
    assert zeros.tolist() == [0.0] * 4
