"""Runs every search benchmark section in one process and collects one report.

Order matters on a 2-core machine: sections run strictly one after another so
none steals CPU from another's timings, the large vector sets are freed before
the HTTP server starts, and all sections share one private copy of the cached
catalog (removed at the end) so the cache is never mutated. A section that
fails is recorded as an error row and the others still run, so a table is
always written.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import embed_bench, http_bench, ingest_bench, quality_bench, ranking_bench, vector_bench
from bench.datasets import load_wikipedia_films, tomt_queries
from bench.report import Report
from metamedia.config import Settings
from metamedia.engine.vectors import FloatArray
from metamedia.services.runtime import shared_embedder

SECTIONS = ("ingest", "embed", "vector", "ranking", "http", "quality")


@dataclass(frozen=True)
class Sizes:
    """Workload sizes; --quick shrinks the slow ones so the harness smoke-tests fast."""

    embed_texts: int = 2000
    embed_batches: int = 20
    embed_single: int = 100
    ann_queries: int = 500
    ann_size: int = 1_000_000
    real_ms: tuple[int, ...] = (16, 32, 48)
    large_ms: tuple[int, ...] = (32,)
    ef_search: tuple[int, ...] = (32, 64, 96, 128, 256, 512)
    ranking_reps: int = 5000
    http_requests: int = 300
    http_time_limit_s: float = 120.0
    recipe: vector_bench.SyntheticRecipe = field(default_factory=vector_bench.SyntheticRecipe)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            embed_texts=500,
            embed_batches=10,
            embed_single=50,
            ann_size=200_000,
            real_ms=(32,),
            ef_search=(32, 64, 128, 256),
            ranking_reps=1000,
            http_requests=100,
            http_time_limit_s=60.0,
        )


@dataclass(frozen=True)
class Options:
    command: str
    out: Path
    cache_dir: Path
    quick: bool = False
    fresh: bool = False
    only: tuple[str, ...] = SECTIONS
    sizes: Sizes = field(default_factory=Sizes)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _section(report: Report, name: str, fn: Callable[[], None]) -> None:
    _log(f"{name} ...")
    started = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # recorded in the table; the remaining sections still run
        traceback.print_exc()
        report.errors[name] = f"{type(exc).__name__}: {exc}"[:500]
    _log(f"{name} done in {time.perf_counter() - started:.0f} s")


def _query_texts(n: int, max_chars: int = 500) -> list[str]:
    raw = [q.query for q in tomt_queries("validation")] + [q.query for q in tomt_queries("train")]
    return list(dict.fromkeys(t[:max_chars] for t in raw))[:n]


def run(opts: Options) -> Report:
    sizes = opts.sizes
    report = Report(command=opts.command, quick=opts.quick)
    report.machine["load_avg_start"] = [round(x, 2) for x in os.getloadavg()]
    report.raw["sizes"] = asdict(sizes)
    started = time.perf_counter()
    _log("embedded catalog (cached under bench/.cache unless --fresh) ...")
    catalog = ingest_bench.ensure_catalog(opts.cache_dir, opts.fresh)
    report.raw["ingest_with_embedding"] = {**catalog.report, "reused": catalog.reused}
    work = Path(tempfile.mkdtemp(prefix="run-", dir=opts.cache_dir))
    try:
        data_dir = ingest_bench.copy_catalog(catalog.data_dir, work / "catalog")
        _run_sections(report, opts, catalog, data_dir, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    report.seconds = time.perf_counter() - started
    return report


def _run_sections(
    report: Report,
    opts: Options,
    catalog: ingest_bench.CachedCatalog,
    data_dir: Path,
    work: Path,
) -> None:
    sizes = opts.sizes
    state: dict[str, Any] = {}

    def ingest() -> None:
        target = work / "ingest-no-embed"
        try:
            cached = ingest_bench.ingest_without_embedding(data_dir, target)
        finally:
            shutil.rmtree(target, ignore_errors=True)
        report.raw["ingest_without_embedding"] = cached
        report.add(ingest_bench.metrics(catalog, cached))

    def embed() -> None:
        raw = embed_bench.run(sizes.embed_texts, sizes.embed_batches, sizes.embed_single)
        report.raw["embedding"] = raw
        report.add(embed_bench.metrics(raw))

    def real_vectors() -> FloatArray:
        if "real" not in state:
            state["real"] = vector_bench.real_vectors(data_dir)
        vectors: FloatArray = state["real"]
        return vectors

    def vector() -> None:
        real = real_vectors()
        embedder = shared_embedder(Settings())
        queries = vector_bench.query_vectors(embedder, _query_texts(sizes.ann_queries))
        n_real = real.shape[0]
        label = f"real {n_real:,}"
        rows = vector_bench.bench_dataset(
            label, lambda: real, queries, list(sizes.real_ms), list(sizes.ef_search)
        )
        section = f"Vector search k=10, single thread: real catalog ({n_real:,} vectors)"
        note = f"{queries.shape[0]} real TOMT query embeddings"
        report.add(vector_bench.metrics(section, rows, targeted=False, note=note))
        report.raw["vector_real"] = vector_bench.rows_json(rows)
        _log(f"generating {sizes.ann_size:,} synthetic vectors ...")
        big = f"{sizes.ann_size:,}"
        rows = vector_bench.bench_dataset(
            f"synthetic {big}",
            lambda: vector_bench.synthetic(real, sizes.ann_size, sizes.recipe),
            queries,
            list(sizes.large_ms),
            list(sizes.ef_search),
        )
        section = f"Vector search k=10, single thread: {big} vectors from real embeddings"
        note = f"{sizes.recipe.describe()}; " + (
            "quick mode: target is defined at 1M" if sizes.ann_size < 1_000_000 else note
        )
        report.add(vector_bench.metrics(section, rows, targeted=True, note=note))
        report.raw["vector_large"] = {
            "recipe": asdict(sizes.recipe) | {"describe": sizes.recipe.describe()},
            "rows": vector_bench.rows_json(rows),
        }

    def ranking() -> None:
        years = [int(f["year"]) for f in load_wikipedia_films()]
        raw = ranking_bench.run(real_vectors(), years, sizes.ranking_reps)
        report.raw["ranking"] = raw
        report.add(ranking_bench.metrics(raw))

    def http() -> None:
        state.pop("real", None)
        gc.collect()
        raw = http_bench.run(
            data_dir, work / "server.log", sizes.http_requests, sizes.http_time_limit_s
        )
        report.raw["http"] = raw
        report.add(http_bench.metrics(raw, int(catalog.report["inserted"])))

    def quality() -> None:
        raw = quality_bench.run(data_dir)
        report.raw["quality"] = raw
        report.quality.extend(quality_bench.rows(raw))

    steps: dict[str, Callable[[], None]] = {
        "ingest": ingest,
        "embed": embed,
        "vector": vector,
        "ranking": ranking,
        "http": http,
        "quality": quality,
    }
    if "ingest" not in opts.only:  # the cached number is still worth showing
        report.add(ingest_bench.metrics(catalog, None))
    for name in SECTIONS:
        if name in opts.only:
            _section(report, name, steps[name])
