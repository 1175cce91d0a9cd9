"""Ranking math: list fusion, diversity and boosts, as pure functions.

Lists are given as arrays of integer keys, best first, with their scores.
Fusion returns one merged order plus, per key, each list's rank and score so
the caller can explain every result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from metamedia.engine.vectors import FloatArray, top_k

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class RankedList:
    """One retriever's output: keys best first, and the retriever's raw scores."""

    keys: IntArray
    scores: FloatArray
    weight: float = 1.0


@dataclass(frozen=True)
class Fused:
    """Merged order; `ranks[i, j]` is key i's 1-based rank in list j (0 = absent)."""

    keys: IntArray
    scores: FloatArray
    ranks: npt.NDArray[np.int32]
    raw_scores: FloatArray


def _union(lists: list[RankedList]) -> tuple[IntArray, npt.NDArray[np.int32], FloatArray]:
    """All keys once, with each list's rank (0 when absent) and raw score (NaN)."""
    if not lists or all(lst.keys.shape[0] == 0 for lst in lists):
        return (
            np.empty(0, dtype=np.int64),
            np.zeros((0, len(lists)), dtype=np.int32),
            np.zeros((0, len(lists)), dtype=np.float32),
        )
    keys = np.unique(np.concatenate([lst.keys for lst in lists]))
    ranks = np.zeros((keys.shape[0], len(lists)), dtype=np.int32)
    raw = np.full((keys.shape[0], len(lists)), np.nan, dtype=np.float32)
    for j, lst in enumerate(lists):
        if lst.keys.shape[0] == 0:
            continue
        rows = np.searchsorted(keys, lst.keys)
        ranks[rows, j] = np.arange(1, lst.keys.shape[0] + 1, dtype=np.int32)
        raw[rows, j] = lst.scores
    return keys, ranks, raw


def _ordered(
    keys: IntArray, scores: FloatArray, ranks: npt.NDArray[np.int32], raw: FloatArray
) -> Fused:
    # Ties are broken by key so the order is deterministic across runs.
    order = np.lexsort((keys, -scores))
    return Fused(keys[order], scores[order].astype(np.float32), ranks[order], raw[order])


def reciprocal_rank_fusion(lists: list[RankedList], k: float = 60.0) -> Fused:
    """RRF: score = sum_j w_j / (k + rank_j). Robust to incomparable score scales."""
    keys, ranks, raw = _union(lists)
    weights = np.array([lst.weight for lst in lists], dtype=np.float64)
    contrib = np.where(ranks > 0, weights / (k + ranks.astype(np.float64)), 0.0)
    return _ordered(keys, contrib.sum(axis=1).astype(np.float32), ranks, raw)


def minmax(scores: FloatArray) -> FloatArray:
    """Scale to [0, 1]; a constant list becomes all ones (every member equally good)."""
    if scores.shape[0] == 0:
        return scores.astype(np.float32)
    lo, hi = float(np.min(scores)), float(np.max(scores))
    if hi - lo <= 1e-12:
        return np.ones_like(scores, dtype=np.float32)
    return ((scores - lo) / (hi - lo)).astype(np.float32)


def weighted_fusion(lists: list[RankedList]) -> Fused:
    """Convex combination of min-max normalised scores; absent counts as 0."""
    keys, ranks, raw = _union(lists)
    total = np.zeros(keys.shape[0], dtype=np.float64)
    weight_sum = sum(lst.weight for lst in lists) or 1.0
    for j, lst in enumerate(lists):
        present = ranks[:, j] > 0
        col = np.zeros(keys.shape[0], dtype=np.float32)
        col[present] = minmax(raw[present, j])
        total += lst.weight * col
    return _ordered(keys, (total / weight_sum).astype(np.float32), ranks, raw)


def recency_boost(
    base: FloatArray,
    years: npt.NDArray[np.float64],
    now_year: int,
    half_life_years: float,
    weight: float,
) -> FloatArray:
    """Multiply scores by 1 + weight * 2^(-age / half_life); unknown years get no boost."""
    age = np.clip(now_year - years, 0.0, None)
    boost = np.where(np.isnan(years), 0.0, np.exp2(-age / max(half_life_years, 1e-9)))
    return (base * (1.0 + weight * boost)).astype(np.float32)


def mmr(relevance: FloatArray, vectors: FloatArray, k: int, diversity: float) -> IntArray:
    """Maximal marginal relevance: pick k indices trading relevance for novelty.

    `diversity` = 0 keeps the relevance order; 1 maximises spread. Vectors are
    unit-normalised rows aligned with `relevance`.
    """
    n = relevance.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if diversity <= 0.0:
        return top_k(relevance, k)
    lam = 1.0 - diversity
    gain = (lam * minmax(relevance)).astype(np.float32)
    sims = (vectors @ vectors.T).astype(np.float32)
    # Before anything is chosen there is no redundancy to penalise.
    max_sim = np.zeros(n, dtype=np.float32)
    chosen = np.empty(k, dtype=np.int64)
    score = gain.copy()
    for step in range(k):
        best = int(np.argmax(score))
        chosen[step] = best
        np.maximum(max_sim, sims[best], out=max_sim)
        score = gain - (1.0 - lam) * max_sim
        score[chosen[: step + 1]] = -np.inf
    return chosen
