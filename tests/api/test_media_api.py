"""`/v1/media`: CRUD, batch upsert with per-item errors, health and docs."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.waiting import wait_until


def test_get_put_delete_round_trip(client: TestClient) -> None:
    got = client.get("/v1/media/mm-0063")
    assert got.status_code == 200 and got.json()["title"] == "The Ninth Vault"

    body = {
        "title": "Glass Harbour",
        "description": "A lighthouse keeper decodes messages hidden in ship horns.",
        "genres": ["Mystery"],
        "year": 2024,
        "type": "movie",
    }
    created = client.put("/v1/media/new-1", json=body)
    assert created.status_code == 201 and created.json()["status"] == "inserted"
    assert created.json()["item"]["genres"] == ["mystery"]
    again = client.put("/v1/media/new-1", json=body)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"

    found = client.post("/v1/search", json={"query": "foghorn code lighthouse", "limit": 3})
    assert found.json()["results"][0]["id"] == "new-1"

    assert client.delete("/v1/media/new-1").status_code == 204
    assert client.get("/v1/media/new-1").status_code == 404
    after = client.post("/v1/search", json={"query": "foghorn code lighthouse", "limit": 50})
    assert "new-1" not in [r["id"] for r in after.json()["results"]]
    assert client.delete("/v1/media/new-1").status_code == 404


def test_update_is_visible_to_the_next_search(client: TestClient) -> None:
    item = client.get("/v1/media/mm-0063").json()
    item["description"] = "An origami master folds paper cranes for a dying village."
    assert client.put("/v1/media/mm-0063", json=item).json()["status"] == "updated"
    data = client.post(
        "/v1/search", json={"query": "folding paper birds", "mode": "semantic", "limit": 1}
    ).json()
    assert data["results"][0]["id"] == "mm-0063"


def test_put_refuses_a_mismatched_or_invalid_body(client: TestClient) -> None:
    mismatch = client.put("/v1/media/a", json={"id": "b", "title": "T"})
    assert mismatch.status_code == 422 and "does not match" in mismatch.json()["error"]["message"]
    invalid = client.put("/v1/media/a", json={"title": "T", "year": "soon"})
    assert invalid.status_code == 422 and "year" in invalid.json()["error"]["message"]


def test_batch_upsert_keeps_good_items_and_reports_bad_ones(client: TestClient) -> None:
    response = client.post(
        "/v1/media",
        json={
            "items": [
                {
                    "id": "b-1",
                    "title": "Salt Roads",
                    "description": "Camel caravans cross a desert.",
                },
                {"id": "b-2", "title": ""},
                "not an object",
                {"id": "b-3", "title": "Late Frost", "type": "podcast"},
                {"id": "mm-0001", "title": "Changed Title", "description": "A new description."},
            ]
        },
    )
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["accepted"], data["rejected"]) == (2, 3)
    statuses = {r["index"]: r for r in data["results"]}
    assert statuses[0]["status"] == "inserted"
    assert statuses[1]["status"] == "rejected" and "title" in statuses[1]["error"]
    assert statuses[2]["status"] == "rejected" and "not a JSON object" in statuses[2]["error"]
    assert statuses[3]["status"] == "rejected" and "podcast" in statuses[3]["error"]
    assert statuses[4]["status"] == "updated"
    assert client.get("/v1/media/b-1").status_code == 200
    assert client.get("/v1/media/b-3").status_code == 404


def test_batch_body_must_be_a_list(client: TestClient) -> None:
    response = client.post("/v1/media", json={"things": []})
    assert response.status_code == 422 and "items" in response.json()["error"]["message"]


def test_private_item_is_hidden_from_others(client: TestClient) -> None:
    assert client.get("/v1/media/mm-0164").status_code == 404
    owner = client.get("/v1/media/mm-0164", headers={"X-User": "user-ana"})
    assert owner.status_code == 200


def test_readiness_waits_for_warm_up(client: TestClient) -> None:
    """503 until the index and model are loaded; then ready (200)."""
    app = client.app
    assert wait_until(lambda: client.get("/readyz").status_code == 200, 30.0)
    assert client.get("/readyz").json()["status"] == "ready"
    app.state.warm = False  # type: ignore[attr-defined]
    try:
        cold = client.get("/readyz")
        assert cold.status_code == 503
        assert cold.json() == {
            "status": "not ready",
            "checks": {"warm": False, "database": "ok"},
        }
    finally:
        app.state.warm = True  # type: ignore[attr-defined]


def test_health_readiness_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code in (200, 503)
    spec = client.get("/openapi.json").json()
    assert "/v1/search" in spec["paths"] and "/v1/media/{media_id}" in spec["paths"]
    assert client.get("/docs").status_code == 200
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and "message" in missing.json()["error"]
