"""Result, feed and vector caches: hits are served, and no write leaves a stale answer,
whether the write came through this process or another one on the same data."""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.domain import SearchRequest
from tests.conftest import ADMIN_HEADERS

QUERY = {"query": "heist movie with a twist ending", "limit": 5}


def _titles(response: Any) -> list[str]:
    return [hit["title"] for hit in response.json()["results"]]


def test_repeated_search_is_a_cache_hit_and_a_media_update_is_never_served_stale(
    client: TestClient,
) -> None:
    first = client.post("/v1/search", json=QUERY)
    again = client.post("/v1/search", json=QUERY)
    assert not first.json()["cached"] and again.json()["cached"]
    assert _titles(first) == _titles(again)
    top = first.json()["results"][0]
    item = client.get(f"/v1/media/{top['id']}").json()

    renamed = {**item, "title": item["title"] + " Redux"}
    assert client.put(f"/v1/media/{top['id']}", json=renamed).status_code == 200
    after = client.post("/v1/search", json=QUERY).json()
    assert not after["cached"]
    assert item["title"] + " Redux" in [hit["title"] for hit in after["results"]]

    assert client.delete(f"/v1/media/{top['id']}").status_code == 204
    gone = client.post("/v1/search", json=QUERY).json()
    assert top["id"] not in [hit["id"] for hit in gone["results"]]

    stats = client.get("/v1/admin/caches").json()
    search = next(c for c in stats["caches"] if c["name"] == "search")
    assert search["hits"] == 1 and search["misses"] == 3 and search["bytes"] > 0
    assert 0 < stats["bytes_in_use"] <= stats["budget_bytes"]


def test_an_interaction_or_preference_change_invalidates_that_users_feed_only(
    client: TestClient, demo_runtime: Any
) -> None:
    demo_runtime.refresher.stop()  # observe the invalidation itself, not the re-rank after it
    for user in ("ana", "ben"):
        client.put(f"/v1/users/{user}")
    first = client.get("/v1/users/ana/feed?limit=10").json()
    assert not first["cached"]
    assert client.get("/v1/users/ana/feed?limit=10").json()["cached"]
    client.get("/v1/users/ben/feed?limit=10")
    assert client.get("/v1/users/ben/feed?limit=10").json()["cached"]

    disliked = first["items"][0]["id"]
    event = {"events": [{"item": disliked, "type": "dislike"}]}
    assert client.post("/v1/users/ana/interactions", json=event).json()["recorded"] == 1
    fresh = client.get("/v1/users/ana/feed?limit=10").json()
    assert not fresh["cached"]
    assert disliked not in [item["id"] for item in fresh["items"]]
    assert client.get("/v1/users/ben/feed?limit=10").json()["cached"]  # untouched

    client.put("/v1/users/ana/preferences", json={"liked_genres": ["documentary"]})
    assert not client.get("/v1/users/ana/feed?limit=10").json()["cached"]


def test_after_an_interaction_the_feed_is_re_ranked_in_the_background(
    client: TestClient, demo_runtime: Any
) -> None:
    client.put("/v1/users/dee")
    first = client.get("/v1/users/dee/feed").json()
    disliked = first["items"][0]["id"]
    done = demo_runtime.refresher.refreshed
    client.post("/v1/users/dee/interactions", json={"events": [{"item": disliked, "type": "skip"}]})
    deadline = time.monotonic() + 30
    while demo_runtime.refresher.refreshed == done and time.monotonic() < deadline:
        time.sleep(0.02)
    after = client.get("/v1/users/dee/feed").json()
    assert after["cached"]  # ranked before it was asked for
    assert disliked not in [item["id"] for item in after["items"]]  # and already fresh
    assert len(after["items"]) == 20


def test_writes_from_another_process_are_seen_despite_caches(
    demo_runtime: Any, make_runtime: Any
) -> None:
    """Two runtimes on one data dir stand for two processes: the catalog version and the
    user version in the cache keys come from the shared database, not from memory."""
    other = make_runtime(demo_runtime.settings.data_dir)
    with TestClient(create_app(runtime=demo_runtime), headers=dict(ADMIN_HEADERS)) as client:
        client.put("/v1/users/cy")
        client.post("/v1/search", json=QUERY)
        assert client.post("/v1/search", json=QUERY).json()["cached"]
        feed = client.get("/v1/users/cy/feed?limit=10").json()

        other.catalog.put(
            "mm-new-heist",
            {"title": "The Twist Ending Heist", "description": "A heist movie with a twist."},
            "default",
        )
        fresh = client.post("/v1/search", json=QUERY).json()
        assert not fresh["cached"] and "mm-new-heist" in [h["id"] for h in fresh["results"]]

        skipped = feed["items"][0]["id"]
        other.users.record("default", "cy", [{"item": skipped, "type": "skip"}])
        after = client.get("/v1/users/cy/feed?limit=10").json()
        assert not after["cached"] and skipped not in [i["id"] for i in after["items"]]


def test_private_results_are_cached_per_viewer(demo_runtime: Any) -> None:
    """A cached answer for the owner of a private item is never shown to someone else."""
    request = SearchRequest(query="rainy noir mood reel", limit=50)
    owner = demo_runtime.search.search(request.model_copy(update={"user": "user-ana"}))
    stranger = demo_runtime.search.search(request.model_copy(update={"user": "user-ben"}))
    assert not stranger.cached
    assert "mm-0164" in [h.id for h in owner.results]
    assert "mm-0164" not in [h.id for h in stranger.results]


def test_clearing_caches_is_admin_only_audited_and_changes_no_answer(
    client: TestClient, anon_client: TestClient
) -> None:
    before = client.post("/v1/search", json=QUERY)
    assert anon_client.post("/v1/admin/caches/clear").status_code == 401
    cleared = client.post("/v1/admin/caches/clear").json()
    assert cleared["dropped"] >= 1
    after = client.post("/v1/search", json=QUERY)
    assert not after.json()["cached"] and _titles(after) == _titles(before)
    assert client.get("/v1/admin/audit?action=cache").json()[0]["action"] == "cache.clear"


def test_memory_high_water_sheds_cache_entries_and_shows_in_metrics(make_runtime: Any) -> None:
    runtime = make_runtime(memory_limit_mb=1)  # any Python process is far above 1 MiB
    runtime.caches.search.set("k", [1, 2, 3])
    assert runtime.caches.govern_memory()
    assert runtime.caches.pool.bytes == 0
    with TestClient(create_app(runtime=runtime)) as client:
        body = client.get("/metrics").text
    assert "metamedia_cache_memory_cleanups_total 1.0" in body
    assert 'metamedia_cache_bytes{cache="search"} 0.0' in body
    assert "metamedia_cache_budget_bytes 2.68435456e+08" in body
