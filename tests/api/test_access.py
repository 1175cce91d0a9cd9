"""Principals, tenants and proven end users: the cases the issue reproduced, one by one.

The generated isolation suite (`test_isolation.py`) tries every route; these tests
pin the specific attacks from issue 11 and the operator-facing rules (key tenancy,
old data directories, token expiry, anonymous modes) with readable assertions.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import strawberry
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from metamedia.api.access import UndeclaredRouteError, undeclared, verify_declared
from metamedia.api.app import create_app
from metamedia.api.graphql.context import verify_fields_declared
from metamedia.services.runtime import Runtime
from tests.api.conftest import user_headers
from tests.conftest import ADMIN_HEADERS

ITEM = {"title": "Harbor Lights", "type": "movie", "description": "A ferry pilot's last run."}
SCI_FI_LIKES = ["mm-0040", "mm-0088", "mm-0057"]


def _key(client: TestClient, scopes: list[str], **where: Any) -> dict[str, str]:
    made = client.post("/v1/admin/keys", json={"name": "k", "scopes": scopes, **where})
    assert made.status_code == 201, made.text
    return {"X-API-Key": made.json()["key"]}


def test_a_tenant_key_cannot_reach_another_tenant(
    client: TestClient, anon_client: TestClient
) -> None:
    acme = _key(client, ["write"], tenant="acme")
    assert anon_client.put("/v1/media/h-1", json=ITEM, headers=acme).status_code == 201
    # The tenant comes from the key: naming another one is refused, not obeyed.
    for verb in ("put", "delete"):
        claimed = anon_client.request(
            verb.upper(), "/v1/media/mm-0001", json=ITEM, headers=acme | {"X-Tenant": "default"}
        )
        assert claimed.status_code == 403, claimed.text
        assert "tenant 'acme' only" in claimed.json()["error"]["message"]
    assert client.get("/v1/media/mm-0001").json()["title"] != ITEM["title"]
    # Its item lives in acme only; the default tenant (and anonymous callers) never see it.
    assert anon_client.get("/v1/media/h-1").status_code == 404
    assert client.get("/v1/media/h-1", headers={"X-Tenant": "acme"}).status_code == 200
    anonymous_claim = anon_client.get(
        "/v1/search", params={"q": "ferry"}, headers={"X-Tenant": "acme"}
    )
    assert anonymous_claim.status_code == 403


def test_private_items_need_a_proven_viewer(client: TestClient, anon_client: TestClient) -> None:
    private = client.get("/v1/media/mm-0164", headers={"X-User": "user-ana"}).json()
    assert private["visibility"] == "private" and private["owner"] == "user-ana"
    # Claiming to be the owner proves nothing: header, query parameter and GraphQL alike.
    assert anon_client.get("/v1/media/mm-0164", headers={"X-User": "user-ana"}).status_code == 403
    similar = anon_client.get("/v1/media/mm-0001/similar", params={"user": "user-ana"})
    assert similar.status_code == 403
    query = '{ similar(id: "mm-0001", user: "user-ana") { id } }'
    error = anon_client.post("/graphql", json={"query": query}).json()["errors"][0]
    assert error["extensions"]["status"] == 403
    # The owner's own token shows it; a token for someone else cannot claim her.
    ana = user_headers(client, "user-ana")
    assert anon_client.get("/v1/media/mm-0164", headers=ana).status_code == 200
    bob = user_headers(client, "bob")
    assert anon_client.get("/v1/media/mm-0164", headers=bob).status_code == 404
    as_ana = anon_client.get("/v1/media/mm-0164", headers=bob | {"X-User": "user-ana"})
    assert as_ana.status_code == 403


def test_user_data_needs_the_users_token_or_a_key(
    client: TestClient, anon_client: TestClient
) -> None:
    ana = user_headers(client, "ana")
    for path in ("", "/preferences", "/history", "/favorites", "/feed", "/export"):
        assert anon_client.get(f"/v1/users/ana{path}").status_code == 401, path
        assert anon_client.get(f"/v1/users/ana{path}", headers=ana).status_code == 200, path
    prefs = {"maturity_limit": "G", "blocked_owners": ["studio-x"]}
    assert anon_client.put("/v1/users/ana/preferences", json={}).status_code == 401
    assert client.get("/v1/users/ana/preferences").json()["maturity_limit"] is None
    done = anon_client.put("/v1/users/ana/preferences", json=prefs, headers=ana)
    assert done.status_code == 200 and done.json()["maturity_limit"] == "G"
    reader = _key(client, ["read"])
    assert anon_client.get("/v1/users/ana/history", headers=reader).status_code == 200
    assert anon_client.put("/v1/users/ana/preferences", json={}, headers=reader).status_code == 403
    assert anon_client.delete("/v1/users/ana", headers=ana).status_code == 403  # erasure: a key


def test_tokens_expire_and_stay_in_their_tenant(
    client: TestClient, anon_client: TestClient, demo_runtime: Runtime
) -> None:
    client.put("/v1/users/ana")
    expired = demo_runtime.keys.issue_user_token("default", "ana", ttl_s=-1)
    refused = anon_client.get("/v1/users/ana", headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
    ana = user_headers(client, "ana")
    other = anon_client.get("/v1/users/ana", headers=ana | {"X-Tenant": "acme"})
    assert other.status_code == 403
    # A token minted through a tenant key names that key's tenant.
    acme = _key(client, ["write"], tenant="acme")
    assert anon_client.put("/v1/users/zoe", headers=acme).status_code == 200
    minted = anon_client.post("/v1/users/zoe/token", headers=acme).json()["token"]
    assert demo_runtime.keys.verify_user_token(minted).tenant == "acme"  # type: ignore[union-attr]
    assert (
        anon_client.get("/v1/users/zoe", headers={"Authorization": f"Bearer {minted}"}).json()[
            "tenant"
        ]
        == "acme"
    )


def test_tenant_admins_manage_their_own_keys_only(
    client: TestClient, anon_client: TestClient
) -> None:
    acme_admin = _key(client, ["admin"], tenant="acme")
    globex = client.post(
        "/v1/admin/keys", json={"name": "g", "scopes": ["read"], "tenant": "globex"}
    ).json()
    made = anon_client.post(
        "/v1/admin/keys", json={"name": "bot", "scopes": ["write"]}, headers=acme_admin
    )
    assert made.status_code == 201 and made.json()["tenant"] == "acme"
    for body in ({"tenant": "globex"}, {"platform": True}):
        refused = anon_client.post(
            "/v1/admin/keys", json={"name": "x", "scopes": ["read"], **body}, headers=acme_admin
        )
        assert refused.status_code == 403, body
    listed = anon_client.get("/v1/admin/keys", headers=acme_admin).json()
    assert {k["tenant"] for k in listed} == {"acme"}
    gone = anon_client.delete(f"/v1/admin/keys/{globex['id']}", headers=acme_admin)
    assert gone.status_code == 404
    # Flags, experiments, caches and the audit log span tenants: platform keys only.
    assert anon_client.get("/v1/admin/flags", headers=acme_admin).status_code == 403
    assert anon_client.get("/v1/admin/audit", headers=acme_admin).status_code == 403
    assert client.get("/v1/admin/flags").status_code == 200


def test_keys_from_before_tenants_become_platform_keys(make_runtime: Any, tmp_path: Path) -> None:
    data = tmp_path / "old"
    data.mkdir()
    db = sqlite3.connect(data / "catalog.sqlite3")
    db.execute(
        "CREATE TABLE api_keys (pk INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(128) NOT NULL,"
        " prefix VARCHAR(16) NOT NULL, hash VARCHAR(64) NOT NULL UNIQUE,"
        " scopes VARCHAR(128) NOT NULL, created_at FLOAT NOT NULL, revoked_at FLOAT)"
    )
    secret = "mm_old_key_from_last_year"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    db.execute(
        "INSERT INTO api_keys (name, prefix, hash, scopes, created_at) VALUES (?,?,?,?,?)",
        ("legacy", "old", digest, "write", 1.0),
    )
    db.commit()
    db.close()
    runtime = make_runtime(data)
    with TestClient(create_app(runtime=runtime)) as anon:
        headers = {"X-API-Key": secret, "X-Tenant": "acme"}
        assert anon.put("/v1/media/old-1", json=ITEM, headers=headers).status_code == 201
        listed = anon.get("/v1/admin/keys", headers=dict(ADMIN_HEADERS)).json()
        assert [(k["name"], k["tenant"]) for k in listed] == [("legacy", None)]


def test_anonymous_access_is_a_setting(demo_runtime: Runtime, client: TestClient) -> None:
    with TestClient(create_app(runtime=demo_runtime)) as anon:
        assert anon.get("/v1/search", params={"q": "heist"}).status_code == 200
        assert anon.get("/v1/users/ana").status_code == 401
        demo_runtime.settings.anonymous = "off"
        assert anon.get("/v1/search", params={"q": "heist"}).status_code == 401
        assert anon.get("/v1/themes").status_code == 401
        gql = anon.post("/graphql", json={"query": '{ media(id: "mm-0001") { id } }'}).json()
        assert gql["errors"][0]["extensions"]["status"] == 401
        reader = _key(client, ["read"])
        assert anon.get("/v1/search", params={"q": "heist"}, headers=reader).status_code == 200
        assert anon.get("/healthz").status_code == 200
        demo_runtime.settings.anonymous = "open"
        assert anon.put("/v1/users/ana").status_code == 200
        assert anon.get("/v1/media/mm-0164", headers={"X-User": "user-ana"}).status_code == 200
        assert anon.delete("/v1/users/ana").status_code == 401  # erasure still needs a key


def test_feed_reasons_never_quote_titles_the_user_may_not_see(client: TestClient) -> None:
    client.put("/v1/users/zed")
    events = [{"item": i, "type": "like"} for i in SCI_FI_LIKES]
    client.post("/v1/users/zed/interactions", json={"events": events})
    titles = [client.get(f"/v1/media/{i}").json()["title"] for i in SCI_FI_LIKES]
    before = client.get("/v1/users/zed/feed", params={"limit": 20}).json()["items"]
    quoted = " ".join(r for i in before for r in i["reasons"])
    assert any(title in quoted for title in titles), quoted
    for media_id in SCI_FI_LIKES:  # their owner makes them private
        body = client.get(f"/v1/media/{media_id}").json()
        body |= {"visibility": "private", "owner": "someone-else", "allowed_users": []}
        assert client.put(f"/v1/media/{media_id}", json=body).status_code == 200
    client.post("/v1/admin/caches/clear")
    after = client.get("/v1/users/zed/feed", params={"limit": 20}).json()["items"]
    quoted = " ".join(r for i in after for r in i["reasons"])
    assert after and not any(title in quoted for title in titles), quoted


def test_a_route_or_field_without_a_rule_is_refused_at_start(demo_runtime: Runtime) -> None:
    app = create_app(runtime=demo_runtime)
    verify_declared(app)
    app.add_api_route("/v1/brand-new", lambda: {"ok": True}, methods=["GET"])
    assert undeclared(app) == [("GET", "/v1/brand-new")]
    with pytest.raises(UndeclaredRouteError, match="GET /v1/brand-new"):
        verify_declared(app)

    @strawberry.type
    class Query:
        @strawberry.field
        def secret_report(self) -> str:
            return "no"

    with pytest.raises(UndeclaredRouteError, match=r"Query\.secretReport"):
        verify_fields_declared(Query)


def test_the_live_channel_takes_its_tenant_from_the_credentials(
    client: TestClient, anon_client: TestClient
) -> None:
    acme = _key(client, ["read"], tenant="acme")
    for where in ("/v1/ws?tenant=default", "/v1/ws"):
        headers = acme | ({"X-Tenant": "default"} if where == "/v1/ws" else {})
        with (
            anon_client.websocket_connect(where, headers=headers) as ws,
            pytest.raises(WebSocketDisconnect) as closed,
        ):
            ws.receive_json()
        assert closed.value.code == 1008 and "tenant 'acme' only" in closed.value.reason
    # A platform key names the tenant; a user token of acme is acme's, whatever it asks.
    client.put("/v1/users/zoe", headers={"X-Tenant": "acme"})
    token = client.post("/v1/users/zoe/token", headers={"X-Tenant": "acme"}).json()["token"]
    with anon_client.websocket_connect("/v1/ws?tenant=default") as ws:
        ws.send_json({"type": "auth", "token": token})
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008
    with anon_client.websocket_connect("/v1/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "subscribe_feed"})
        reply = ws.receive_json()
        while reply["type"] == "heartbeat":
            reply = ws.receive_json()
        assert reply["type"] == "feed" and reply["user"] == "zoe"
