"""`python -m bench service [--quick]`: mixed search / feed / interaction load against
the real server, caches cold and warm, and the same warm load with caches off.

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
"""

from __future__ import annotations

import argparse
import asyncio
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

from bench.http_bench import Server, query_pool
from bench.lean_http import LeanConnection
from bench.rec_latency import catalog_source
from bench.report import fmt, header_lines, machine_info, write_json
from bench.timing import summarize

ADMIN_KEY = "bench-admin-key-local-only"
HEADERS = {"X-API-Key": ADMIN_KEY}
P99_TARGET_MS = 50.0
HIT_RATE_TARGET = 0.80
GENRES = ["drama", "comedy", "thriller", "horror", "science fiction", "romance", "western"]


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
class PassResult:
    name: str
    clients: int
    think_ms: float
    planned: int
    wall_s: float = 0.0
    truncated: bool = False
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    hit_rates: dict[str, float | None] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        done = sum(len(v) for v in self.latency_ms.values())
        return {
            "name": self.name,
            "clients": self.clients,
            "think_ms": self.think_ms,
            "planned": self.planned,
            "completed": done,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 2),
            "req_per_s": round(done / self.wall_s, 1) if self.wall_s else 0.0,
            "truncated_by_time_limit": self.truncated,
            "latency_ms": {k: summarize(v).as_dict() for k, v in self.latency_ms.items()},
            "cache_hit_rate": self.hit_rates,
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
    base_url: str, result: PassResult, workload: Workload, time_limit_s: float, seed: int
) -> None:
    rng = random.Random(seed)
    queue = list(workload.requests)
    queue.reverse()
    deadline = time.perf_counter() + time_limit_s
    before = await _cache_counts(base_url)
    host, port = base_url.removeprefix("http://").split(":")

    async def session() -> None:
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

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(result.clients)))
    result.wall_s = time.perf_counter() - started
    after = await _cache_counts(base_url)
    for name, (hits, misses) in after.items():
        h0, m0 = before.get(name, (0, 0))
        lookups = (hits - h0) + (misses - m0)
        result.hit_rates[name] = round((hits - h0) / lookups, 4) if lookups else None


async def _cache_counts(base_url: str) -> dict[str, tuple[int, int]]:
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, headers=HEADERS) as client:
        data = (await client.get("/v1/admin/caches")).json()
    return {c["name"]: (c["hits"], c["misses"]) for c in data["caches"]}


def run_pass(
    server: Server, name: str, workload: Workload, plan: Plan, think_ms: float, seed: int
) -> dict[str, Any]:
    result = PassResult(name, plan.clients, think_ms, len(workload.requests))
    asyncio.run(_run_pass(server.base_url, result, workload, plan.time_limit_s, seed))
    summary = result.summary()
    print(f"  {name}: {summary['req_per_s']} req/s, {summary['latency_ms']}", file=sys.stderr)
    return summary


def prepare_users(base_url: str, plan: Plan) -> list[str]:
    """Users with preferences and five interactions each; returns catalog ids seen."""
    rng = random.Random(11)
    with httpx.Client(base_url=base_url, trust_env=False, headers=HEADERS, timeout=60) as client:
        ids: list[str] = []
        for query in ("war drama", "romantic comedy", "space adventure", "haunted house"):
            found = client.post("/v1/search", json={"query": query, "limit": 50}).json()
            ids += [hit["id"] for hit in found["results"]]
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


def run(plan: Plan, cache_dir: Path, work: Path) -> dict[str, Any]:
    source, label = catalog_source(cache_dir)
    data_dir = work / "catalog"
    shutil.copytree(source, data_dir, ignore=shutil.ignore_patterns("*.json", "rejects"))
    passes: list[dict[str, Any]] = []
    with (
        mock.patch.dict(os.environ, _server_env(None)),
        Server(data_dir, work / "server.log") as server,
    ):
        ids = prepare_users(server.base_url, plan)
        workload = build_workload(plan, ids)
        passes.append(run_pass(server, "cold caches", workload, plan, plan.think_ms, 1))
        replay = build_workload(plan, ids)  # same queries and users, fresh timestamps
        passes.append(run_pass(server, "warm caches", replay, plan, plan.think_ms, 2))
        saturation = build_workload(plan, ids)
        passes.append(run_pass(server, "warm, no think time", saturation, plan, 0.0, 3))
    with (
        mock.patch.dict(os.environ, _server_env(0)),
        Server(data_dir, work / "server-nocache.log") as server,
    ):
        # A run-through first so the model and index are as warm as in the warm pass.
        run_pass(server, "baseline warm-up", build_workload(plan, ids), plan, plan.think_ms, 4)
        passes.append(
            run_pass(
                server, "baseline: caches off", build_workload(plan, ids), plan, plan.think_ms, 2
            )
        )
    return {"catalog": label, "passes": passes}


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def render(report: dict[str, Any]) -> str:
    plan = report["plan"]
    lines = [
        *header_lines(
            "service (mixed load)",
            report["command"],
            report["quick"],
            report["started"],
            report["seconds"],
            report["machine"],
        ),
        f"- catalog: {report['raw']['catalog']}",
        f"- workload: {plan['clients']} concurrent clients, {plan['requests']} requests per "
        f"pass (60% search, 30% feed, 10% interactions), {plan['distinct_queries']} distinct "
        f"queries with Zipf popularity, {plan['users']} users, think time "
        f"{plan['think_ms']:.0f} ms mean (exponential)",
        "- the load generator runs on the same cores as the server",
        "",
        "| pass | req/s | search p50 / p95 / p99 ms | feed p50 / p95 / p99 ms "
        "| interaction p50 / p95 / p99 ms | errors | search cache hit rate "
        "| feed cache hit rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in report["raw"]["passes"]:
        cells = []
        for kind in ("search", "feed", "interaction"):
            s = p["latency_ms"].get(kind)
            cells.append(f"{fmt(s['p50'])} / {fmt(s['p95'])} / {fmt(s['p99'])}" if s else "n/a")
        rates = p["cache_hit_rate"]
        lines.append(
            f"| {p['name']} | {p['req_per_s']} | {' | '.join(cells)} "
            f"| {sum(p['errors'].values())} | {_rate(rates.get('search'))} "
            f"| {_rate(rates.get('feed'))} |"
        )
    lines += ["", "## Targets", "", "| target | measured | met? |", "|---|---|---|"]
    for name, measured, met in report["targets"]:
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def targets(passes: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    warm = next(p for p in passes if p["name"] == "warm caches")
    rows = []
    hit = warm["cache_hit_rate"].get("search") or 0.0
    rows.append(
        (f"warm search cache hit rate > {HIT_RATE_TARGET:.0%}", f"{hit:.1%}", hit > HIT_RATE_TARGET)
    )
    for kind in ("search", "feed"):
        p99 = warm["latency_ms"].get(kind, {}).get("p99", float("nan"))
        rows.append(
            (
                f"warm {kind} p99 < {P99_TARGET_MS:.0f} ms at {warm['clients']} clients",
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
    with tempfile.TemporaryDirectory(prefix="mm-service-bench-") as tmp:
        raw = run(plan, args.cache_dir, Path(tmp))
    machine["load_avg_end"] = _load_avg()
    report = {
        "command": "python -m bench " + shlex.join(argv),
        "quick": args.quick,
        "started": started,
        "seconds": time.perf_counter() - clock,
        "machine": machine,
        "plan": plan.__dict__,
        "raw": raw,
        "targets": targets(raw["passes"]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "service-quick" if args.quick else "service"
    md = args.out / f"{name}.md"
    md.write_text(render(report), encoding="utf-8")
    write_json(args.out / f"{name}.json", report)
    print(md.read_text(encoding="utf-8"))
    return 0
