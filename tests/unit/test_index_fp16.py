"""The half-precision index kind (hnsw_fp16): faiss stores every vector as float16 and
searches read those codes directly (no re-scoring), with every behaviour of the others."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from metamedia.config import Settings
from metamedia.engine.float_rows import FloatRows, half_to_float
from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.engine.vectors import normalize
from metamedia.services.indexing import index_kind

DIM = 64


def _clustered(n: int, seed: int = 0, centres: int = 50) -> np.ndarray:
    """Unit vectors in clusters of unequal spread over dimensions of unequal scale."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.3, 1.5, DIM)
    points = rng.normal(size=(centres, DIM))[rng.integers(0, centres, n)]
    spread = rng.uniform(0.2, 0.6, size=(n, 1))
    return normalize((points + spread * rng.normal(size=(n, DIM))) * scale)


def _fp16(**kwargs: Any) -> VectorIndex:
    return VectorIndex(DIM, IndexParams(kind="hnsw_fp16", ef_search=64, **kwargs))


def _truth(vectors: np.ndarray, keys: np.ndarray, q: np.ndarray, k: int) -> set[int]:
    """Top-k keys by float32 inner product over the inserted (not stored) vectors."""
    return set(keys[np.argsort(-(vectors @ q))[:k]].tolist())


@pytest.fixture(scope="module")
def built() -> tuple[VectorIndex, np.ndarray, np.ndarray, np.ndarray]:
    vecs = _clustered(6100)
    keys = np.arange(1000, 7000)
    index = _fp16()
    index.upsert(keys, vecs[:6000])
    return index, keys, vecs[:6000], vecs[6000:]  # held-out queries


def test_recall_at_10_against_float32_exact(
    built: tuple[VectorIndex, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    index, keys, vecs, queries = built
    assert index.kind == "hnsw_fp16" and index.plan(index.positions, 10)[0] == "graph"
    hits = sum(
        len(_truth(vecs, keys, q, 10) & set(index.search(q, 10).keys.tolist())) for q in queries
    )
    assert hits / (10 * queries.shape[0]) >= 0.95
    # The exact plan over the float16 rows matches float32 ground truth almost always.
    exact_hits = sum(
        len(_truth(vecs, keys, q, 10) & set(index.exact_search(q, 10).keys.tolist()))
        for q in queries
    )
    assert exact_hits / (10 * queries.shape[0]) >= 0.99


def test_vectors_are_float16_storage_read_as_float32(
    built: tuple[VectorIndex, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    index, keys, vecs, _ = built
    stored = index.vectors()
    assert isinstance(stored, FloatRows) and stored.shape == (6000, DIM)
    assert stored.base_rows == 6000 and stored.tail_bytes == 0  # no copy of the catalog
    rows = stored[np.array([0, 17, 5999])]
    assert rows.dtype == np.float32 and np.abs(rows - vecs[[0, 17, 5999]]).max() < 1e-3
    assert stored[3].dtype == np.float32 and stored[1:4].dtype == np.float32
    assert np.abs(np.asarray(stored) - vecs).max() < 1e-3
    one = index.vector_of(int(keys[42]))
    assert one is not None and one.dtype == np.float32
    assert np.abs(one - vecs[42]).max() < 1e-3
    # Scores are inner products with the stored rows (within float16 rounding of exact).
    q = vecs[7]
    found = index.search(q, 5)
    assert np.allclose(found.scores, vecs[found.keys - 1000] @ q, atol=2e-3)


def test_masked_search_equals_exact_under_selective_masks(
    built: tuple[VectorIndex, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    index, _, _, queries = built
    rng = np.random.default_rng(3)
    seen = set()
    for fraction in (0.01, 0.05, 0.3):
        mask = rng.random(index.positions) < fraction
        for q in queries[:30]:
            got = index.search(q, 10, mask)
            want = index.exact_search(q, 10, mask)
            seen.add(got.plan)
            assert set(got.keys.tolist()) <= {int(k) for k in index.key_at(np.flatnonzero(mask))}
            if got.plan == "exact":
                assert got.keys.tolist() == want.keys.tolist()
            else:
                assert len(set(got.keys.tolist()) & set(want.keys.tolist())) >= 9
    assert "exact" in seen
    # A mask of more than GATHER_MAX_ROWS rows takes faiss's scan of the float16 storage
    # with a bitmap: the same answer as gathering the rows.
    mask = rng.random(index.positions) < 0.2
    q = queries[0]
    scanned = index.exact_search(q, 10, mask)
    rows = np.flatnonzero(mask)
    sims = index.vectors()[rows] @ q
    gathered = index.key_at(rows[np.argsort(-sims)[:10]])
    assert scanned.keys.tolist() == gathered.tolist()


def test_tombstones_updates_and_fallback_fill_k() -> None:
    vecs = _clustered(3000, seed=1)
    index = _fp16(exact_fraction=0.0)
    index.upsert(np.arange(3000), vecs)
    q = vecs[10]
    assert index.search(q, 1).keys.tolist() == [10]
    index.remove([10])
    assert 10 not in index.search(q, 10).keys.tolist() and index.tombstones == 1
    index.upsert([11], [vecs[10]])  # update: appends, tombstones the old position
    assert index.search(q, 1).keys.tolist() == [11] and index.positions == 3001
    assert index.vectors().shape == (3001, DIM)  # the view is rebuilt after the add
    one = index.vector_of(11)
    assert one is not None and np.abs(one - vecs[10]).max() < 1e-3
    # A sparse mask far from the query: the walk alone may miss, the fallback fills k.
    mask = np.zeros(index.positions, dtype=np.bool_)
    mask[np.arange(0, 3000, 97)] = True
    got = index.search(q, 20, mask)
    assert got.keys.shape[0] == 20 and set(got.keys.tolist()) <= set(range(0, 3000, 97))


def test_state_round_trip_gives_identical_results(
    built: tuple[VectorIndex, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    index, _, _, queries = built
    index.calibrate(samples=8)
    restored = VectorIndex.from_state(index.state())
    assert restored.kind == "hnsw_fp16" and restored.costs == index.costs
    assert restored.float_rows is None  # faiss's serialisation carries the codes
    assert np.array_equal(np.asarray(restored.vectors()), np.asarray(index.vectors()))
    mask = np.random.default_rng(5).random(index.positions) < 0.1
    for q in queries[:20]:
        for allowed in (None, mask):
            a, b = index.search(q, 10, allowed), restored.search(q, 10, allowed)
            assert a.keys.tolist() == b.keys.tolist() and np.array_equal(a.scores, b.scores)


def test_auto_kind_choice() -> None:
    auto = Settings(hnsw_threshold=20_000, compressed_threshold=200_000)
    assert index_kind(auto, 19_999) == "flat"
    assert index_kind(auto, 20_000) == "hnsw_fp16"
    assert index_kind(auto, 199_999) == "hnsw_fp16"
    assert index_kind(auto, 200_000) == "hnsw_sq8"
    assert index_kind(Settings(vector_index_kind="hnsw_fp16"), 5) == "hnsw_fp16"
    assert index_kind(Settings(vector_index_kind="hnsw"), 10**5) == "hnsw"


def test_half_rows_convert_exactly() -> None:
    """The bit-arithmetic conversion of float16 rows gives numpy's cast, bit for bit,
    for every finite half (zeros, subnormals and both signs included), and the
    inner products of `FloatRows.dot` equal those of the converted rows."""
    every = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = every[np.isfinite(every)]
    assert np.array_equal(
        half_to_float(finite).view(np.int32), finite.astype(np.float32).view(np.int32)
    )
    halves = normalize(np.random.default_rng(3).normal(size=(50, DIM))).astype(np.float16)
    rows = FloatRows(DIM, halves)
    query = normalize(np.random.default_rng(4).normal(size=(1, DIM)))[0]
    positions = np.array([49, 3, 3, 17], dtype=np.int64)
    expected = halves[positions].astype(np.float32) @ query
    assert np.allclose(rows.dot(positions, query), expected, rtol=1e-6, atol=1e-7)
    assert np.array_equal(rows[positions], halves[positions].astype(np.float32))
