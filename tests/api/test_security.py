"""API keys (hashed at rest, scoped, revocable, audited), rate limits and body limits."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from tests.conftest import ADMIN_HEADERS

ITEM = {"title": "Signal Fire", "type": "movie", "description": "A lighthouse keeper."}


def test_catalog_writes_need_a_key_with_write_scope(
    client: TestClient, anon_client: TestClient
) -> None:
    refused = anon_client.put("/v1/media/k-1", json=ITEM)
    assert refused.status_code == 401
    assert "needs an API key with scope 'write'" in refused.json()["error"]["message"]
    assert anon_client.get("/v1/media/k-1").status_code == 404  # nothing was written

    made = client.post("/v1/admin/keys", json={"name": "reader", "scopes": ["read"]})
    assert made.status_code == 201
    reader = {"X-API-Key": made.json()["key"]}
    forbidden = anon_client.put("/v1/media/k-1", json=ITEM, headers=reader)
    assert forbidden.status_code == 403
    assert "needs 'write'" in forbidden.json()["error"]["message"]

    writer = client.post("/v1/admin/keys", json={"name": "ingest-bot", "scopes": ["write"]})
    bearer = {"Authorization": f"Bearer {writer.json()['key']}"}
    assert anon_client.put("/v1/media/k-1", json=ITEM, headers=bearer).status_code == 201
    assert anon_client.get("/v1/admin/keys", headers=bearer).status_code == 403
    bogus = anon_client.put("/v1/media/k-1", json=ITEM, headers={"X-API-Key": "mm_nope"})
    assert bogus.status_code == 401


def test_keys_are_stored_as_digests_and_revocation_is_audited(
    client: TestClient, anon_client: TestClient, demo_runtime: Any
) -> None:
    made = client.post("/v1/admin/keys", json={"name": "ci", "scopes": ["write"]}).json()
    secret = made["key"]
    db = sqlite3.connect(demo_runtime.settings.data_dir / "catalog.sqlite3")
    rows = db.execute("SELECT name, prefix, hash, scopes FROM api_keys").fetchall()
    db.close()
    assert rows == [("ci", made["prefix"], hashlib.sha256(secret.encode()).hexdigest(), "write")]
    assert all(secret not in str(col) for row in rows for col in row)
    listed = client.get("/v1/admin/keys").json()
    assert "key" not in listed[0] and listed[0]["name"] == "ci"

    headers = {"X-API-Key": secret}
    assert anon_client.delete("/v1/media/mm-0001", headers=headers).status_code == 204
    assert client.delete(f"/v1/admin/keys/{made['id']}").status_code == 204
    assert anon_client.delete("/v1/media/mm-0002", headers=headers).status_code == 401
    assert client.delete(f"/v1/admin/keys/{made['id']}").status_code == 404

    audit = client.get("/v1/admin/audit").json()
    assert [(e["action"], e["target"]) for e in audit[:2]] == [
        ("key.revoke", f"key#{made['id']}"),
        ("key.create", f"key#{made['id']}"),
    ]
    assert audit[0]["actor"] == "bootstrap-admin"
    assert secret not in str(audit)


def test_admin_endpoints_refuse_anonymous_callers(anon_client: TestClient) -> None:
    for path in ("/v1/admin/keys", "/v1/admin/audit"):
        response = anon_client.get(path)
        assert response.status_code == 401, path
    bad = anon_client.post(
        "/v1/admin/keys", json={"name": "x", "scopes": ["root"]}, headers=dict(ADMIN_HEADERS)
    )
    assert bad.status_code == 422 and "root" in bad.json()["error"]["message"]


def test_end_user_writes_follow_the_anonymous_setting(make_runtime: Any) -> None:
    open_rt = make_runtime(anonymous="open")
    with TestClient(create_app(runtime=open_rt)) as anon:
        assert anon.put("/v1/users/ana").status_code == 200
    closed_rt = make_runtime(open_rt.settings.data_dir.parent / "closed")
    assert closed_rt.settings.anonymous == "read"  # the default
    with TestClient(create_app(runtime=closed_rt)) as anon:
        refused = anon.put("/v1/users/ana")
        assert refused.status_code == 401
        assert anon.put("/v1/users/ana", headers=dict(ADMIN_HEADERS)).status_code == 200
        token = anon.post("/v1/users/ana/token", headers=dict(ADMIN_HEADERS)).json()["token"]
        own = anon.put("/v1/users/ana", headers={"Authorization": f"Bearer {token}"})
        assert own.status_code == 200


def _guarded(make_runtime: Any, **settings: Any) -> Iterator[TestClient]:
    runtime = make_runtime(**settings)
    with TestClient(create_app(runtime=runtime)) as test_client:
        yield test_client


def test_rate_limit_answers_429_with_retry_after_per_ip_and_per_key(make_runtime: Any) -> None:
    runtime = make_runtime(rate_limit_per_ip="3/minute", rate_limit_per_key="5/minute")
    with TestClient(create_app(runtime=runtime)) as anon:
        codes = [anon.get("/v1/media/none").status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]
        limited = anon.get("/v1/media/none")
        assert limited.status_code == 429
        retry = int(limited.headers["Retry-After"])
        assert 1 <= retry <= 60
        assert limited.json()["error"]["type"] == "RateLimited"
        assert anon.get("/healthz").status_code == 200  # probes are never limited
        # A verified key has its own, larger budget; a made-up key does not escape the IP limit.
        keyed = [
            anon.get("/v1/media/none", headers=dict(ADMIN_HEADERS)).status_code for _ in range(6)
        ]
        assert keyed == [404] * 5 + [429]
        assert anon.get("/v1/media/none", headers={"X-API-Key": "made-up"}).status_code == 429


def test_request_bodies_over_the_limit_get_413_declared_or_streamed(make_runtime: Any) -> None:
    runtime = make_runtime(max_body_bytes=2048)
    with TestClient(create_app(runtime=runtime), headers=dict(ADMIN_HEADERS)) as client:
        big = {"items": [dict(ITEM, id=f"b-{i}") for i in range(40)]}
        declared = client.post("/v1/media", json=big)
        assert declared.status_code == 413
        assert "exceeds the limit of 2048 bytes" in declared.json()["error"]["message"]

        def chunks() -> Iterator[bytes]:
            yield b'{"items": ['
            for i in range(100):
                yield (b"" if i == 0 else b",") + b'{"id": "s-%d", "title": "T"}' % i
            yield b"]}"

        streamed = client.post(
            "/v1/media", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert client.get("/v1/media/s-0").status_code == 404
        small = client.post("/v1/media", json={"items": [dict(ITEM, id="ok-1")]})
        assert small.status_code == 200 and small.json()["accepted"] == 1
