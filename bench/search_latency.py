"""`python -m bench.search_latency`: `/v1/search` at c=1 by query length, and serving memory.

The product's own `metamedia serve` runs in a subprocess over a private copy
of the cached full catalog, on 127.0.0.1. Requests go one at a time (c=1),
each query text sent once (fresh: no result or embedding cache hit), in three
groups: short queries (catalog titles and everyday descriptions, under 200
characters), tip-of-the-tongue requests cut to 200 characters, and full-length
requests of 1,000 characters or more. The server's resident memory is read
after the run, and whether torch is mapped into it. Writes
bench/results/search-latency.md and .json.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import ingest_bench
from bench.datasets import tomt_queries
from bench.http_bench import Server
from bench.report import header_lines, machine_info, write_json
from bench.timing import summarize

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "results"


def _groups(catalog: Path, n: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    descriptive = [
        json.loads(line)["query"]
        for line in (BENCH_DIR / "data" / "descriptive-train.jsonl").read_text().splitlines()
    ]
    path = catalog / "catalog.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        titles = [row[0] for row in conn.execute("SELECT title FROM media ORDER BY pk")]
    films = rng.sample(titles, n)
    tomt = [q.query for q in tomt_queries("train", max_chars=None)]
    rng.shuffle(tomt)
    cut = [t[:200].rsplit(" ", 1)[0] for t in tomt[: 3 * n]]
    long = [t for t in tomt if len(t) >= 1000][:n]
    short = [q for pair in zip(descriptive, films, strict=False) for q in pair][:n]
    return {
        "short (<200 chars)": short,
        "tomt cut to 200 chars": cut[:n],
        "long (>=1000 chars)": long,
    }


def _torch_mapped(pid: int) -> bool:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "libtorch" in maps


def run(n: int, seed: int) -> dict[str, Any]:
    catalog = ingest_bench.ensure_catalog(BENCH_DIR / ".cache", False).data_dir
    work = Path(tempfile.mkdtemp(prefix="latency-", dir=BENCH_DIR / ".cache"))
    try:
        data_dir = ingest_bench.copy_catalog(catalog, work / "catalog")
        groups = _groups(catalog, n, seed)
        out: dict[str, Any] = {"groups": {}}
        with Server(data_dir, work / "server.log") as server:
            proc = psutil.Process(server.proc.pid if server.proc else 0)
            with httpx.Client(base_url=server.base_url, timeout=60) as client:
                client.post("/v1/search", json={"query": "warm up the model"})
                for name, queries in groups.items():
                    took: list[float] = []
                    for query in queries:
                        started = time.perf_counter()
                        response = client.post("/v1/search", json={"query": query})
                        took.append((time.perf_counter() - started) * 1000)
                        response.raise_for_status()
                    chars = sum(len(q) for q in queries) / max(len(queries), 1)
                    out["groups"][name] = {
                        "requests": len(queries),
                        "avg_chars": round(chars),
                        **summarize(took).as_dict(),
                    }
            out["rss_mb"] = round(proc.memory_info().rss / 2**20, 1)
            out["torch_mapped"] = _torch_mapped(proc.pid)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def render(raw: dict[str, Any], command: str, started: str, seconds: float) -> str:
    lines = [
        *header_lines("search latency", command, False, started, seconds, machine_info()),
        "",
        "| queries | requests | avg chars | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, g in raw["groups"].items():
        lines.append(
            f"| {name} | {g['requests']} | {g['avg_chars']} | {g['p50']:.1f} | "
            f"{g['p95']:.1f} | {g['p99']:.1f} |"
        )
    lines += [
        "",
        f"Server resident memory after the run: {raw['rss_mb']} MB; "
        f"torch mapped into the server: {raw['torch_mapped']}.",
        "c=1, each query sent once (no cache hits), hybrid, limit 10, full catalog.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 100
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    raw = run(n, seed=11)
    command = "python -m bench.search_latency " + " ".join(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "search-latency.md").write_text(
        render(raw, command.strip(), started, time.perf_counter() - clock)
    )
    write_json(OUT / "search-latency.json", raw)
    print(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
