"""Two `metamedia serve` processes over one PostgreSQL and one Redis answer as one.

The replicas are real child processes on their own loopback ports, each with its
own data directory (index files, model cache) and its own in-process caches,
WebSocket hub and rate-limit fallback; what they share is the database and
Redis. Everything a client sees must be the same whichever replica it reaches.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY, DEMO_CATALOG
from tests.live_server import free_port, wait_until_ready
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

PER_IP_LIMIT = 30


class Replica:
    def __init__(self, name: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / f"{name}.log"
        data = root / name
        data.mkdir()
        with open(self.log, "wb") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "metamedia", "serve", "--port", str(self.port)],
                env={**env, "METAMEDIA_DATA_DIR": str(data)},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.http = httpx.Client(base_url=self.url, timeout=60, headers=dict(ADMIN_HEADERS))

    def ready(self) -> None:
        try:
            wait_until_ready(self.url, self.proc, 240)
        except BaseException:
            print(self.log.read_text()[-4000:])
            raise

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture()
def replicas(
    postgres_url: str, redis_url: str, tmp_path: Path, embedder: Embedder
) -> Iterator[tuple[Replica, Replica]]:
    seed = Runtime.open(
        Settings(data_dir=tmp_path / "seed", database_url=postgres_url, memory_limit_mb=0),
        embedder=embedder,
    )
    assert seed.ingest.ingest_path(DEMO_CATALOG, "jsonl").rejected == 0
    seed.close()
    env = {
        **os.environ,
        "METAMEDIA_DATABASE_URL": postgres_url,
        "METAMEDIA_REDIS_URL": redis_url,
        "METAMEDIA_ADMIN_KEY": ADMIN_KEY,
        "METAMEDIA_RATE_LIMIT_PER_IP": f"{PER_IP_LIMIT}/minute",
        # Definitions polled once a minute: a flag seen sooner came over Redis.
        "METAMEDIA_EXPERIMENTS_REFRESH_S": "60",
        "METAMEDIA_MEMORY_LIMIT_MB": "0",
    }
    a, b = Replica("a", tmp_path, env), Replica("b", tmp_path, env)
    try:
        a.ready()
        b.ready()
        yield a, b
    finally:
        a.stop()
        b.stop()


def _feed_ids(replica: Replica, user: str) -> list[str]:
    response = replica.http.get(f"/v1/users/{user}/feed", params={"limit": 10})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _search_titles(replica: Replica, query: str) -> list[str]:
    response = replica.http.post("/v1/search", json={"query": query, "limit": 10})
    assert response.status_code == 200, response.text
    return [hit["title"] for hit in response.json()["results"]]


def test_two_replicas_over_one_postgres_and_one_redis_answer_as_one(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    for replica in (a, b):
        assert replica.http.get("/readyz").json()["checks"]["redis"] == "ok"

    # An interaction sent to A changes the feed B serves on its next request.
    assert a.http.put("/v1/users/ana").is_success
    before = _feed_ids(b, "ana")
    disliked = before[0]
    event = {"events": [{"item": disliked, "type": "dislike"}]}
    assert a.http.post("/v1/users/ana/interactions", json=event).json()["recorded"] == 1
    after = _feed_ids(b, "ana")
    assert disliked not in after and after != before

    # A flag flipped on A applies on B within one second.
    assert b.http.get("/v1/admin/flags/fresh_feed").json()["enabled"] is True
    assert a.http.post("/v1/admin/flags/fresh_feed/disable").is_success
    assert wait_until(
        lambda: b.http.get("/v1/admin/flags/fresh_feed").json()["enabled"] is False, 1.0
    )

    # A WebSocket client on B gets the push for a write on A.
    ws_url = f"ws://127.0.0.1:{b.port}/v1/ws"
    with connect(ws_url, additional_headers=dict(ADMIN_HEADERS), open_timeout=30) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        ws.send(json.dumps({"type": "subscribe_feed", "user": "ana", "limit": 5}))
        first = _next(ws, "feed")
        top = first["items"][0]["id"]
        event = {"events": [{"item": top, "type": "dislike"}]}
        assert a.http.post("/v1/users/ana/interactions", json=event).json()["recorded"] == 1
        pushed = _next(ws, "feed")
        assert top not in [item["id"] for item in pushed["items"]]

    # After a media PUT on A, B never serves the old version.
    query = "haunted manor on the moors"
    cached = _search_titles(b, query)
    _search_titles(b, query)  # now certainly in B's caches, both tiers
    item_id = b.http.post("/v1/search", json={"query": query, "limit": 1}).json()["results"][0]
    old = b.http.get(f"/v1/media/{item_id['id']}").json()
    renamed = {**old, "title": old["title"] + " Revisited"}
    assert a.http.put(f"/v1/media/{old['id']}", json=renamed).is_success
    assert b.http.get(f"/v1/media/{old['id']}").json()["title"] == renamed["title"]
    now = _search_titles(b, query)
    assert renamed["title"] in now and old["title"] not in now and cached != now

    # A rate limit is shared: anonymous requests from one IP, alternating replicas,
    # meet one limit (per process they would get twice as many).
    statuses = []
    for i in range(PER_IP_LIMIT * 2):
        replica = (a, b)[i % 2]
        response = httpx.get(f"{replica.url}/v1/search", params={"q": "ghost"}, timeout=60)
        statuses.append(response.status_code)
    assert statuses[0] == 200
    first_refusal = statuses.index(429)
    assert first_refusal < PER_IP_LIMIT * 1.5
    assert statuses[-2:] == [429, 429]  # both replicas refuse


def _next(ws: Any, kind: str, limit: int = 30) -> dict[str, Any]:
    for _ in range(limit):
        message: dict[str, Any] = json.loads(ws.recv(timeout=30))
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message within {limit}")
