"""Known-item search quality on the full catalog: MRR@10 and recall@100 per mode.

Each Reddit "tip of my tongue" query names exactly one film (its Wikipedia
slug is the media id after ingest), so the rank of that one id measures how
well each retrieval mode finds a half-remembered film. The same queries run in
hybrid, semantic and keyword mode with limit=100 through the search service,
so fusion settings are exactly the product defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.datasets import tomt_queries
from bench.report import QualityRow
from bench.timing import summarize
from metamedia.config import Settings
from metamedia.domain import SearchMode
from metamedia.services.evaluation import EvalQuery, evaluate
from metamedia.services.runtime import Runtime

MODES: tuple[SearchMode, ...] = ("hybrid", "semantic", "keyword")


def run(data_dir: Path, max_queries: int | None = None) -> dict[str, Any]:
    """Rank of each query's film per mode, via the service behind `metamedia eval`."""
    queries = [
        EvalQuery(line=i, query=q.query, gold=q.gold)
        for i, q in enumerate(tomt_queries("validation")[:max_queries], start=1)
    ]
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        report = evaluate(runtime, queries, MODES, limit=100)
    finally:
        runtime.close()
    out: dict[str, Any] = {"queries": len(report.ranks), "modes": {}}
    for mode in MODES:
        ranks = [row.rank[mode] for row in report.ranks]
        latency = [row.ms[mode] for row in report.ranks if mode in row.ms]
        out["modes"][mode] = {
            "ranks": ranks,
            "latency_ms": summarize(latency).as_dict(),
            **scores(ranks),
        }
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
