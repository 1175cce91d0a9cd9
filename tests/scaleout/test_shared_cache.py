"""The caches' shared tier on Redis: replicas reuse each other's work, never stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import redis

from metamedia.domain import SearchRequest, SearchResponse
from metamedia.services import cache_codecs
from metamedia.services.runtime import Runtime

QUERY = SearchRequest(query="haunted manor on the moors", limit=5)


def _keys(url: str, pattern: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        return sorted(k.decode() for k in client.scan_iter(match=pattern))
    finally:
        client.close()


def test_a_search_ranked_on_one_replica_is_a_hit_on_the_other(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    first = a.search.search(QUERY)
    assert not first.cached
    on_b = b.search.search(QUERY)
    assert on_b.cached
    assert [h.model_dump() for h in on_b.results] == [h.model_dump() for h in first.results]
    assert b.caches.search.shared_hits == 1  # type: ignore[attr-defined]


def test_shared_entries_are_json_or_raw_arrays_under_a_tenant_prefix(
    replica_pair: tuple[Runtime, Runtime], redis_url: str
) -> None:
    a, _ = replica_pair
    assert a.shared is not None
    ns = a.shared.namespace
    a.search.search(QUERY)
    search_keys = _keys(redis_url, f"{ns}:c:search:*")
    assert search_keys and all(k.startswith(f"{ns}:c:search:default:") for k in search_keys)
    client = redis.Redis.from_url(redis_url)
    raw = client.get(search_keys[0])
    vector_keys = _keys(redis_url, f"{ns}:c:query_embedding:*")
    vector = client.get(vector_keys[0])
    client.close()
    assert raw is not None and json.loads(raw)["results"]
    assert vector is not None and vector.startswith(b"\x93NUMPY")  # never pickle


def test_a_catalog_write_on_one_replica_is_never_served_stale_by_the_other(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    before = b.search.search(QUERY)
    top = before.results[0]
    data = a.catalog.get(top.id).model_dump(mode="json")
    a.catalog.put(top.id, {**data, "title": "Renamed Manor"})
    after = b.search.search(QUERY)
    assert not after.cached
    assert "Renamed Manor" in [h.title for h in after.results]


def test_a_feed_cursor_made_on_one_replica_pages_on_the_other(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    a.users.upsert("default", "ana", None)
    first = a.discovery.feed("default", "ana", 5)
    assert first.next_cursor
    second = b.discovery.feed("default", "ana", 5, first.next_cursor)
    assert not {i.id for i in first.items} & {i.id for i in second.items}
    again = b.discovery.feed("default", "ana", 5)
    assert again.cached and [i.id for i in again.items] == [i.id for i in first.items]


def test_an_interaction_on_one_replica_changes_the_feed_the_other_serves(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    a.users.upsert("default", "ana", None)
    before = b.discovery.feed("default", "ana", 10)
    disliked = before.items[0].id
    a.users.record("default", "ana", [{"item": disliked, "type": "dislike"}])
    after = b.discovery.feed("default", "ana", 10)
    assert not after.cached
    assert disliked not in [i.id for i in after.items]


def test_erasure_drops_the_users_shared_feed_entries(
    replica_pair: tuple[Runtime, Runtime], redis_url: str
) -> None:
    a, b = replica_pair
    for user in ("ana", "ben"):
        a.users.upsert("default", user, None)
        a.discovery.feed("default", user, 5)
    assert a.shared is not None
    ns = a.shared.namespace
    prefix = f"{ns}:c:feed*:default:"
    assert _keys(redis_url, prefix + "ana:*") and _keys(redis_url, prefix + "ben:*")
    ana = a.users.require("default", "ana")
    a.users.preference_direction(ana)
    assert _keys(redis_url, f"{ns}:c:preference_vector:pk{ana.pk}:*")
    b.users.delete("default", "ana")
    assert not _keys(redis_url, prefix + "ana:*")
    assert not _keys(redis_url, f"{ns}:c:preference_vector:pk{ana.pk}:*")
    assert _keys(redis_url, prefix + "ben:*")


def test_codecs_round_trip_without_pickle() -> None:
    response = SearchResponse(results=[], took_ms=1.5, matched=3)
    codec = cache_codecs.model_codec(SearchResponse)
    assert codec.decode(codec.encode(response)) == response
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(cache_codecs.ARRAY.decode(cache_codecs.ARRAY.encode(matrix)), matrix)
    assert cache_codecs.OPTIONAL_VECTOR.decode(cache_codecs.OPTIONAL_VECTOR.encode((None,))) == (
        None,
    )
    ranked = [(3, 0.5, ["because"]), (7, 0.25, [])]
    assert cache_codecs.RANKED.decode(cache_codecs.RANKED.encode(ranked)) == ranked


def test_keys_are_the_same_whatever_the_set_order() -> None:
    one: Any = ("page", "t", "u", 1.0, 5, frozenset({"popular", "fresh", "content"}), 10)
    two: Any = ("page", "t", "u", 1.0, 5, frozenset({"content", "fresh", "popular"}), 10)
    assert cache_codecs.feed_page_key(one) == cache_codecs.feed_page_key(two)
    assert cache_codecs.user_prefix("a:b", "c") != cache_codecs.user_prefix("a", "b:c")


def test_without_redis_the_caches_stay_in_process(runtime: Runtime, tmp_path: Path) -> None:
    assert runtime.shared is None
    assert type(runtime.caches.search).__name__ == "MemoryCache"


def test_deployments_on_other_databases_share_nothing_through_one_redis(
    demo_data_dir: Path, tmp_path: Path, make_runtime: Any, redis_url: str
) -> None:
    import shutil

    for name in ("staging", "production"):
        shutil.copytree(demo_data_dir, tmp_path / name)
    staging = make_runtime(tmp_path / "staging", redis_url=redis_url)
    production = make_runtime(tmp_path / "production", redis_url=redis_url)
    assert staging.shared.namespace != production.shared.namespace
    staging.search.search(QUERY)
    assert not production.search.search(QUERY).cached
