"""Known-item search quality on the full catalog: MRR@10 and recall@100 per mode.

Each Reddit "tip of my tongue" query names exactly one film (its Wikipedia
slug is the media id after ingest), so the rank of that one id measures how
well each retrieval mode finds a half-remembered film. The same queries run in
hybrid, semantic and keyword mode with limit=100 through the search service,
so fusion settings are exactly the product defaults.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.datasets import tomt_queries
from bench.report import QualityRow
from bench.timing import summarize
from metamedia.config import Settings
from metamedia.domain import SearchMode, SearchRequest
from metamedia.services.runtime import Runtime

MODES: tuple[SearchMode, ...] = ("hybrid", "semantic", "keyword")


def run(data_dir: Path, max_queries: int | None = None) -> dict[str, Any]:
    queries = tomt_queries("validation")[:max_queries]
    runtime = Runtime.open(Settings(data_dir=data_dir))
    out: dict[str, Any] = {"queries": len(queries), "modes": {}}
    try:
        runtime.search.embed_query("warm up")
        for mode in MODES:
            ranks: list[int | None] = []
            latency: list[float] = []
            for q in queries:
                request = SearchRequest(query=q.query, mode=mode, limit=100)
                start = time.perf_counter()
                response = runtime.search.search(request)
                latency.append((time.perf_counter() - start) * 1000)
                ids = [hit.id for hit in response.results]
                ranks.append(ids.index(q.gold) + 1 if q.gold in ids else None)
            out["modes"][mode] = {
                "ranks": ranks,
                "latency_ms": summarize(latency).as_dict(),
                **scores(ranks),
            }
    finally:
        runtime.close()
    return out


def scores(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        "mrr_at_10": sum(1.0 / r for r in ranks if r is not None and r <= 10) / n,
        "hits_at_10": sum(1 for r in ranks if r is not None and r <= 10) / n,
        "recall_at_100": sum(1 for r in ranks if r is not None) / n,
    }


def rows(raw: dict[str, Any]) -> list[QualityRow]:
    out = []
    for mode, r in raw["modes"].items():
        note = "semantic query embeddings cached from the hybrid pass" if mode == "semantic" else ""
        out.append(
            QualityRow(
                mode=mode,
                queries=raw["queries"],
                mrr_at_10=r["mrr_at_10"],
                recall_at_100=r["recall_at_100"],
                hits_at_10=r["hits_at_10"],
                p50_ms=r["latency_ms"]["p50"],
                notes=note,
            )
        )
    return out
