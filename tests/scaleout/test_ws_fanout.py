"""WebSocket pushes across replicas: a client on B hears about a write made on A."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_HEADERS


def _until(ws: Any, kind: str, limit: int = 30) -> dict[str, Any]:
    for _ in range(limit):
        message: dict[str, Any] = ws.receive_json()
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message within {limit}")


def test_a_feed_watcher_on_b_gets_the_push_for_an_interaction_on_a(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    with (
        TestClient(create_app(runtime=a), headers=dict(ADMIN_HEADERS)) as on_a,
        TestClient(create_app(runtime=b), headers=dict(ADMIN_HEADERS)) as on_b,
    ):
        assert a.shared is not None and b.shared is not None
        assert a.shared.bus.connected.wait(10) and b.shared.bus.connected.wait(10)  # type: ignore[attr-defined]
        on_a.put("/v1/users/ana")
        with on_b.websocket_connect("/v1/ws") as ws:
            assert ws.receive_json()["type"] == "ready"
            ws.send_json({"type": "subscribe_feed", "user": "ana", "limit": 5})
            top = _until(ws, "feed")["items"][0]["id"]
            event = {"events": [{"item": top, "type": "dislike"}]}
            assert on_a.post("/v1/users/ana/interactions", json=event).json()["recorded"] == 1
            pushed = _until(ws, "feed")
            assert top not in [item["id"] for item in pushed["items"]]


def test_a_saved_search_on_b_matches_an_item_put_on_a(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    saved = {"type": "subscribe_search", "id": "lights", "query": "lighthouse keeper winter"}
    with (
        TestClient(create_app(runtime=a), headers=dict(ADMIN_HEADERS)) as on_a,
        TestClient(create_app(runtime=b), headers=dict(ADMIN_HEADERS)) as on_b,
        on_b.websocket_connect("/v1/ws") as ws,
    ):
        assert ws.receive_json()["type"] == "ready"
        ws.send_json(saved)
        _until(ws, "subscribed")
        new_item = {
            "title": "The Last Winter at Skerry Light",
            "description": "A lighthouse keeper spends one last winter alone on the rock.",
        }
        assert on_a.put("/v1/media/light-1", json=new_item).status_code == 201
        match = _until(ws, "search_match")
        assert [item["id"] for item in match["items"]] == ["light-1"]
