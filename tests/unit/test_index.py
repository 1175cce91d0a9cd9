"""Vector index: exact and HNSW behind one interface, masked search that fills k."""

from __future__ import annotations

import numpy as np
import pytest

from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.engine.vectors import BadVectorError, normalize


def _clustered(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    return normalize(centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, dim)))


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_finds_the_exact_neighbours(kind: str) -> None:
    vecs = _clustered(2000)
    index = VectorIndex(32, IndexParams(kind=kind))  # type: ignore[arg-type]
    index.upsert(np.arange(100, 2100), vecs)
    truth = index.exact_search(vecs[5], 10)
    found = index.search(vecs[5], 10)
    assert found.keys[0] == 105
    assert len(set(found.keys.tolist()) & set(truth.keys.tolist())) >= 9


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_selective_mask_still_fills_k(kind: str) -> None:
    vecs = _clustered(5000, seed=1)
    index = VectorIndex(32, IndexParams(kind=kind))  # type: ignore[arg-type]
    index.upsert(np.arange(5000), vecs)
    allowed = np.zeros(5000, dtype=bool)
    allowed[::100] = True  # 1% of the items
    found = index.search(vecs[7], 10, allowed)
    assert found.keys.shape[0] == 10
    assert all(k % 100 == 0 for k in found.keys.tolist())
    truth = index.exact_search(vecs[7], 10, allowed)
    assert found.keys.tolist() == truth.keys.tolist()


def test_moderate_mask_on_hnsw_fills_k_with_allowed_items_only() -> None:
    vecs = _clustered(5000, seed=2)
    index = VectorIndex(32, IndexParams(kind="hnsw"))
    index.upsert(np.arange(5000), vecs)
    allowed = np.zeros(5000, dtype=bool)
    allowed[::10] = True  # 10%: above the exact threshold, so HNSW with a selector
    found = index.search(vecs[3], 50, allowed)
    assert found.keys.shape[0] == 50
    assert all(k % 10 == 0 for k in found.keys.tolist())


def test_upsert_replaces_and_remove_tombstones() -> None:
    index = VectorIndex(4)
    index.upsert([1, 2], np.eye(4, dtype=np.float32)[:2])
    index.upsert([1], np.eye(4, dtype=np.float32)[2:3])
    assert len(index) == 2 and index.tombstones == 1
    assert index.search(np.eye(4, dtype=np.float32)[0], 2).keys.tolist() != [1, 2][:1]
    assert index.search(np.eye(4, dtype=np.float32)[2], 1).keys.tolist() == [1]
    assert index.remove([2, 99]) == 1
    assert index.search(np.eye(4, dtype=np.float32)[1], 5).keys.tolist() == [1]


def test_state_round_trip_keeps_everything() -> None:
    vecs = _clustered(300)
    index = VectorIndex(32, IndexParams(kind="hnsw"))
    index.upsert(np.arange(300), vecs)
    index.remove([0, 1])
    restored = VectorIndex.from_state(index.state())
    assert restored.kind == "hnsw" and len(restored) == 298
    assert restored.search(vecs[10], 5).keys.tolist() == index.search(vecs[10], 5).keys.tolist()


def test_bad_vectors_are_refused() -> None:
    index = VectorIndex(4)
    with pytest.raises(BadVectorError, match="dimension 4"):
        index.upsert([1], np.ones((1, 3), dtype=np.float32))
    with pytest.raises(BadVectorError, match="NaN"):
        index.upsert([1], np.array([[np.nan, 0, 0, 0]], dtype=np.float32))
    with pytest.raises(ValueError, match="duplicate"):
        index.upsert([1, 1], np.ones((2, 4), dtype=np.float32))


def test_positions_for_tracks_upserts_and_removals() -> None:
    index = VectorIndex(4)
    index.upsert([10, 20, 30], np.eye(4, dtype=np.float32)[:3])
    assert index.positions_for([30, 10, 99]).tolist() == [2, 0, -1]
    index.upsert([10], np.eye(4, dtype=np.float32)[3:4])
    index.remove([20])
    assert index.positions_for([10, 20, 30]).tolist() == [3, -1, 2]
