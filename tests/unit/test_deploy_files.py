"""The Prometheus and Grafana files in deploy/ use metrics the service really exports.

Every `metamedia_*` name in the alert rules and in the dashboard's PromQL must
appear in a running app's /metrics after a little traffic, every `stage` they
filter on must have been observed, and the alert thresholds must be the
service's own defaults: so the files cannot drift from the code unnoticed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.config import Settings
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_HEADERS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
SCRAPE = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "metamedia-dashboard.json"

METRIC = re.compile(r"metamedia_[a-z_]+")
STAGE = re.compile(r'stage=~?"([a-z_|]+)"')


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            for target in panel.get("targets", []):
                yield target["expr"]
            yield from walk(panel.get("panels", []))

    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return list(walk(document["panels"]))


@pytest.fixture(scope="module")
def exposition(
    demo_data_dir: Path, tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[str]:
    """/metrics of the real app after a search, a feed, a write and a failed request."""
    copy = tmp_path_factory.mktemp("deploy") / "data"
    shutil.copytree(demo_data_dir, copy)
    runtime = Runtime.open(
        Settings(data_dir=copy, admin_key=ADMIN_HEADERS["X-API-Key"]), embedder=embedder
    )
    try:
        with TestClient(create_app(runtime=runtime), headers=dict(ADMIN_HEADERS)) as client:
            assert client.get("/v1/search", params={"q": "haunted lighthouse"}).status_code == 200
            assert client.put("/v1/users/ops").status_code == 200
            assert client.get("/v1/users/ops/feed").status_code == 200
            assert client.get("/v1/media/no-such-item").status_code == 404
            yield client.get("/metrics").text
    finally:
        runtime.close()


def exported_names(body: str) -> set[str]:
    return {m.group(0) for m in re.finditer(r"^metamedia_[a-z_]+", body, re.MULTILINE)}


def used_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC.findall(expr)}


def used_stages(exprs: list[str]) -> set[str]:
    return {stage for expr in exprs for group in STAGE.findall(expr) for stage in group.split("|")}


def test_alert_rules_parse_and_have_for_labels_and_annotations() -> None:
    rules = alert_rules()
    assert len(rules) == 5
    for rule in rules:
        assert rule["alert"].startswith("Metamedia")
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"medium", "high"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_scrape_config_parses_and_loads_the_rules() -> None:
    config = yaml.safe_load(SCRAPE.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    assert (SCRAPE.parent / config["rule_files"][0]).exists()
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"]


def test_alert_thresholds_are_the_service_defaults() -> None:
    defaults = Settings()
    expected = {
        "feed_latency_p95": (defaults.alert_feed_p95_s, ">"),
        "process_memory": (defaults.alert_memory_bytes, ">"),
        "cache_hit_rate": (defaults.alert_cache_hit_rate_min, "<"),
        "db_query_latency_p95": (defaults.alert_db_query_s, ">"),
        "error_rate": (defaults.alert_error_rate, ">"),
    }
    window = f"[{int(defaults.alert_window_s // 60)}m]"
    seen = {}
    for rule in alert_rules():
        expr = rule["expr"]
        comparison = re.search(r"\s([<>])\s*([0-9.]+)\s", expr)
        assert comparison is not None, rule["alert"]
        seen[rule["labels"]["rule"]] = (float(comparison.group(2)), comparison.group(1))
        if rule["labels"]["rule"] != "process_memory":
            assert window in expr, rule["alert"]
            minimum = re.search(r">=\s*(\d+)", expr)
            assert minimum is not None and int(minimum.group(1)) == defaults.alert_min_samples
    assert seen == expected


def test_alert_rules_use_exported_metrics(exposition: str) -> None:
    exprs = [rule["expr"] for rule in alert_rules()]
    exported = exported_names(exposition)
    assert used_names(exprs) - exported == set()
    for stage in used_stages(exprs):
        assert f'stage="{stage}"' in exposition, stage


def test_dashboard_promql_uses_exported_metrics(exposition: str) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    names = used_names(exprs)
    assert names - exported_names(exposition) == set()
    # The panels the service promises: requests, latency, errors, stages, caches,
    # index, outbox, memory, database.
    for needed in (
        "metamedia_http_requests_total",
        "metamedia_http_request_seconds_bucket",
        "metamedia_errors_total",
        "metamedia_stage_seconds_bucket",
        "metamedia_cache_hits_total",
        "metamedia_cache_bytes",
        "metamedia_index_vectors",
        "metamedia_index_tombstones",
        "metamedia_outbox_lag",
        "metamedia_process_resident_bytes",
        "metamedia_db_query_seconds_bucket",
    ):
        assert needed in names, needed
    stages = used_stages(exprs)
    assert stages == {"search", "query_embedding", "index_search", "feed"}
    for stage in stages:
        assert f'stage="{stage}"' in exposition, stage


def test_dashboard_is_importable_grafana_json() -> None:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert document["uid"] and document["title"] and document["schemaVersion"] >= 30
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    for panel in document["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        for target in panel.get("targets", []):
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
