"""`/v1/admin/caches` tells the shared tier's work apart from the in-process tier's.

A shared hit also counts as a hit in `hits` (the hit-rate alert counts both tiers),
so without `shared_hits` an operator (or the service benchmark) cannot see how much
Redis answers for the replicas.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.domain import SearchRequest
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_HEADERS

QUERY = SearchRequest(query="haunted manor on the moors", limit=5)


def _search_row(runtime: Runtime) -> dict[str, object]:
    with TestClient(create_app(runtime=runtime), headers=dict(ADMIN_HEADERS)) as client:
        rows = client.get("/v1/admin/caches").json()["caches"]
    row: dict[str, object] = next(r for r in rows if r["name"] == "search")
    return row


def test_a_hit_served_by_the_shared_tier_is_counted_as_a_shared_hit(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    a.search.search(QUERY)  # A misses both tiers and fills them
    b.search.search(QUERY)  # B misses in memory, hits in Redis
    b.search.search(QUERY)  # B hits in memory
    row = _search_row(b)
    assert (row["hits"], row["misses"]) == (2, 0)
    assert (row["shared_hits"], row["shared_misses"]) == (1, 0)
    assert _search_row(a)["shared_misses"] == 1


def test_without_a_shared_tier_the_shared_counts_are_null(demo_runtime: Runtime) -> None:
    demo_runtime.search.search(QUERY)
    row = _search_row(demo_runtime)
    assert row["shared_hits"] is None and row["shared_misses"] is None
