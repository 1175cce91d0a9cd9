"""Metrics, request ids and structured logs."""

from __future__ import annotations

import io
import json
import logging

from fastapi.testclient import TestClient

from metamedia.observability.logs import JsonFormatter


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
        'metamedia_http_request_seconds_bucket{le="0.05",method="POST",route="/v1/search"}' in body
    )
    assert 'metamedia_stage_seconds_count{stage="query_embedding"}' in body
    assert 'metamedia_errors_total{type="InvalidRequestError"} 1.0' in body
    assert "metamedia_catalog_items 170.0" in body and "metamedia_index_vectors 170.0" in body
    assert "metamedia_query_cache_hits_total 1.0" in body
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
    assert lines[-1]["request_id"] == "abc-123" and lines[-1]["ms"] > 0
    assert "mm-0164" not in stream.getvalue(), "ids in paths stay out of the logs"
