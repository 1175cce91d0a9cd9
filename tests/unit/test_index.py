"""Vector index: exact and HNSW behind one interface, masked search that fills k."""

from __future__ import annotations

import numpy as np
import pytest

from metamedia.engine.index import IndexKind, IndexParams, PlanCosts, VectorIndex
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
    allowed[::10] = True  # 10%: whichever plan the cost model picks
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
    index.upsert([1], np.ones((1, 4), dtype=np.float32))
    for query in (np.array([np.inf, 0, 0, 0], dtype=np.float32), [np.nan, 0.0, 0.0, 0.0]):
        with pytest.raises(BadVectorError, match="NaN"):
            index.search(query, 1)  # the float32 fast path and the general one
    with pytest.raises(BadVectorError, match="one query vector"):
        index.search(np.ones((2, 4), dtype=np.float32), 1)
    assert index.search(np.ones((1, 4)), 1).keys.tolist() == [1]  # a 1-row matrix is fine


def test_positions_for_tracks_upserts_and_removals() -> None:
    index = VectorIndex(4)
    index.upsert([10, 20, 30], np.eye(4, dtype=np.float32)[:3])
    assert index.positions_for([30, 10, 99]).tolist() == [2, 0, -1]
    index.upsert([10], np.eye(4, dtype=np.float32)[3:4])
    index.remove([20])
    assert index.positions_for([10, 20, 30]).tolist() == [3, -1, 2]


def _hnsw(n: int, seed: int, kind: IndexKind = "hnsw") -> tuple[VectorIndex, np.ndarray]:
    vecs = _clustered(n, seed=seed)
    index = VectorIndex(32, IndexParams(kind=kind, exact_fraction=0.001))
    index.upsert(np.arange(n), vecs)
    return index, vecs


def test_the_planner_picks_by_cost_and_every_plan_answers_right() -> None:
    """Exact costs grow with the rows a filter allows, the filtered walk with 1 /
    the fraction allowed: so cheap exact rows send a 30% filter to exact, cheap graph
    steps send it to the walk, and an unfiltered search takes the plain walk."""
    index, vecs = _hnsw(5000, seed=4)
    allowed = np.zeros(5000, dtype=bool)
    allowed[::3] = True  # ~33%
    truth = index.exact_search(vecs[9], 10, allowed).keys.tolist()
    plans = {}
    for name, costs in {
        "cheap rows": PlanCosts(exact_per_row_us=0.01, graph_per_ef_us=50.0),
        "cheap walk": PlanCosts(exact_per_row_us=50.0, scan_per_row_us=50.0, graph_per_ef_us=0.01),
    }.items():
        index.costs = costs
        found = index.search(vecs[9], 10, allowed)
        plans[name] = found.plan
        assert all(k % 3 == 0 for k in found.keys.tolist())
        assert len(set(found.keys.tolist()) & set(truth)) >= 9
    assert plans == {"cheap rows": "exact", "cheap walk": "graph_wide"}
    index.costs = PlanCosts()
    assert index.search(vecs[9], 10).plan == "graph"
    assert index.plan(5000, 10)[0] == "graph"
    # The operator's floor: a filter under exact_fraction is exact whatever the costs.
    floor = VectorIndex(32, IndexParams(kind="hnsw", exact_fraction=0.5))
    floor.costs = PlanCosts(exact_per_row_us=1e6, scan_per_row_us=1e6)
    floor.upsert(np.arange(1000), vecs[:1000])
    assert floor.plan(400, 10)[0] == "exact"
    assert VectorIndex(32).plan(1, 10)[0] == "exact"  # a flat index is always exact


@pytest.mark.parametrize("kind", ["hnsw", "hnsw_fp16"])
def test_both_exact_ways_agree_with_brute_force(kind: str) -> None:
    """The exact plan gathers the allowed rows or lets faiss scan its storage in
    place with the mask as a bitmap, whichever the costs say is cheaper; each way, on
    a few rows and on many, gives brute force's neighbours."""
    index, _ = _hnsw(4000, seed=5, kind=kind)
    vecs = np.asarray(index.vectors())  # as stored: float16 rounds them
    ways = {
        "gather": PlanCosts(exact_per_row_us=0.0, scan_per_position_us=1.0),
        "scan": PlanCosts(exact_per_row_us=1e3, scan_per_position_us=0.0),
    }
    for name, costs in ways.items():
        index.costs = costs
        for step in (40, 4, 1):  # 100, 1,000 and all 4,000 rows
            allowed = np.zeros(4000, dtype=bool)
            allowed[::step] = True
            found = index.search(vecs[2], 10, allowed if step > 1 else None)
            sims = vecs[::step] @ vecs[2]
            expected = (np.argsort(-sims, kind="stable")[:10] * step).tolist()
            assert found.plan == "exact" or step == 1, (name, step)
            if step == 1:
                continue  # unfiltered takes the walk; covered elsewhere
            assert found.keys.tolist() == expected, (name, step)
            assert np.allclose(found.scores, np.sort(sims)[::-1][:10], atol=1e-5)


def test_calibrated_costs_are_saved_with_the_index() -> None:
    index, _ = _hnsw(3000, seed=6)
    costs = index.calibrate(samples=8)
    assert costs.exact_per_row_us > 0 and costs.graph_per_ef_us > 0
    restored = VectorIndex.from_state(index.state())
    assert restored.costs == costs
    old = {k: v for k, v in index.state().items() if k != "plan_costs"}
    assert VectorIndex.from_state(old).costs == PlanCosts()  # files from before the planner
    # Files from before the in-place scan had its own costs hold five numbers.
    five = VectorIndex.from_state({**index.state(), "plan_costs": costs.as_array()[:5]}).costs
    assert five.graph_per_ef_us == costs.graph_per_ef_us
    assert five.scan_per_row_us == PlanCosts().scan_per_row_us
    with pytest.raises(ValueError, match="non-negative"):
        VectorIndex.from_state({**index.state(), "plan_costs": np.array([1.0, -2.0, 0, 0, 0])})


def test_a_deep_unfiltered_list_keeps_its_recall() -> None:
    """Hybrid search asks for hundreds of passages; efSearch k + margin (not 2k) must
    still return nearly all of the true top-k."""
    index, data = _hnsw(6000, seed=5)
    # make the walk the cheaper plan
    index.costs = PlanCosts(exact_per_row_us=100.0, scan_per_row_us=100.0)
    query = data[17] + 0.05 * np.random.default_rng(1).standard_normal(data.shape[1])
    found = index.search(query, 600)
    truth = np.argsort(-(data @ normalize(query[None, :])[0]))[:600]
    assert found.plan == "graph"
    assert found.keys.shape[0] == 600
    assert len(set(found.keys.tolist()) & set(truth.tolist())) / 600 >= 0.9
