"""Embedding throughput and latency of the product's sentence model on real text.

Texts are the exact strings ingest embeds (`MediaItem.embedding_text()` of real
Wikipedia films), so throughput here predicts ingest cost. Single-query latency
uses real Reddit TOMT queries cut to 200 characters, the size a search request
typically carries; it is the floor under every cold hybrid/semantic search.
"""

from __future__ import annotations

import time
from typing import Any

from bench.datasets import load_wikipedia_films, tomt_queries
from bench.report import Metric
from bench.timing import Stopwatch, summarize
from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.formats.wikipedia import map_film
from metamedia.services.runtime import shared_embedder
from metamedia.services.validation import validate_item

SECTION = "Embedding (all-MiniLM-L6-v2, CPU)"


def film_texts(n: int) -> list[str]:
    """`n` real embedding texts spread evenly over the catalog (deterministic)."""
    films = load_wikipedia_films()
    chosen = films[:: max(1, len(films) // n)][:n]
    return [validate_item(map_film(f)).embedding_text() for f in chosen]


def query_texts(n: int, max_chars: int = 200) -> list[str]:
    """Real TOMT validation queries, truncated at a word boundary."""
    out = []
    for q in tomt_queries("validation")[:n]:
        text = q.query if len(q.query) <= max_chars else q.query[:max_chars].rsplit(" ", 1)[0]
        out.append(text)
    return out


def run(n_texts: int, n_batches: int, n_single: int, batch: int = 32) -> dict[str, Any]:
    embedder: Embedder = shared_embedder(Settings())
    with Stopwatch() as load:
        embedder.encode(["warm up the model"])
    texts = film_texts(n_texts)
    embedder.encode(texts[:64])  # first full batch pays one-off allocation costs
    with Stopwatch() as bulk:
        vectors = embedder.encode(texts)
    assert vectors.shape == (len(texts), embedder.dim)

    batch_ms: list[float] = []
    for i in range(n_batches):
        chunk = texts[(i * batch) % len(texts) :][:batch]
        start = time.perf_counter()
        embedder.encode(chunk)
        batch_ms.append((time.perf_counter() - start) * 1000)

    single_ms: list[float] = []
    queries = query_texts(n_single)
    embedder.encode(queries[:1])
    for query in queries:
        start = time.perf_counter()
        embedder.encode([query])
        single_ms.append((time.perf_counter() - start) * 1000)

    chars = sum(len(t) for t in texts) / max(len(texts), 1)
    return {
        "model_load_s": load.seconds,
        "texts": len(texts),
        "mean_chars": chars,
        "bulk_s": bulk.seconds,
        "texts_per_s": len(texts) / bulk.seconds,
        "batch_size": batch,
        "batch_ms": summarize(batch_ms).as_dict(),
        "single_query_chars": sum(len(q) for q in queries) / max(len(queries), 1),
        "single_ms": summarize(single_ms).as_dict(),
        "embedder_batch_size": getattr(embedder, "batch_size", None),
    }


def metrics(raw: dict[str, Any]) -> list[Metric]:
    b, s = raw["batch_ms"], raw["single_ms"]
    return [
        Metric(
            SECTION,
            f"throughput, {raw['texts']} real plots",
            raw["texts_per_s"],
            "texts/s",
            notes=f"mean {raw['mean_chars']:.0f} chars (title. genres. plot), "
            f"encode batch {raw['embedder_batch_size']}, {raw['bulk_s']:.1f} s",
        ),
        Metric(
            SECTION,
            f"batch of {raw['batch_size']} latency p50 / p95",
            b["p50"],
            "ms",
            display=f"{b['p50']:.0f} / {b['p95']:.0f} ms",
            notes=f"{b['n']} batches",
        ),
        Metric(
            SECTION,
            "single query latency p50 / p95",
            s["p50"],
            "ms",
            display=f"{s['p50']:.1f} / {s['p95']:.1f} ms",
            notes=f"{s['n']} TOMT queries, mean {raw['single_query_chars']:.0f} chars; "
            f"model load {raw['model_load_s']:.1f} s",
        ),
    ]
