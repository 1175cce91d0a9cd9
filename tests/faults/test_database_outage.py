"""PostgreSQL stops mid-run: writes answer 503 with Retry-After and change nothing,
cached reads keep answering, readiness says why, and everything recovers by
itself when the database returns. A real server is stopped and started here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from metamedia.services.runtime import Runtime
from metamedia.testing.postgres import PostgresServer
from tests.conftest import ADMIN_HEADERS, DEMO_CATALOG
from tests.live_server import ServeThread


@pytest.fixture()
def own_server(tmp_path: Path) -> Iterator[PostgresServer]:
    """A server of this test's own: stopping the shared one would break other tests."""
    server = PostgresServer(tmp_path / "pg", durable=True)
    server.start()
    yield server
    server.close()


def _put(client: httpx.Client, media_id: str, title: str) -> httpx.Response:
    body = {"title": title, "type": "movie", "description": "A test film about outages."}
    return client.put(f"/v1/media/{media_id}", json=body, headers=dict(ADMIN_HEADERS))


def test_writes_refuse_cached_reads_answer_and_service_recovers(
    own_server: PostgresServer, tmp_path: Path, make_runtime: Any
) -> None:
    url = own_server.create_database("outage")
    data_dir = tmp_path / "data"
    rt: Runtime = make_runtime(data_dir, database_url=url)
    report = rt.ingest.ingest_path(DEMO_CATALOG, "jsonl")
    assert report.rejected == 0
    with ServeThread(rt) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert _put(client, "outage-1", "Before The Outage").status_code == 201
        search = client.get("/v1/search", params={"q": "Ninth Vault, The"})
        assert search.status_code == 200
        first = search.json()["results"][0]["id"]

        own_server.stop("immediate")  # a crash: no shutdown checkpoint, clients cut off

        refused = _put(client, "outage-2", "During The Outage")
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["error"]["type"] == "StoreUnavailableError"
        cached = client.get("/v1/search", params={"q": "Ninth Vault, The"})
        assert cached.status_code == 200
        assert cached.json()["results"][0]["id"] == first
        # Still ready (every replica shares the database: failing readiness would pull
        # them all, searches included), and says what is wrong.
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["database"].startswith("error")

        own_server.start()

        deadline = time.monotonic() + 30
        while True:
            again = _put(client, "outage-2", "During The Outage")
            if again.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert again.status_code == 201, again.text
        assert client.get("/v1/media/outage-1").json()["title"] == "Before The Outage"
        recovered = client.get("/readyz").json()
        assert recovered["checks"]["database"] == "ok"
        assert recovered["status"] == "ready"
