"""The compressed index kind (hnsw_sq8): an 8-bit quantised graph whose candidates are
re-scored exactly from float rows kept beside it, with every behaviour of the others."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from metamedia.engine.float_rows import FloatRows
from metamedia.engine.index import (
    SQ_MIN_TRAIN_ROWS,
    IndexParams,
    Neighbours,
    PlanCosts,
    VectorIndex,
)
from metamedia.engine.vectors import normalize

DIM = 64


def _clustered(n: int, seed: int = 0, centres: int = 50) -> np.ndarray:
    """Unit vectors in clusters of unequal spread over dimensions of unequal scale:
    closer to sentence embeddings than uniform random vectors are."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.3, 1.5, DIM)
    points = rng.normal(size=(centres, DIM))[rng.integers(0, centres, n)]
    spread = rng.uniform(0.2, 0.6, size=(n, 1))
    return normalize((points + spread * rng.normal(size=(n, DIM))) * scale)


def _sq8() -> VectorIndex:
    return VectorIndex(DIM, IndexParams(kind="hnsw_sq8", ef_search=64))


def _recall(index: VectorIndex, queries: np.ndarray, allowed: np.ndarray | None = None) -> float:
    hits = 0
    for q in queries:
        truth = set(index.exact_search(q, 10, allowed).keys.tolist())
        hits += len(truth & set(index.search(q, 10, allowed).keys.tolist()))
    return hits / (10 * int(queries.shape[0]))


@pytest.fixture(scope="module")
def built() -> tuple[VectorIndex, np.ndarray]:
    vecs = _clustered(6100)
    index = _sq8()
    index.upsert(np.arange(1000, 7000), vecs[:6000])
    return index, vecs[6000:]  # held-out queries from the same distribution


def test_recall_at_10_against_exact(built: tuple[VectorIndex, np.ndarray]) -> None:
    index, queries = built
    assert index.kind == "hnsw_sq8" and index.plan(index.positions, 10)[0] == "graph"
    assert _recall(index, queries) >= 0.95


def test_scores_are_exact_inner_products(built: tuple[VectorIndex, np.ndarray]) -> None:
    index, queries = built
    found = index.search(queries[0], 10)
    assert found.plan == "graph" and not found.exact
    rows = np.asarray(index.vectors()[index.positions_for(found.keys)])
    np.testing.assert_allclose(found.scores, rows @ queries[0], rtol=1e-5, atol=1e-6)
    assert np.all(np.diff(found.scores) <= 1e-7)


def test_rescoring_is_what_keeps_recall(built: tuple[VectorIndex, np.ndarray]) -> None:
    """Without re-scoring (one candidate per result) the quantised order loses hits."""
    index, queries = built
    bare = VectorIndex.from_state(
        {**index.state(), "rescore": np.array([1, 1])}, floats=np.asarray(index.vectors())
    )
    assert bare.params.rescore_factor == 1
    assert _recall(bare, queries) <= _recall(index, queries)


@pytest.mark.parametrize("every", [2, 20, 500])
def test_masked_search_equals_exact_under_selective_masks(
    built: tuple[VectorIndex, np.ndarray], every: int
) -> None:
    index, queries = built
    allowed = np.zeros(index.positions, dtype=bool)
    allowed[::every] = True
    for q in queries[:20]:
        found = index.search(q, 10, allowed)
        truth = index.exact_search(q, 10, allowed)
        assert found.keys.shape[0] == 10
        assert set(index.positions_for(found.keys).tolist()) <= set(np.flatnonzero(allowed))
        if every >= 20:  # the planner's exact plan over the allowed float rows
            assert found.plan == "exact" and found.keys.tolist() == truth.keys.tolist()
    assert _recall(index, queries[:20], allowed) >= 0.95


def test_walk_returning_too_few_falls_back_to_exact(
    built: tuple[VectorIndex, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, queries = built
    allowed = np.zeros(index.positions, dtype=bool)
    allowed[::3] = True
    monkeypatch.setattr(index, "costs", PlanCosts(exact_per_row_us=1e3))  # the walk is cheaper
    assert index.plan(int(allowed.sum()), 10)[0] == "graph_wide"
    walk = index._rescored_search

    def short(*args: Any) -> Neighbours:
        found = walk(*args)
        return Neighbours(found.keys[:3], found.scores[:3], found.exact, found.plan)

    monkeypatch.setattr(index, "_rescored_search", short)
    found = index.search(queries[0], 10, allowed)
    truth = index.exact_search(queries[0], 10, allowed)
    assert found.plan == "exact" and found.keys.tolist() == truth.keys.tolist()


def test_tombstones_and_replacements_are_respected() -> None:
    vecs = _clustered(2000, seed=4)
    index = _sq8()
    index.upsert(np.arange(2000), vecs)
    index.remove(np.arange(0, 2000, 2))
    index.upsert([1], vecs[:1])  # key 1 now holds key 0's vector, at a new position
    assert len(index) == 1000 and index.positions == 2001
    for q in vecs[:30]:
        keys = index.search(q, 10).keys.tolist()
        assert all(k % 2 == 1 for k in keys)
    assert index.search(vecs[0], 1).keys.tolist() == [1]
    np.testing.assert_array_equal(index.vector_of(1), vecs[0])
    assert index.vector_of(0) is None


def test_vectors_are_the_float_rows_by_position(built: tuple[VectorIndex, np.ndarray]) -> None:
    index, _ = built
    rows = index.vectors()
    assert isinstance(rows, FloatRows) and rows.shape == (6000, DIM)
    assert index.float_rows is rows
    positions = index.positions_for(np.array([1005, 6999]))
    np.testing.assert_array_equal(rows[positions], np.asarray(rows)[positions])
    np.testing.assert_array_equal(rows[int(positions[0])], index.vector_of(1005))


def test_calibrate_measures_the_compressed_walk(built: tuple[VectorIndex, np.ndarray]) -> None:
    index, _ = built
    costs = index.calibrate(samples=6)
    assert costs.graph_per_ef_us > 0 and costs.exact_per_row_us > 0


def test_state_round_trip_with_floats_from_outside(built: tuple[VectorIndex, np.ndarray]) -> None:
    index, queries = built
    state = index.state()
    assert "floats_meta" not in state and state["params"][0] == 2
    with pytest.raises(ValueError):
        VectorIndex.from_state(state)  # the float rows are not in the state
    restored = VectorIndex.from_state(state, floats=np.asarray(index.vectors()).copy())
    assert restored.kind == "hnsw_sq8" and restored.costs == index.costs
    for q in queries[:10]:
        a, b = index.search(q, 10), restored.search(q, 10)
        assert a.keys.tolist() == b.keys.tolist()
        np.testing.assert_array_equal(a.scores, b.scores)


def test_small_first_upsert_trains_on_the_unit_range_and_later_rows_still_rank() -> None:
    """A first upsert too small to sample takes the [-1, 1] range; vectors added later,
    from elsewhere in the space, are still found (re-scoring is exact)."""
    vecs = _clustered(3050, seed=5)
    index = _sq8()
    index.upsert(np.arange(SQ_MIN_TRAIN_ROWS // 10), vecs[: SQ_MIN_TRAIN_ROWS // 10])
    index.upsert(np.arange(100, 3000), vecs[100:3000])
    assert _recall(index, vecs[3000:]) >= 0.95


def test_rows_outside_the_trained_range_are_still_found() -> None:
    """Trained on one region of the space, then given vectors from another: their codes
    are clamped to the trained range, and re-scoring keeps recall."""
    first = _clustered(2000, seed=7)
    later = _clustered(4050, seed=8)
    index = _sq8()
    index.upsert(np.arange(2000), first)
    index.upsert(np.arange(2000, 6000), later[:4000])
    assert _recall(index, later[4000:]) >= 0.95


def test_float_rows_base_and_tail() -> None:
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    rows = FloatRows(4, base)
    rows.append(np.full((2, 4), 7.0, dtype=np.float32))
    assert len(rows) == 5 and rows.base_rows == 3
    np.testing.assert_array_equal(rows[[4, 0]], np.array([[7.0] * 4, [0, 1, 2, 3]]))
    np.testing.assert_array_equal(rows[2:4], np.array([[8, 9, 10, 11], [7.0] * 4]))
    np.testing.assert_array_equal(rows[-1], np.full(4, 7.0))
    mask = np.array([True, False, False, False, True])
    np.testing.assert_array_equal(rows[mask], rows[[0, 4]])
    longer = np.vstack([base, np.full((1, 4), 7.0, dtype=np.float32)])
    rows.rebase(longer)
    assert rows.base_rows == 4 and len(rows) == 5
    np.testing.assert_array_equal(np.asarray(rows)[3:], np.full((2, 4), 7.0))
    found, sims = rows.dot_top(np.ones(4, dtype=np.float32), 2, np.arange(5))
    assert found[0] == 2 and found[1] in (3, 4) and sims.tolist() == [38.0, 28.0]
