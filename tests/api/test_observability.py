"""Metrics, request ids and structured logs."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.observability.logs import JsonFormatter
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_KEY


def sample(body: str, name: str, labels: str = "") -> float:
    """The value of one sample line of a Prometheus text exposition."""
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in body.splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{wanted} not exported")


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the product logs (every level), as the JSON lines it writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("metamedia")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_metrics_count_requests_latency_errors_and_index(client: TestClient) -> None:
    client.post("/v1/search", json={"query": "haunted house"})
    client.post("/v1/search", json={"query": "haunted house"})
    client.post("/v1/search", json={"query": ""})
    client.get("/v1/media/mm-0001")
    body = client.get("/metrics").text
    assert (
        'metamedia_http_requests_total{method="POST",route="/v1/search",status="200"} 2.0' in body
    )
    assert (
        'metamedia_http_requests_total{method="POST",route="/v1/search",status="422"} 1.0' in body
    )
    assert 'route="/v1/media/{media_id:path}"' in body and "mm-0001" not in body
    assert (
        'metamedia_http_request_seconds_bucket{le="0.05",method="POST",route="/v1/search",'
        'status="200"}' in body
    )
    assert (
        'metamedia_http_request_seconds_count{method="POST",route="/v1/search",status="422"} 1.0'
        in body
    )
    assert 'metamedia_stage_seconds_count{stage="query_embedding"}' in body
    assert 'metamedia_errors_total{type="InvalidRequestError"} 1.0' in body
    assert "metamedia_catalog_items 170.0" in body and "metamedia_index_vectors 170.0" in body
    assert 'metamedia_cache_hits_total{cache="search"} 1.0' in body
    assert "metamedia_outbox_lag 0.0" in body
    assert "process_resident_memory_bytes" in body


def test_request_id_is_returned_and_logged(client: TestClient) -> None:
    generated = client.get("/healthz")
    assert len(generated.headers["X-Request-ID"]) == 32
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("metamedia.access")
    logger.addHandler(handler)
    try:
        echoed = client.get("/v1/media/mm-0164", headers={"X-Request-ID": "abc-123"})
    finally:
        logger.removeHandler(handler)
    assert echoed.headers["X-Request-ID"] == "abc-123"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[-1]["route"] == "/v1/media/{media_id:path}" and lines[-1]["status"] == 404
    assert lines[-1]["request_id"] == "abc-123" and "ms" in lines[-1]
    assert "mm-0164" not in stream.getvalue(), "ids in paths stay out of the logs"


def test_feed_index_db_and_memory_metrics(client: TestClient) -> None:
    assert client.put("/v1/users/obs-user").status_code == 200
    assert client.get("/v1/users/obs-user/feed", params={"limit": 5}).status_code == 200
    assert client.get("/v1/search", params={"q": "lighthouse keeper"}).status_code == 200
    body = client.get("/metrics").text
    assert sample(body, "metamedia_stage_seconds_count", 'stage="feed"') == 1.0
    # Every vector search (the search's and the feed's content candidates) is timed.
    assert sample(body, "metamedia_stage_seconds_count", 'stage="index_search"') >= 1.0
    assert sample(body, "metamedia_db_query_seconds_count", 'operation="select"') > 0
    assert sample(body, "metamedia_db_query_seconds_count", 'operation="insert"') > 0
    assert 'metamedia_db_query_seconds_bucket{le="0.0001",operation="select"}' in body
    rss = sample(body, "metamedia_process_resident_bytes")
    assert rss > 10 * 1024 * 1024  # the model alone is tens of MB
    assert (
        sample(
            body,
            "metamedia_http_request_seconds_count",
            'method="GET",route="/v1/users/{user_id}/feed",status="200"',
        )
        == 1.0
    )
    assert "obs-user" not in body and "lighthouse" not in body


def test_statements_are_not_counted_after_the_app_stops(demo_runtime: Runtime) -> None:
    app = create_app(runtime=demo_runtime)
    with TestClient(app) as test_client:
        test_client.get("/v1/media/mm-0001")
    exposition = app.state.metrics.render
    before = sample(exposition().decode(), "metamedia_db_query_seconds_count", 'operation="select"')
    demo_runtime.repo.count()
    after = sample(exposition().decode(), "metamedia_db_query_seconds_count", 'operation="select"')
    assert before == after > 0


def test_logs_hold_no_query_text_and_no_api_key(client: TestClient) -> None:
    query = "zanzibar umbrella heist 7731"
    with captured_logs() as stream:
        ok = client.post("/v1/search", json={"query": query}, headers={"X-Request-ID": "rid-1"})
        client.get("/v1/search", params={"q": query})
        client.post("/v1/search", json={"query": query, "limit": 0})  # a rejected one too
        client.get("/v1/search", params={"q": query}, headers={"Authorization": "Bearer wrong-key"})
        client.get("/v1/admin/keys", headers={"X-API-Key": "not-a-key-" + query})
    assert ok.status_code == 200
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert any(line.get("request_id") == "rid-1" for line in lines), "the capture saw requests"
    assert len([line for line in lines if line.get("route") == "/v1/search"]) == 4
    for secret in ("zanzibar", "7731", ADMIN_KEY, "wrong-key", "not-a-key"):
        assert secret not in text, secret
    assert not re.search(r"umbrella|heist", text)


def test_the_vector_plan_is_explained_and_counted(client: TestClient) -> None:
    """Each hit says how the dense side was searched, and /metrics counts the plans
    by index. (This small catalog has a flat index: exact is the only plan; the cost
    model's choices are tested in tests/unit/test_index.py.)"""
    before = client.get("/metrics").text
    hybrid = client.post("/v1/search", json={"query": "a lighthouse keeper alone at sea"})
    filtered = client.post(
        "/v1/search", json={"query": "lighthouse keeper", "filters": {"year_min": 1990}}
    )
    keyword = client.post("/v1/search", json={"query": "lighthouse", "mode": "keyword"})
    for response in (hybrid, filtered):
        hits = response.json()["results"]
        assert hits and {h["explanation"]["vector_plan"] for h in hits} == {"exact"}
    assert {h["explanation"]["vector_plan"] for h in keyword.json()["results"]} == {None}
    after = client.get("/metrics").text
    labels = 'index="passages",plan="exact"'
    name = "metamedia_vector_search_plans_total"
    counted = sample(after, name, labels) - (
        sample(before, name, labels) if f"{name}{{{labels}}}" in before else 0.0
    )
    assert counted >= 2  # one per query window, per search
