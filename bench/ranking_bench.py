"""Micro-benchmarks of the per-request math: batch similarity, fusion, re-ranking.

These run inside every search, after retrieval, so each must stay far below
the end-to-end budget. Inputs are shaped like a real request: real MiniLM
vectors, two 500-candidate lists that partly overlap (as keyword and vector
candidates do), real release years. Medians over many repetitions, because
single calls are microseconds and the tail is scheduler noise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.report import Metric, at_most, fmt
from bench.timing import summarize, time_calls_us
from metamedia.engine.rank import (
    RankedList,
    mmr,
    recency_boost,
    reciprocal_rank_fusion,
    weighted_fusion,
)
from metamedia.engine.vectors import FloatArray, batch_dot, top_k

SECTION = "Ranking math (single call)"
CANDIDATES = 500


def _lists(n_items: int, rng: np.random.Generator) -> tuple[RankedList, RankedList]:
    """Two best-first candidate lists sharing about half their keys."""
    pool = rng.choice(n_items, size=CANDIDATES * 2, replace=False).astype(np.int64)
    first = pool[:CANDIDATES]
    shared = rng.choice(first, size=CANDIDATES // 2, replace=False)
    second = np.concatenate([shared, pool[CANDIDATES : CANDIDATES + CANDIDATES // 2]])
    rng.shuffle(second)
    s1 = np.sort(rng.random(CANDIDATES).astype(np.float32))[::-1].copy()
    s2 = np.sort(rng.random(CANDIDATES).astype(np.float32) * 20)[::-1].copy()
    return RankedList(first, s1), RankedList(second, s2)


def run(vectors: FloatArray, years: list[int], reps: int) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    query = vectors[int(rng.integers(vectors.shape[0]))].copy()
    rows = np.ascontiguousarray(vectors[rng.choice(vectors.shape[0], 1000, replace=False)])
    a, b = _lists(vectors.shape[0], rng)
    fused = reciprocal_rank_fusion([a, b])
    top = fused.keys[:CANDIDATES]
    relevance = fused.scores[:CANDIDATES].copy()
    cand_vectors = np.ascontiguousarray(vectors[top % vectors.shape[0]])
    cand_years = rng.choice(np.asarray(years, dtype=np.float64), CANDIDATES)
    scores_1k = batch_dot(query, rows)

    cases = {
        "batch_dot": lambda: batch_dot(query, rows),
        "batch_dot + top_k(10)": lambda: top_k(batch_dot(query, rows), 10),
        "top_k(10) of 1000": lambda: top_k(scores_1k, 10),
        "rrf": lambda: reciprocal_rank_fusion([a, b]),
        "weighted_fusion": lambda: weighted_fusion([a, b]),
        "recency_boost": lambda: recency_boost(relevance, cand_years, 2025, 10.0, 0.2),
        "mmr": lambda: mmr(relevance, cand_vectors, 10, 0.3),
    }
    out: dict[str, Any] = {"reps": reps, "fused_union": int(fused.keys.shape[0])}
    for name, fn in cases.items():
        n = reps if name != "mmr" else max(reps // 10, 50)
        out[name] = summarize(time_calls_us(fn, n, warmup=max(10, n // 20))).as_dict()
    return out


def metrics(raw: dict[str, Any]) -> list[Metric]:
    def p50(name: str) -> float:
        return float(raw[name]["p50"])

    def note(name: str, extra: str = "") -> str:
        r = raw[name]
        return f"median of {r['n']}; p95 {fmt(r['p95'])} µs" + (f"; {extra}" if extra else "")

    union = raw["fused_union"]
    return [
        at_most(
            SECTION,
            "batch_dot: 1 query x 1,000 vectors (384-d)",
            p50("batch_dot"),
            "µs",
            100,
            note("batch_dot"),
        ),
        Metric(
            SECTION,
            "batch_dot + top_k(10) over 1,000",
            p50("batch_dot + top_k(10)"),
            "µs",
            notes=note("batch_dot + top_k(10)"),
        ),
        at_most(
            SECTION,
            "RRF fusion of 2 x 500 candidates",
            p50("rrf") / 1000,
            "ms",
            1.0,
            note("rrf", f"{union} keys after union"),
        ),
        Metric(
            SECTION,
            "weighted (min-max) fusion of 2 x 500",
            p50("weighted_fusion") / 1000,
            "ms",
            notes=note("weighted_fusion"),
        ),
        Metric(
            SECTION,
            "re-rank: recency_boost of 500 fused",
            p50("recency_boost"),
            "µs",
            notes=note("recency_boost"),
        ),
        Metric(
            SECTION,
            "re-rank: MMR picks 10 of 500 (diversity 0.3)",
            p50("mmr") / 1000,
            "ms",
            notes=note("mmr", "includes the 500x500 similarity matrix"),
        ),
    ]
