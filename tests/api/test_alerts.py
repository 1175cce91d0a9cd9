"""`GET /v1/admin/alerts` over HTTP: real traffic against thresholds from configuration.

Thresholds in these tests are tiny or huge so that the outcome never depends on
how fast this machine is.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_HEADERS

RULES = [
    "feed_latency_p95",
    "process_memory",
    "cache_hit_rate",
    "db_query_latency_p95",
    "error_rate",
]

OpenApp = Callable[..., AbstractContextManager[tuple[TestClient, Runtime]]]


@pytest.fixture()
def open_app(demo_data_dir: Path, tmp_path: Path, make_runtime: Any) -> OpenApp:
    """The real app over a fresh copy of the demo catalog with these settings."""
    copies = iter(range(100))

    @contextmanager
    def _open(**settings: Any) -> Iterator[tuple[TestClient, Runtime]]:
        copy = tmp_path / f"demo-{next(copies)}"
        shutil.copytree(demo_data_dir, copy)
        runtime: Runtime = make_runtime(copy, **settings)
        with TestClient(
            create_app(runtime=runtime), headers=dict(ADMIN_HEADERS), raise_server_exceptions=False
        ) as client:
            yield client, runtime

    return _open


def alerts(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/admin/alerts")
    assert response.status_code == 200, response.text
    return {rule["name"]: rule for rule in response.json()["rules"]}


def test_alerts_need_an_admin_key(anon_client: TestClient, client: TestClient) -> None:
    refused = anon_client.get("/v1/admin/alerts")
    assert refused.status_code == 401
    assert "scope 'admin'" in refused.json()["error"]["message"]
    issued = client.post("/v1/admin/keys", json={"name": "ops-reader", "scopes": ["read"]})
    reader = issued.json()["key"]
    denied = anon_client.get("/v1/admin/alerts", headers={"X-API-Key": reader})
    assert denied.status_code == 403
    assert client.get("/v1/admin/alerts").status_code == 200


def test_every_rule_is_listed_with_thresholds_from_configuration(open_app: OpenApp) -> None:
    settings = {
        "alert_window_s": 120.0,
        "alert_min_samples": 7,
        "alert_feed_p95_s": 2.5,
        "alert_memory_bytes": 987_654_321_000,
        "alert_cache_hit_rate_min": 0.42,
        "alert_db_query_s": 0.25,
        "alert_error_rate": 0.05,
    }
    with open_app(**settings) as (client, _):
        body = client.get("/v1/admin/alerts").json()
    assert body["window_s"] == 120.0 and body["evaluated_at"] > 0
    rules = {rule["name"]: rule for rule in body["rules"]}
    assert list(rules) == RULES
    thresholds = {name: rule["threshold"] for name, rule in rules.items()}
    assert thresholds == {
        "feed_latency_p95": 2.5,
        "process_memory": 987_654_321_000,
        "cache_hit_rate": 0.42,
        "db_query_latency_p95": 0.25,
        "error_rate": 0.05,
    }
    severities = {name: rule["severity"] for name, rule in rules.items()}
    assert severities == {
        "feed_latency_p95": "medium",
        "process_memory": "high",
        "cache_hit_rate": "medium",
        "db_query_latency_p95": "medium",
        "error_rate": "high",
    }
    for rule in rules.values():
        assert rule["window_s"] == 120.0
        assert rule["state"] in {"ok", "firing", "no_data"}
        assert set(rule) >= {"expression", "value", "state", "since", "unit", "samples"}
    assert rules["feed_latency_p95"]["min_samples"] == 7
    assert "p95" in rules["feed_latency_p95"]["expression"]
    # Memory is far below ~1 TB; the RSS reading itself is real.
    assert rules["process_memory"]["state"] == "ok" and rules["process_memory"]["value"] > 0
    assert body["firing"] == []


def test_defaults_do_not_fire_on_a_little_traffic(client: TestClient) -> None:
    client.put("/v1/users/quiet")
    for _ in range(3):
        assert client.get("/v1/users/quiet/feed").status_code == 200
    rules = alerts(client)
    feed = rules["feed_latency_p95"]
    # Three feeds are fewer than the 20 observations a rule needs: one slow one pages nobody.
    assert (feed["state"], feed["samples"], feed["min_samples"]) == ("no_data", 3, 20)
    assert feed["threshold"] == 1.0 and feed["since"] is None
    assert rules["error_rate"]["value"] == 0.0
    assert rules["error_rate"]["state"] in {"ok", "no_data"}
    assert rules["process_memory"]["threshold"] == 1024**3


def test_feed_latency_rule_fires_on_real_feeds_over_a_tiny_threshold(open_app: OpenApp) -> None:
    with open_app(alert_feed_p95_s=0.000001, alert_min_samples=3) as (client, _):
        assert client.put("/v1/users/u-feed").status_code == 200
        for _ in range(2):
            assert client.get("/v1/users/u-feed/feed", params={"limit": 5}).status_code == 200
        waiting = alerts(client)["feed_latency_p95"]
        assert (waiting["state"], waiting["samples"]) == ("no_data", 2)
        assert client.get("/v1/users/u-feed/feed", params={"limit": 5}).status_code == 200
        first = alerts(client)["feed_latency_p95"]
        assert first["state"] == "firing" and first["samples"] == 3
        assert first["since"] is not None
        body = client.get("/v1/admin/alerts").json()
        assert "feed_latency_p95" in body["firing"]
        assert alerts(client)["feed_latency_p95"]["since"] == first["since"]


def test_client_errors_do_not_count_as_errors(open_app: OpenApp) -> None:
    with open_app(alert_error_rate=0.0, alert_min_samples=5) as (client, _):
        for _ in range(4):
            assert client.get("/v1/media/no-such-item").status_code == 404
            assert client.post("/v1/search", json={"query": ""}).status_code == 422
            assert client.get("/v1/admin/keys", headers={"X-API-Key": "bad"}).status_code == 401
        rule = alerts(client)["error_rate"]
        assert rule["samples"] >= 12
        assert (rule["state"], rule["value"], rule["threshold"]) == ("ok", 0.0, 0.0)


def test_server_errors_from_a_broken_database_fire_the_error_rule(open_app: OpenApp) -> None:
    with open_app(alert_min_samples=5) as (client, runtime):
        for _ in range(5):
            assert client.get("/v1/media/mm-0001").status_code == 200
        assert alerts(client)["error_rate"]["state"] == "ok"
        with runtime.stores.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE media RENAME TO media_gone")
        try:
            broken = client.get("/v1/media/mm-0002")
        finally:
            with runtime.stores.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE media_gone RENAME TO media")
        assert broken.status_code == 500
        rule = alerts(client)["error_rate"]
        # 1 of 7 responses (5 reads, the first alerts call, the failed read) is a 5xx.
        assert rule["state"] == "firing" and rule["value"] == pytest.approx(1 / 7)
        assert rule["severity"] == "high" and rule["since"] is not None


def test_cache_db_and_memory_rules_fire_over_tiny_thresholds(open_app: OpenApp) -> None:
    settings = {
        "alert_min_samples": 3,
        "alert_cache_hit_rate_min": 1.0,
        "alert_db_query_s": 0.000000001,
        "alert_memory_bytes": 1,
    }
    with open_app(**settings) as (client, _):
        for word in ("glacier", "submarine", "carnival", "lighthouse"):
            assert client.get("/v1/search", params={"q": f"{word} mystery"}).status_code == 200
        rules = alerts(client)
    cache = rules["cache_hit_rate"]
    # Distinct queries miss the caches, so the hit rate is below 100 %.
    assert cache["state"] == "firing" and cache["value"] < 1.0 and cache["samples"] >= 4
    db = rules["db_query_latency_p95"]
    assert db["state"] == "firing" and db["samples"] >= 3
    memory = rules["process_memory"]
    assert memory["state"] == "firing" and memory["value"] > 1 and memory["samples"] is None
