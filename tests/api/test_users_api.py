"""Users, interactions, real-time feed, "more like this" and GDPR, over HTTP."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from metamedia.services.runtime import Runtime

SCI_FI_LIKES = ["mm-0040", "mm-0088", "mm-0057"]  # Station Meridian, Ninety Minutes of Air, ...


def _feed(client: TestClient, user: str, limit: int = 20, **headers: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/users/{user}/feed", params={"limit": limit}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _genres(client: TestClient, ids: list[str]) -> list[list[str]]:
    return [client.get(f"/v1/media/{i}").json()["genres"] for i in ids]


def _share(client: TestClient, items: list[dict[str, Any]], genre: str) -> float:
    genres = _genres(client, [i["id"] for i in items])
    return sum(genre in g for g in genres) / max(len(genres), 1)


def _events(client: TestClient, user: str, events: list[dict[str, Any]], **headers: str) -> Any:
    response = client.post(
        f"/v1/users/{user}/interactions", json={"events": events}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_likes_lean_the_next_feed_and_a_dislike_moves_it(client: TestClient) -> None:
    assert client.put("/v1/users/ana").status_code == 200
    cold = _feed(client, "ana")
    assert len(cold) == 20 and all(item["reasons"] for item in cold)
    _events(client, "ana", [{"item": i, "type": "like"} for i in SCI_FI_LIKES])
    warm = _feed(client, "ana")
    assert _share(client, warm[:10], "sci-fi") > _share(client, cold[:10], "sci-fi")
    assert _share(client, warm[:10], "sci-fi") >= 0.5
    assert any(r.startswith("because you liked") for item in warm for r in item["reasons"])
    top = warm[0]["id"]
    _events(client, "ana", [{"item": top, "type": "dislike"}])
    after = [i["id"] for i in _feed(client, "ana")]
    assert top not in after


def test_watched_items_never_reappear_and_paging_has_no_duplicates(client: TestClient) -> None:
    client.put("/v1/users/ben")
    first = client.get("/v1/users/ben/feed", params={"limit": 10}).json()
    watched = [i["id"] for i in first["items"][:3]]
    _events(
        client,
        "ben",
        [
            {"item": watched[0], "type": "complete"},
            {"item": watched[1], "type": "progress", "value": 95},
            {"item": watched[2], "type": "view"},
        ],
    )
    pages, cursor = [], None
    for _ in range(5):
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/users/ben/feed", params=params).json()
        pages.extend(i["id"] for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(pages) == len(set(pages)) == 50
    assert not set(watched) & set(pages)


def test_preferences_maturity_and_platforms_shape_the_feed(client: TestClient) -> None:
    prefs = {"liked_genres": ["Horror"], "platforms": ["netflix"], "maturity_limit": "PG"}
    assert client.put("/v1/users/kid", json={"preferences": prefs}).status_code == 200
    assert client.get("/v1/users/kid/preferences").json()["liked_genres"] == ["horror"]
    items = _feed(client, "kid", limit=30)
    allowed = {"G", "PG", "TV-Y", "TV-G", "TV-Y7", "TV-PG"}
    for item in items:
        assert client.get(f"/v1/media/{item['id']}").json()["maturity_rating"] in allowed
    bad = client.put("/v1/users/kid/preferences", json={"liked_genres": "horror"})
    assert bad.status_code == 422 and "liked_genres" in bad.json()["error"]["message"]


def test_bad_events_are_rejected_one_by_one(client: TestClient) -> None:
    client.put("/v1/users/cy")
    future = time.time() + 86_400
    data = _events(
        client,
        "cy",
        [
            {"item": "mm-0001", "type": "like"},
            {"item": "nope", "type": "like"},
            {"item": "mm-0002", "type": "teleport"},
            {"item": "mm-0003", "type": "rate", "value": 7},
            {"item": "mm-0004", "type": "view", "ts": future},
            {"item": "mm-0005", "type": "rate", "value": 4.5, "context": {"surface": "feed"}},
            {"item": "mm-0001", "type": "like", "ts": 1_700_000_000},
            {"item": "mm-0001", "type": "like", "ts": 1_700_000_000},
        ],
    )
    statuses = [r["status"] for r in data["results"]]
    assert statuses == [
        "recorded",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "recorded",
        "recorded",
        "duplicate",
    ]
    errors = [r["error"] or "" for r in data["results"]]
    assert "unknown item" in errors[1] and "type" in errors[2]
    assert "between 0.5 and 5" in errors[3] and "future" in errors[4]
    history = client.get("/v1/users/cy/history").json()
    assert [h["item"] for h in history][:2] == ["mm-0005", "mm-0001"]
    assert history[0]["context"] == {"surface": "feed"}
    unknown = client.post("/v1/users/ghost/interactions", json={"events": []})
    assert (
        unknown.status_code == 404 and "PUT /v1/users/ghost" in unknown.json()["error"]["message"]
    )


def test_favorites_follow_favorite_and_unfavorite(client: TestClient) -> None:
    client.put("/v1/users/dee")
    _events(
        client,
        "dee",
        [{"item": "mm-0010", "type": "favorite"}, {"item": "mm-0011", "type": "favorite"}],
    )
    _events(client, "dee", [{"item": "mm-0010", "type": "unfavorite"}])
    assert [f["item"] for f in client.get("/v1/users/dee/favorites").json()] == ["mm-0011"]


def test_more_like_this_with_examples_and_a_user(client: TestClient) -> None:
    plain = client.get("/v1/media/mm-0040/similar", params={"limit": 5})
    assert plain.status_code == 200, plain.text
    ids = [i["id"] for i in plain.json()]
    assert "mm-0040" not in ids and "mm-0088" in ids  # the other space-station survival film
    assert plain.json()[0]["reasons"] == ["similar to Station Meridian"]
    steered = client.get(
        "/v1/media/mm-0040/similar",
        params={"limit": 5, "positive": "mm-0001", "negative": "mm-0088"},
    ).json()
    assert "mm-0088" not in [i["id"] for i in steered]
    client.put("/v1/users/eve")
    _events(client, "eve", [{"item": "mm-0088", "type": "complete"}])
    personal = client.get("/v1/media/mm-0040/similar", params={"user": "eve"}).json()
    assert "mm-0088" not in [i["id"] for i in personal]
    assert client.get("/v1/media/missing/similar").status_code == 404


def test_tenants_holding_the_same_ids_never_see_each_other(client: TestClient) -> None:
    acme = {"X-Tenant": "acme"}
    item = {
        "title": "Acme Only Space Documentary",
        "description": "Rockets and orbits.",
        "genres": ["documentary"],
    }
    assert client.put("/v1/media/mm-0040", json=item, headers=acme).status_code == 201
    client.put("/v1/users/ana", headers=acme)
    client.put("/v1/users/ana")
    _events(client, "ana", [{"item": "mm-0040", "type": "like"}], **acme)
    default_history = client.get("/v1/users/ana/history").json()
    assert default_history == []
    acme_feed = _feed(client, "ana", **acme)
    assert {i["title"] for i in acme_feed} <= {"Acme Only Space Documentary"}
    default_feed = _feed(client, "ana")
    assert "Acme Only Space Documentary" not in {i["title"] for i in default_feed}
    assert (
        client.get("/v1/users/ana/export", headers=acme).json()["interactions"][0]["item"]
        == "mm-0040"
    )
    assert client.get("/v1/users/zed", headers=acme).status_code == 404


def test_gdpr_export_and_erasure_reach_every_store(
    client: TestClient, demo_runtime: Runtime
) -> None:
    client.put("/v1/users/gdpr", json={"preferences": {"liked_genres": ["comedy"]}})
    _events(
        client,
        "gdpr",
        [{"item": "mm-0024", "type": "favorite"}, {"item": "mm-0020", "type": "like"}],
    )
    page = client.get("/v1/users/gdpr/feed", params={"limit": 5}).json()
    assert page["next_cursor"]
    exported = client.get("/v1/users/gdpr/export").json()
    assert exported["preferences"]["liked_genres"] == ["comedy"]
    assert {e["item"] for e in exported["interactions"]} == {"mm-0024", "mm-0020"}
    assert exported["favorites"][0]["item"] == "mm-0024"
    assert len(exported["preference_vector"]["vector"]) == 384
    pk = demo_runtime.users.require("default", "gdpr").pk

    assert client.delete("/v1/users/gdpr").status_code == 204
    assert demo_runtime.users.users.count_rows(pk) == {
        "users": 0,
        "interactions": 0,
        "favorites": 0,
        "user_vectors": 0,
    }
    expired = client.get("/v1/users/gdpr/feed", params={"cursor": page["next_cursor"]})
    assert expired.status_code == 404  # the user is gone, and so are their cached pages
    caches = demo_runtime.caches
    assert not any("gdpr" in key for key in caches.feed_snapshot._data)
    assert not any("gdpr" in key for key in caches.feed._data)
    assert client.get("/v1/users/gdpr/export").status_code == 404


def test_cold_start_is_diverse_and_new_items_reach_the_feed(client: TestClient) -> None:
    client.put("/v1/users/newbie", json={"preferences": {"liked_genres": ["western"]}})
    cold = _feed(client, "newbie", limit=10)
    genres = _genres(client, [i["id"] for i in cold])
    assert sum("western" in g for g in genres) >= 2, "explicit preferences show up at once"
    assert len({g[0] for g in genres}) >= 4, "a cold feed still spans several genres"

    client.put("/v1/users/fan")
    _events(client, "fan", [{"item": i, "type": "like"} for i in SCI_FI_LIKES])
    fresh = {
        "title": "Tether Point",
        "description": "Two astronauts on a crippled orbital station ration oxygen while "
        "a rescue capsule races against a solar storm.",
        "genres": ["sci-fi", "thriller"],
        "year": 2026,
    }
    assert client.put("/v1/media/brand-new", json=fresh).status_code == 201
    # The demo catalog holds a dozen space-survival films as close to the likes as
    # the new one; it must reach the first two pages on content alone.
    ids = [i["id"] for i in _feed(client, "fan", limit=20)]
    assert "brand-new" in ids, "an item nobody interacted with is recommended on content"


def test_private_items_reach_only_their_owner_in_feeds(client: TestClient) -> None:
    client.put("/v1/users/user-ana")
    client.put("/v1/users/stranger")
    private = {"mm-0164", "mm-0169"}  # both owned by user-ana
    pages = {}
    for user in ("user-ana", "stranger"):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = client.get(f"/v1/users/{user}/feed", params=params).json()
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        pages[user] = set(seen)
    assert not private & pages["stranger"]
    assert private & pages["user-ana"]


def test_private_item_shared_with_allowed_users(client: TestClient) -> None:
    shared = {
        "title": "Family Reunion Highlights",
        "description": "Home video of the lakeside reunion, cake fight included.",
        "visibility": "private",
        "owner": "olga",
        "allowed_users": ["pavel"],
    }
    assert client.put("/v1/media/home-1", json=shared).status_code == 201
    query = {"query": "lakeside reunion home video cake", "limit": 5}
    for user, visible in (("olga", True), ("pavel", True), ("stranger", False), (None, False)):
        headers = {"X-User": user} if user else {}
        hits = client.post("/v1/search", json=query, headers=headers).json()["results"]
        assert ("home-1" in [h["id"] for h in hits]) is visible, user
        status = client.get("/v1/media/home-1", headers=headers).status_code
        assert status == (200 if visible else 404), user
    client.put("/v1/users/pavel")
    client.put("/v1/users/stranger")
    ok = _events(client, "pavel", [{"item": "home-1", "type": "like"}])
    assert ok["recorded"] == 1
    refused = _events(client, "stranger", [{"item": "home-1", "type": "like"}])
    assert refused["rejected"] == 1 and "unknown item" in refused["results"][0]["error"]


def test_session_context_lists_recent_actions_of_that_session(client: TestClient) -> None:
    client.put("/v1/users/sam")
    _events(
        client,
        "sam",
        [
            {"item": "mm-0001", "type": "view", "ts": 1_700_000_000, "context": {"session": "s1"}},
            {"item": "mm-0002", "type": "like", "ts": 1_700_000_060, "context": {"session": "s1"}},
            {"item": "mm-0003", "type": "view", "ts": 1_700_000_120, "context": {"session": "s2"}},
        ],
    )
    s1 = client.get("/v1/users/sam/sessions/s1").json()
    assert [(e["item"], e["type"]) for e in s1] == [("mm-0002", "like"), ("mm-0001", "view")]
    assert client.get("/v1/users/sam/sessions/none").json() == []
