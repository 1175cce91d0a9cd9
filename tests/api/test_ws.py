"""`/v1/ws`: authentication, feed pushes after interactions, saved-search pushes after
ingest (in-process and from another process), heartbeats, resume and back-pressure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from metamedia.api.app import create_app
from metamedia.api.routes.ws import _pump
from metamedia.services.live import Mailbox, Session
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY

NEW_ITEM = {
    "title": "Glass Harbour",
    "description": "A lighthouse keeper decodes secret messages hidden in foghorn signals.",
    "genres": ["Mystery"],
    "year": 2024,
    "type": "movie",
}
SAVED = {"type": "subscribe_search", "id": "lights", "query": "foghorn code lighthouse keeper"}


def _until(ws: Any, kind: str, limit: int = 20) -> dict[str, Any]:
    """The next message of `kind`, skipping heartbeats and acks."""
    for _ in range(limit):
        message: dict[str, Any] = ws.receive_json()
        if message["type"] == kind:
            return message
        assert message["type"] in {"heartbeat", "subscribed", "pong", "feed"}, message
    raise AssertionError(f"no {kind} message within {limit}")


def test_connection_needs_a_key_or_a_user_token(
    client: TestClient, anon_client: TestClient
) -> None:
    with anon_client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "subscribe_feed", "user": "ana"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008 and "first message must be" in closed.value.reason
    with anon_client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "auth", "key": "mm_wrong"})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert "unknown or revoked" in closed.value.reason

    client.put("/v1/users/ana")
    client.put("/v1/users/ben")
    assert anon_client.post("/v1/users/ana/token").status_code == 401
    token = client.post("/v1/users/ana/token").json()["token"]
    with anon_client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "subscribe_feed", "user": "ben"})
        assert "only subscribe to its own feed" in _until(ws, "error")["message"]
        ws.send_json({"type": "subscribe_feed"})
        assert _until(ws, "feed")["user"] == "ana"
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with anon_client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": forged})
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def test_an_interaction_pushes_the_refreshed_top_of_the_feed(client: TestClient) -> None:
    client.put("/v1/users/ana")
    with client.websocket_connect("/v1/ws") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "subscribe_feed", "user": "ana", "limit": 5})
        first = _until(ws, "feed")
        top = first["items"][0]["id"]
        event = {"events": [{"item": top, "type": "dislike"}]}
        assert client.post("/v1/users/ana/interactions", json=event).json()["recorded"] == 1
        pushed = _until(ws, "feed")
        assert len(pushed["items"]) == 5
        assert top not in [item["id"] for item in pushed["items"]]


def test_a_new_item_matching_a_saved_search_is_pushed_and_others_are_not(
    client: TestClient,
) -> None:
    with client.websocket_connect("/v1/ws", headers=dict(ADMIN_HEADERS)) as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json(SAVED)
        assert _until(ws, "subscribed")["id"] == "lights"
        unrelated = {"title": "Sunday Roast", "description": "A cooking show about roasts."}
        client.put("/v1/media/cook-1", json=unrelated)
        client.put("/v1/media/glass-1", json=NEW_ITEM)
        match = _until(ws, "search_match")
        assert match["id"] == "lights"
        assert [item["id"] for item in match["items"]] == ["glass-1"]


def test_an_ingest_by_another_process_reaches_saved_searches(
    demo_runtime: Any, make_runtime: Any
) -> None:
    other = make_runtime(demo_runtime.settings.data_dir)  # a CLI ingest, say
    with (
        TestClient(create_app(runtime=demo_runtime)) as client,
        client.websocket_connect("/v1/ws", headers={"X-API-Key": ADMIN_KEY}) as ws,
    ):
        assert ws.receive_json()["type"] == "ready"
        ws.send_json(SAVED)
        _until(ws, "subscribed")
        other.catalog.put("glass-2", NEW_ITEM, "default")
        match = _until(ws, "search_match")  # found by the server's outbox follower
        assert [item["id"] for item in match["items"]] == ["glass-2"]


def test_heartbeats_bad_messages_and_resume_after_a_dropped_connection(
    make_runtime: Any, demo_runtime: Any
) -> None:
    runtime = make_runtime(demo_runtime.settings.data_dir, ws_heartbeat_s=0.2, ws_idle_timeout_s=30)
    with TestClient(create_app(runtime=runtime), headers=dict(ADMIN_HEADERS)) as client:
        with client.websocket_connect("/v1/ws") as ws:
            ready = ws.receive_json()
            assert ready["heartbeat_s"] == 0.2
            assert ws.receive_json()["type"] == "heartbeat"
            ws.send_text("{not json")
            assert "not JSON" in _until(ws, "error")["message"]
            ws.send_json({"type": "launch"})
            assert "unknown message type 'launch'" in _until(ws, "error")["message"]
            ws.send_json({**SAVED, "filters": {"year_min": 2020, "year_max": 1990}})
            assert "year range is inverted" in _until(ws, "error")["message"]
            ws.send_json(SAVED)
            _until(ws, "subscribed")
            ws.send_json({"type": "ping"})
            _until(ws, "pong")  # still open after the errors
        # Dropped without "bye": the subscriptions wait for the same key to resume them.
        with client.websocket_connect(f"/v1/ws?resume={ready['session']}") as ws:
            again = ws.receive_json()
            assert again["resumed"] and again["session"] == ready["session"]
            client.put("/v1/media/glass-3", json=NEW_ITEM)
            assert _until(ws, "search_match")["items"][0]["id"] == "glass-3"
            ws.send_json({"type": "bye"})
        with client.websocket_connect(f"/v1/ws?resume={ready['session']}") as ws:
            assert not ws.receive_json()["resumed"]  # "bye" ended that session


def test_rate_limited_connections_are_refused(make_runtime: Any) -> None:
    runtime = make_runtime(rate_limit_per_ip="1/minute")
    with TestClient(create_app(runtime=runtime)) as anon:
        anon.get("/v1/media/none")
        with (
            pytest.raises((WebSocketDisconnect, WebSocketDenialResponse)),
            anon.websocket_connect("/v1/ws") as ws,
        ):
            ws.receive_json()


def test_mailbox_coalesces_feeds_and_drops_the_oldest_when_full() -> None:
    async def scenario() -> list[dict[str, Any]]:
        box = Mailbox(capacity=3)
        for i in range(10):
            box.put({"type": "feed", "n": i}, coalesce_key="feed:ana")
        assert len(box) == 1
        for i in range(5):
            box.put({"type": "search_match", "n": i})
        assert len(box) == 3 and box.dropped == 3
        return [await box.get() for _ in range(4)]

    got = asyncio.run(scenario())
    assert got[0] == {"type": "lag", "dropped": 3}
    assert [m["n"] for m in got[1:]] == [2, 3, 4]


class _Peer:
    """The far end of a socket (outside this machine): one that reads, one that stalls."""

    def __init__(self, stalls: bool) -> None:
        self.stalls = stalls
        self.received: list[dict[str, Any]] = []
        self.closed: int | None = None

    async def send_json(self, message: dict[str, Any]) -> None:
        if self.stalls:
            await asyncio.sleep(3600)
        self.received.append(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = code


def test_a_stalled_client_is_cut_off_without_delaying_others(make_runtime: Any) -> None:
    runtime = make_runtime(ws_send_timeout_s=0.2, ws_heartbeat_s=30)

    async def scenario() -> tuple[_Peer, _Peer, bool]:
        slow, fast = _Peer(stalls=True), _Peer(stalls=False)
        sessions = [Session(name, "default", "k", None, Mailbox(64)) for name in ("slow", "fast")]
        pumps = [
            asyncio.create_task(_pump(peer, session, runtime))  # type: ignore[arg-type]
            for peer, session in zip((slow, fast), sessions, strict=True)
        ]
        for i in range(20):
            for session in sessions:
                session.mailbox.put({"type": "search_match", "n": i})
            await asyncio.sleep(0)
        while len(fast.received) < 20:
            await asyncio.sleep(0.01)
        slow_still_waiting = not pumps[0].done()
        await asyncio.wait_for(pumps[0], 5)  # the slow pump ends by itself
        pumps[1].cancel()
        return slow, fast, slow_still_waiting

    slow, fast, slow_still_waiting = asyncio.run(scenario())
    assert [m["n"] for m in fast.received] == list(range(20))
    assert slow_still_waiting  # everything reached the fast client while the slow one hung
    assert slow.closed == 1013 and slow.received == []
