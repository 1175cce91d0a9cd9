"""End-to-end `/v1/search` latency through a real server process under bounded load.

The server is the product's own `metamedia serve` in a subprocess, bound to a
free port on 127.0.0.1 only, over a private copy of the cached catalog. Load is
closed-loop (each client sends its next request when the previous answered),
bounded both in requests and in wall time. Every cold pass uses queries no
earlier pass sent, because the server caches query embeddings: reusing them
would measure the cache, not the search. A separate warm pass repeats queries
on purpose to measure exactly that cache. The load generator shares the
machine's cores with the server, which the notes say.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from bench.datasets import tomt_queries
from bench.report import Metric, at_most, fmt
from bench.timing import summarize

SECTION = "HTTP /v1/search end to end (hybrid, limit 10)"
P95_TARGET_MS = 30.0
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _truncate(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0]


def query_pool(long_chars: int = 200, short_words: int = 7) -> list[tuple[str, str]]:
    """(kind, text): TOMT queries cut to ~200 chars, and every third one also short.

    Validation queries come first; train queries extend the pool so that no
    two passes share a query text.
    """
    pool: dict[str, str] = {}
    raw = [q.query for q in tomt_queries("validation")] + [q.query for q in tomt_queries("train")]
    for i, text in enumerate(raw):
        pool.setdefault(_truncate(text, long_chars), "long")
        if i % 3 == 0:
            first = text.split(". ", 1)[0].split()
            short = " ".join(first[:short_words])
            if short:
                pool.setdefault(short, "short")
    return [(kind, text) for text, kind in pool.items()]


class Server:
    """`metamedia serve` as a child process; stopped on exit even after errors."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        ready_timeout_s: float = 300.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.extra_args = extra_args
        self.data_dir = data_dir
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.port = free_port()
        self.base_url = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0

    def __enter__(self) -> Server:
        cmd = [sys.executable, "-m", "metamedia", "serve", "--host", HOST]
        cmd += ["--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        start = time.perf_counter()
        deadline = start + self.ready_timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if (
                    httpx.get(f"{self.base_url}/readyz", timeout=2.0, trust_env=False).status_code
                    == 200
                ):
                    self.ready_s = time.perf_counter() - start
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"server not ready after {self.ready_timeout_s:.0f} s")

    def log_tail(self, chars: int = 800) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class PassResult:
    name: str
    concurrency: int
    planned: int
    ok: int = 0
    errors: int = 0
    empty: int = 0
    wall_s: float = 0.0
    truncated: bool = False
    latency_ms: list[float] | None = None
    took_ms: list[float] | None = None
    embedding_ms: list[float] | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "concurrency": self.concurrency,
            "planned": self.planned,
            "ok": self.ok,
            "errors": self.errors,
            "empty_results": self.empty,
            "wall_s": self.wall_s,
            "truncated_by_time_limit": self.truncated,
            "req_per_s": self.ok / self.wall_s if self.wall_s else 0.0,
            "latency_ms": summarize(self.latency_ms or []).as_dict(),
            "server_took_ms": summarize(self.took_ms or []).as_dict(),
            "server_embedding_ms": summarize(self.embedding_ms or []).as_dict(),
        }


async def _load(base_url: str, result: PassResult, queries: list[str], time_limit_s: float) -> None:
    latency: list[float] = []
    took: list[float] = []
    embedding: list[float] = []
    next_index = 0
    deadline = time.perf_counter() + time_limit_s
    limits = httpx.Limits(max_connections=result.concurrency)
    client = httpx.AsyncClient(base_url=base_url, limits=limits, trust_env=False)
    async with client:

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(queries):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    result.truncated = True
                    return
                body = {"query": queries[next_index], "mode": "hybrid", "limit": 10}
                next_index += 1
                start = time.perf_counter()
                try:
                    resp = await client.post("/v1/search", json=body, timeout=min(30, remaining))
                except httpx.HTTPError:
                    result.errors += 1
                    continue
                elapsed = (time.perf_counter() - start) * 1000
                if resp.status_code != 200:
                    result.errors += 1
                    continue
                data = resp.json()
                latency.append(elapsed)
                took.append(float(data["took_ms"]))
                embedding.append(float(data["embedding_ms"]))
                result.empty += not data["results"]

        started = time.perf_counter()
        tasks = [worker() for _ in range(result.concurrency)]
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=time_limit_s + 35)
        result.wall_s = time.perf_counter() - started
    result.ok = len(latency)
    result.latency_ms, result.took_ms, result.embedding_ms = latency, took, embedding


def run_pass(
    base_url: str, name: str, concurrency: int, queries: list[str], limit_s: float
) -> dict[str, Any]:
    result = PassResult(name, concurrency, len(queries))
    asyncio.run(_load(base_url, result, queries, limit_s))
    return result.summary()


def run(data_dir: Path, log_path: Path, requests: int, time_limit_s: float) -> dict[str, Any]:
    """Cold passes at 1, 4 and 8 clients, then a warm repeated-query pass at 4."""
    pool = query_pool()
    texts = [text for _, text in pool]
    plan = [("cold", 1, requests // 3), ("cold", 4, requests), ("cold", 8, requests)]
    needed = 10 + sum(n for _, _, n in plan)
    if len(texts) < needed:
        raise RuntimeError(f"query pool has {len(texts)} texts, need {needed}")
    passes: list[dict[str, Any]] = []
    with Server(data_dir, log_path) as server:
        run_pass(server.base_url, "warm-up", 2, texts[:10], time_limit_s)
        cursor = 10
        sent: list[str] = []
        for kind, concurrency, n in plan:
            chunk = texts[cursor : cursor + n]
            cursor += n
            sent += chunk
            name = f"{kind} c={concurrency}"
            passes.append(run_pass(server.base_url, name, concurrency, chunk, time_limit_s))
        repeated = (sent[:50] * (requests // 50 + 1))[:requests]  # all embeddings cached
        name = "warm (repeated queries) c=4"
        passes.append(run_pass(server.base_url, name, 4, repeated, time_limit_s))
        ready_s = server.ready_s
    shorts = sum(1 for kind, _ in pool[:needed] if kind == "short")
    return {
        "ready_s": ready_s,
        "time_limit_s": time_limit_s,
        "queries_used": needed,
        "short_queries": shorts,
        "mean_query_chars": sum(len(t) for t in texts[:needed]) / needed,
        "passes": passes,
    }


def metrics(raw: dict[str, Any], catalog_items: int) -> list[Metric]:
    out: list[Metric] = []
    for p in raw["passes"]:
        lat, emb, took = p["latency_ms"], p["server_embedding_ms"], p["server_took_ms"]
        flags = f"; {p['errors']} errors" if p["errors"] else ""
        if p["truncated_by_time_limit"]:
            flags += f"; stopped at the {raw['time_limit_s']:.0f} s limit"
        name = p["name"]
        row = at_most(SECTION, f"{name}: latency p95", lat["p95"], "ms", P95_TARGET_MS)
        row.display = f"p50 {fmt(lat['p50'])} / p95 {fmt(lat['p95'])} / p99 {fmt(lat['p99'])} ms"
        row.notes = f"{p['ok']}/{p['planned']} requests in {p['wall_s']:.1f} s{flags}"
        out.append(row)
        took_note = f"server took_ms p50 {fmt(took['p50'])} / p95 {fmt(took['p95'])}"
        out.append(Metric(SECTION, f"{name}: throughput", p["req_per_s"], "req/s", notes=took_note))
        out.append(
            Metric(
                SECTION,
                f"{name}: server embedding_ms p50 / p95",
                emb["p50"],
                "ms",
                display=f"{fmt(emb['p50'])} / {fmt(emb['p95'])} ms",
                notes="includes waiting for the model lock (one encode at a time)"
                if p["concurrency"] > 1 and emb["p50"] > 1
                else "",
            )
        )
    out[0].notes += (
        f"; {catalog_items} items, {raw['queries_used']} distinct queries "
        f"({raw['short_queries']} short, mean {raw['mean_query_chars']:.0f} chars); "
        f"server ready in {raw['ready_s']:.1f} s; client shares the CPU"
    )
    return out
