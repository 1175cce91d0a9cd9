"""Fusion, diversity and boosts: pure functions over arrays."""

from __future__ import annotations

import numpy as np

from metamedia.engine.rank import (
    RankedList,
    minmax,
    mmr,
    recency_boost,
    reciprocal_rank_fusion,
    weighted_fusion,
)


def _list(keys: list[int], scores: list[float], weight: float = 1.0) -> RankedList:
    return RankedList(np.array(keys, dtype=np.int64), np.array(scores, dtype=np.float32), weight)


def test_rrf_rewards_items_found_by_both_lists() -> None:
    fused = reciprocal_rank_fusion([_list([1, 2, 3], [9, 8, 7]), _list([3, 4, 1], [0.9, 0.8, 0.7])])
    assert fused.keys[0] in (1, 3)
    assert set(fused.keys[:2].tolist()) == {1, 3}
    row = int(np.flatnonzero(fused.keys == 3)[0])
    assert fused.ranks[row].tolist() == [3, 1]
    expected = 1 / (60 + 3) + 1 / (60 + 1)
    assert abs(float(fused.scores[row]) - expected) < 1e-6


def test_rrf_weights_shift_the_order() -> None:
    lists = [_list([1, 2], [1, 0.5], weight=1.0), _list([2, 1], [1, 0.5], weight=3.0)]
    assert reciprocal_rank_fusion(lists).keys[0] == 2


def test_rrf_of_empty_lists_is_empty() -> None:
    fused = reciprocal_rank_fusion([_list([], []), _list([], [])])
    assert fused.keys.shape == (0,)


def test_weighted_fusion_normalises_scales() -> None:
    # BM25 scores in the tens, cosine in [0, 1]: min-max puts them on one scale.
    fused = weighted_fusion([_list([1, 2], [30.0, 10.0]), _list([2, 1], [0.9, 0.1])])
    assert set(fused.keys.tolist()) == {1, 2}
    assert np.allclose(sorted(fused.scores.tolist()), [0.5, 0.5])


def test_minmax_of_constant_list_is_all_ones() -> None:
    assert minmax(np.array([2.0, 2.0], dtype=np.float32)).tolist() == [1.0, 1.0]


def test_mmr_without_diversity_keeps_relevance_order() -> None:
    rel = np.array([0.1, 0.9, 0.5], dtype=np.float32)
    vecs = np.eye(3, dtype=np.float32)
    assert mmr(rel, vecs, 3, diversity=0.0).tolist() == [1, 2, 0]


def test_mmr_skips_near_duplicates() -> None:
    vecs = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    rel = np.array([1.0, 0.99, 0.5], dtype=np.float32)
    assert mmr(rel, vecs, 2, diversity=0.7).tolist() == [0, 2]


def test_recency_boost_prefers_newer_and_ignores_unknown_years() -> None:
    base = np.ones(3, dtype=np.float32)
    years = np.array([2026.0, 1990.0, np.nan])
    boosted = recency_boost(base, years, now_year=2026, half_life_years=5, weight=1.0)
    assert boosted[0] > boosted[1] > 0.99
    assert boosted[2] == 1.0
