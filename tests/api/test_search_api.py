"""`/v1/search` over HTTP: modes, filters inside retrieval, paging, explanations, errors."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def _search(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def test_post_search_returns_the_contract_shape(client: TestClient) -> None:
    data = _search(client, query="heist movie with a twist ending", limit=5)
    assert set(data) >= {"results", "took_ms"}
    assert len(data["results"]) == 5
    first = data["results"][0]
    assert set(first) >= {"id", "title", "year", "type", "genres", "score", "explanation"}
    assert first["id"] == "mm-0063"  # The Ninth Vault
    explanation = first["explanation"]
    assert explanation["method"] == "learned"
    assert explanation["keyword_rank"] >= 1 and explanation["vector_rank"] >= 1
    assert explanation["fused_score"] == pytest.approx(first["score"])
    assert 0 < explanation["vector_similarity"] <= 1


def test_the_issue_example_with_every_filter(client: TestClient) -> None:
    data = _search(
        client,
        query="heist movie with a twist ending",
        filters={
            "types": ["movie"],
            "genres": ["crime"],
            "year_min": 1990,
            "year_max": 1999,
            "platforms": ["netflix"],
            "languages": ["en"],
            "min_rating": 3.5,
        },
    )
    ids = [r["id"] for r in data["results"]]
    assert ids[:2] == ["mm-0063", "mm-0064"] or set(ids[:2]) == {"mm-0063", "mm-0064"}
    assert "mm-0065" not in ids, "rated 2.9: the rating filter must drop it"
    for result in data["results"]:
        assert result["type"] == "movie" and 1990 <= result["year"] <= 1999
        assert "crime" in result["genres"] and "netflix" in result["platforms"]
        assert result["language"] == "en" and result["rating"] >= 3.5
    assert data["matched"] == len(ids)


def test_semantic_mode_ranks_by_meaning_only(client: TestClient) -> None:
    data = _search(client, query="astronauts stranded in orbit with failing power", mode="semantic")
    ids = [r["id"] for r in data["results"]]
    assert {"mm-0040", "mm-0088", "mm-0078"} <= set(ids)  # the three space-survival films
    assert all(r["explanation"]["keyword_rank"] is None for r in data["results"])
    sims = [r["explanation"]["vector_similarity"] for r in data["results"]]
    assert sims == sorted(sims, reverse=True)


def test_keyword_mode_uses_bm25_ranks(client: TestClient) -> None:
    data = _search(client, query="Knife Edge Kitchen", mode="keyword", limit=3)
    assert "mm-0111" in [r["id"] for r in data["results"]]
    assert [r["explanation"]["keyword_rank"] for r in data["results"]] == [1, 2, 3]
    assert all(r["explanation"]["vector_rank"] is None for r in data["results"])
    scores = [r["explanation"]["keyword_score"] for r in data["results"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_weighted_fusion_is_configurable_per_request(client: TestClient) -> None:
    data = _search(
        client,
        query="haunted house",
        fusion={"method": "weighted", "keyword_weight": 0.3, "semantic_weight": 0.7},
    )
    assert data["results"][0]["explanation"]["method"] == "weighted"
    assert data["results"][0]["score"] <= 1.0


def test_pages_do_not_overlap_and_cover_the_ranking(client: TestClient) -> None:
    whole = _search(client, query="detective in a rainy city", limit=20)
    first = _search(client, query="detective in a rainy city", limit=10)
    second = _search(client, query="detective in a rainy city", limit=10, offset=10)
    assert [r["id"] for r in first["results"] + second["results"]] == [
        r["id"] for r in whole["results"]
    ]
    assert first["next_offset"] == 10


def test_get_search_matches_post(client: TestClient) -> None:
    got = client.get(
        "/v1/search",
        params={"q": "haunted house", "mode": "semantic", "limit": 4, "genre": "horror"},
    )
    assert got.status_code == 200, got.text
    posted = _search(
        client, query="haunted house", mode="semantic", limit=4, filters={"genres": ["horror"]}
    )
    assert [r["id"] for r in got.json()["results"]] == [r["id"] for r in posted["results"]]


def test_private_items_only_reach_their_owner(client: TestClient) -> None:
    query = {"query": "private detective rain post", "limit": 50, "mode": "semantic"}
    anonymous = [r["id"] for r in _search(client, **query)["results"]]
    assert "mm-0164" not in anonymous
    owner = client.post("/v1/search", json=query, headers={"X-User": "user-ana"}).json()
    assert "mm-0164" in [r["id"] for r in owner["results"]]


def test_other_tenants_see_nothing(client: TestClient) -> None:
    other = client.post("/v1/search", json={"query": "heist"}, headers={"X-Tenant": "acme"})
    assert other.status_code == 200 and other.json()["results"] == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": "   "}, "query"),
        ({"query": "x", "limit": 0}, "limit"),
        ({"query": "x", "limit": 1000}, "limit"),
        ({"query": "x", "filters": {"decade": "90s"}}, "decade"),
        ({"query": "x", "filters": {"year_min": 2000, "year_max": 1990}}, "inverted"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "filters": {"types": ["podcast"]}}, "types"),
    ],
)
def test_bad_parameters_get_a_clear_4xx(
    client: TestClient, body: dict[str, Any], needle: str
) -> None:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert needle in error["message"]


def test_get_search_rejects_unknown_parameters_and_missing_query(client: TestClient) -> None:
    unknown = client.get("/v1/search", params={"q": "x", "colour": "red"})
    assert unknown.status_code == 422 and "colour" in unknown.json()["error"]["message"]
    empty = client.get("/v1/search")
    assert empty.status_code == 422 and "query" in empty.json()["error"]["message"]
    inverted = client.get("/v1/search", params={"q": "x", "year_min": 2000, "year_max": 1990})
    assert inverted.status_code == 422 and "inverted" in inverted.json()["error"]["message"]
