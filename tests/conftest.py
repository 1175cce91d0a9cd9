"""Shared fixtures: the real model (loaded once), fresh data dirs, a real-data catalog."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from bench.datasets import load_wikipedia_films, shared_data_dir, tomt_queries

from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.services.runtime import Runtime, shared_embedder
from metamedia.testing.postgres import PostgresServer
from metamedia.testing.redis import RedisServer

DEMO_CATALOG = Path(__file__).resolve().parents[1] / "src" / "metamedia" / "demo" / "catalog.jsonl"


ADMIN_KEY = "test-admin-key-not-a-secret"
# Read-only: Starlette's TestClient.websocket_connect adds its handshake headers to
# the dict it is given, and a shared dict once carried a stale Sec-WebSocket-Key into
# a later test's real handshake (uvicorn refused it: "multiple values").
ADMIN_HEADERS: Mapping[str, str] = MappingProxyType({"X-API-Key": ADMIN_KEY})


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL 18 + pgvector for the run, on a free loopback port.

    A server that cannot start fails the tests that need it: never a skip.
    """
    server = PostgresServer()
    server.start()
    yield server
    server.close()


@pytest.fixture()
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh database (vector and unaccent installed) for one test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return postgres_server.create_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real `redis-server` for the run, on a free loopback port, persistence off.

    A server that cannot start (not installed, will not answer) fails the tests
    that need it: never a skip. Tests that stop Redis start a `RedisServer` of
    their own, so this one stays up for everyone else.
    """
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, emptied first: no test sees another's keys."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real model (all-MiniLM-L6-v2 with its shipped fine-tuning delta), loaded
    once for the whole run (shared with the CLI)."""
    return shared_embedder(Settings())


@pytest.fixture()
def make_runtime(tmp_path: Path, embedder: Embedder) -> Iterator[Any]:
    opened: list[Runtime] = []

    def _make(data_dir: Path | None = None, **overrides: Any) -> Runtime:
        overrides.setdefault("admin_key", ADMIN_KEY)
        # The memory governor reads this process's RSS, which in a test run holds every
        # fixture's catalogs and models: caches would shed at random. Tests of the
        # governor set a limit of their own.
        overrides.setdefault("memory_limit_mb", 0)
        settings = Settings(data_dir=data_dir or tmp_path / "data", **overrides)
        runtime = Runtime.open(settings, embedder=embedder)
        opened.append(runtime)
        return runtime

    yield _make
    for runtime in opened:
        runtime.close()


@pytest.fixture()
def runtime(make_runtime: Any) -> Runtime:
    rt: Runtime = make_runtime()
    return rt


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def item(id: str, title: str, description: str = "", **extra: Any) -> dict[str, Any]:
    return {"id": id, "title": title, "description": description, **extra}


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    """A data dir with the bundled demo catalog ingested (copy it before writing)."""
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    runtime = Runtime.open(Settings(data_dir=data_dir), embedder=embedder)
    report = runtime.ingest.ingest_path(DEMO_CATALOG, "jsonl")
    assert report.rejected == 0, report.rejects
    runtime.close()
    return data_dir


@pytest.fixture()
def demo_runtime(demo_data_dir: Path, tmp_path: Path, make_runtime: Any) -> Runtime:
    copy = tmp_path / "demo-copy"
    shutil.copytree(demo_data_dir, copy)
    rt: Runtime = make_runtime(copy)
    return rt


@pytest.fixture()
def movielens_subset(tmp_path: Path) -> Path:
    """The first 300 MovieLens movies with their links, tags and ratings (real rows)."""
    source = shared_data_dir() / "movielens-ml-latest-small"
    subset = tmp_path / "ml"
    subset.mkdir()
    for name in ("movies.csv", "links.csv"):
        lines = (source / name).read_text(encoding="utf-8").splitlines()[:301]
        (subset / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    movie_ids = {
        line.split(",")[0] for line in (subset / "movies.csv").read_text().splitlines()[1:]
    }
    for name in ("tags.csv", "ratings.csv"):
        rows = (source / name).read_text(encoding="utf-8").splitlines()
        kept = [rows[0]] + [r for r in rows[1:] if r.split(",")[1] in movie_ids]
        (subset / name).write_text("\n".join(kept) + "\n", encoding="utf-8")
    return subset


WIKI_DISTRACTORS = 1500


@pytest.fixture(scope="session")
def wiki_catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Real Wikipedia films: every TOMT-validation answer plus seeded random others."""
    if not (shared_data_dir() / "wikipedia-movie-data").exists():
        pytest.fail(f"real data missing: {shared_data_dir()} (CI lays ../shared beside the clone)")
    queries = tomt_queries("validation")
    gold = {q.gold for q in queries}
    # The source lists a few films twice (same slug): keep the first of each.
    films = list({f["href"]: f for f in reversed(load_wikipedia_films())}.values())[::-1]
    rng = random.Random(20261125)
    others = [f for f in films if f["href"] not in gold]
    chosen = [f for f in films if f["href"] in gold] + rng.sample(others, WIKI_DISTRACTORS)
    directory = tmp_path_factory.mktemp("wiki")
    path = directory / "films.json"
    path.write_text(json.dumps(chosen), encoding="utf-8")
    return {"path": path, "films": chosen, "queries": queries}


@pytest.fixture(scope="session")
def wiki_data_dir(
    wiki_catalog: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Path:
    data_dir = tmp_path_factory.mktemp("wiki-data") / "data"
    runtime = Runtime.open(Settings(data_dir=data_dir), embedder=embedder)
    report = runtime.ingest.ingest_path(wiki_catalog["path"], "wikipedia")
    assert report.inserted == len(wiki_catalog["films"]), report.as_dict()
    runtime.close()
    return data_dir


@pytest.fixture(scope="session")
def wiki_runtime(wiki_data_dir: Path, embedder: Embedder) -> Iterator[Runtime]:
    """Read-only use only: tests that write must copy `wiki_data_dir`."""
    runtime = Runtime.open(Settings(data_dir=wiki_data_dir), embedder=embedder)
    yield runtime
    runtime.close()
