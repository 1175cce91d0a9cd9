"""Redis configured but down: answers go on, writes succeed, /readyz says so, and
everything comes back by itself when Redis does. Stops and restarts a real
redis-server under a running service."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.services.runtime import Runtime
from metamedia.testing.redis import RedisServer
from tests.conftest import ADMIN_HEADERS
from tests.waiting import wait_until

QUERY = {"query": "haunted manor on the moors", "limit": 5}


@pytest.fixture()
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own: the test takes it away."""
    with RedisServer() as server:
        yield server


@pytest.fixture()
def served(
    own_redis: RedisServer, demo_data_dir: Path, tmp_path: Path, make_runtime: Any
) -> Iterator[tuple[TestClient, Runtime]]:
    copy = tmp_path / "data"
    shutil.copytree(demo_data_dir, copy)
    runtime: Runtime = make_runtime(copy, redis_url=own_redis.url)
    with TestClient(create_app(runtime=runtime)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200, 20.0)
        yield client, runtime


def test_redis_outage_degrades_speed_not_answers_and_recovers(
    served: tuple[TestClient, Runtime], own_redis: RedisServer
) -> None:
    client, runtime = served
    ready = client.get("/readyz").json()
    assert ready["checks"]["redis"] == "ok"
    baseline = client.post("/v1/search", json=QUERY).json()
    client.put("/v1/users/ana", headers=dict(ADMIN_HEADERS))
    assert client.get("/v1/users/ana/feed?limit=5", headers=dict(ADMIN_HEADERS)).status_code == 200

    own_redis.stop()
    # Reads answer, skipping the shared tier (a fresh query is ranked here).
    down = client.post("/v1/search", json={**QUERY, "limit": 6})
    assert down.status_code == 200 and down.json()["results"]
    assert client.get("/v1/users/ana/feed?limit=7", headers=dict(ADMIN_HEADERS)).status_code == 200
    # Writes never fail because of the cache or the bus.
    top = baseline["results"][0]
    item = client.get(f"/v1/media/{top['id']}").json()
    renamed = {**item, "title": item["title"] + " (Director's Cut)"}
    assert client.put(
        f"/v1/media/{top['id']}", json=renamed, headers=dict(ADMIN_HEADERS)
    ).is_success
    events = {"events": [{"item": top["id"], "type": "like"}]}
    recorded = client.post("/v1/users/ana/interactions", json=events, headers=dict(ADMIN_HEADERS))
    assert recorded.status_code == 200
    # ... and the write is visible: no stale answer from any tier.
    titles = [h["title"] for h in client.post("/v1/search", json=QUERY).json()["results"]]
    assert renamed["title"] in titles
    # Rate limits still count (per process) and readiness reports the degradation.
    for _ in range(3):
        assert client.get("/v1/search?q=ghost").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == "degraded"
    assert ready.json()["status"] == "degraded"

    own_redis.start()
    assert wait_until(lambda: client.get("/readyz").json()["status"] == "ready", 20.0)
    assert client.get("/readyz").json()["checks"]["redis"] == "ok"
    assert runtime.replication is not None
    assert wait_until(lambda: runtime.replication.handled.get("resync", 0) >= 1, 20.0)  # type: ignore[union-attr]
    # The shared tier is written and read again.
    client.post("/v1/search", json={**QUERY, "limit": 8})
    keys_after = own_redis_keys(own_redis)
    assert runtime.shared is not None
    assert any(k.startswith(f"{runtime.shared.namespace}:c:search:") for k in keys_after)


def own_redis_keys(server: RedisServer) -> list[str]:
    import redis

    client = redis.Redis.from_url(server.url)
    try:
        return [k.decode() for k in client.scan_iter()]
    finally:
        client.close()
