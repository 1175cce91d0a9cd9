"""Titles always work, and long requests are read whole (issue 10), through `/v1/search`."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from metamedia.domain.search import MAX_QUERY_CHARS


def _ids(client: TestClient, query: str, mode: str = "hybrid", **extra: Any) -> list[str]:
    response = client.post("/v1/search", json={"query": query, "mode": mode, **extra})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


@pytest.mark.parametrize("mode", ["hybrid", "keyword"])
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("The Ninth Vault", "mm-0063"),
        ("Ninth Vault, The", "mm-0063"),
        ("the ninth vault", "mm-0063"),
        ("cafe orfeo after midnight", "mm-0021"),  # accent folded
        ("Bitterroot Canyon (1953)", "mm-0022"),
        ("bitterroot canyon 1953", "mm-0022"),
    ],
)
def test_a_title_as_typed_finds_its_film_first(
    client: TestClient, query: str, expected: str, mode: str
) -> None:
    assert _ids(client, query, mode)[0] == expected


def test_the_explanation_says_when_the_query_is_the_title(client: TestClient) -> None:
    response = client.post("/v1/search", json={"query": "Station Meridian", "limit": 3})
    hits = response.json()["results"]
    assert hits[0]["id"] == "mm-0040" and hits[0]["explanation"]["title_match"] is True
    assert not any(h["explanation"]["title_match"] for h in hits[1:])


def test_alternate_titles_and_release_years_find_the_item(client: TestClient) -> None:
    body = {
        "title": "Harbour of Glass",
        "year": 1994,
        "alternate_titles": ["Harbour of Glass 3D"],
        "release_years": [2012],
        "description": "A glassblower's apprentice restores a drowned lighthouse lens.",
    }
    assert client.put("/v1/media/harbour-glass", json=body).status_code == 201
    assert _ids(client, "Harbour of Glass 3D")[0] == "harbour-glass"
    response = client.post(
        "/v1/search",
        json={"query": "glassblower lighthouse", "filters": {"year_min": 2012, "year_max": 2012}},
    )
    hits = response.json()["results"]
    assert hits[0]["id"] == "harbour-glass"
    assert all(h["year"] == 2012 or h["id"] == "harbour-glass" for h in hits)


def test_long_requests_are_accepted_up_to_the_limit_and_refused_above(
    client: TestClient,
) -> None:
    long = ("I saw it years ago and remember only bits. " * 400)[:MAX_QUERY_CHARS]
    assert client.post("/v1/search", json={"query": long}).status_code == 200
    refused = client.post("/v1/search", json={"query": long + " more words"})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert "query" in error["message"] and str(MAX_QUERY_CHARS) in error["message"]


def test_the_end_of_a_long_request_still_counts_on_the_dense_side(client: TestClient) -> None:
    """The telling detail comes after ~300 words of preamble, past the model's 256
    tokens. A model that kept only the first window would rank the same with or
    without it; read in windows, the detail moves the film up on the dense side,
    and hybrid search puts it near the top."""
    preamble = (
        "I have been trying to remember this for years and it drives me crazy. We watched "
        "it on a small television at my grandmother's house one winter, probably on a "
        "Sunday, because my uncle was there and he only ever visited on Sundays. My brother "
        "says I made it up, but I am sure it was real and in colour. I was maybe nine or "
        "ten, so the details are fuzzy, and I might be mixing up a couple of scenes. There "
        "was a song over the opening that I still hum sometimes, something with trumpets. "
        "The actors seemed well known at the time, and one of them had a scar on his chin "
        "and a very calm voice. I remember the colours being washed out, a lot of greys and "
        "browns, like old photographs. My grandmother fell asleep halfway through and "
        "snored, which is the main reason I remember the evening at all. I have asked on "
        "forums before and people suggested a dozen titles, none of them right. It was not "
        "a cartoon and not a musical. It felt serious, a little slow at the start, then "
        "tense. I think it came out in the nineties but we watched it later on tape. Here "
        "is the part I remember best, and why it stuck with me all these years."
    )
    detail = (
        "A safecracker gathers one last crew to rob a hidden vault under a bank in Chicago, "
        "and when they finally crack it the vault is empty."
    )

    def rank(query: str) -> int:
        ids = _ids(client, query, mode="semantic", limit=100)
        return ids.index("mm-0063") + 1 if "mm-0063" in ids else 101

    assert len(preamble.split()) > 256 * 0.75
    with_detail = rank(preamble + " " + detail)
    assert with_detail <= 100 and with_detail < rank(preamble)
    assert "mm-0063" in _ids(client, preamble + " " + detail)  # hybrid, first page
