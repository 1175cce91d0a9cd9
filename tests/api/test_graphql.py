"""GraphQL at /graphql, over HTTP: the same answers as REST, limits, auth and error codes."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from graphql import GraphQLError

from metamedia.api.graphql.errors import _classified
from metamedia.errors import NotFoundError
from metamedia.services.runtime import Runtime
from tests.api.conftest import user_headers

HEIST = "heist movie with a twist ending"
NINTH_VAULT = "mm-0063"
SCI_FI_LIKES = ["mm-0040", "mm-0088", "mm-0057"]

MEDIA_FIELDS = """
    id type title description genres year releaseDate runtimeMinutes language cast
    platforms { name region url } rating ratingCount popularity maturityRating imageUrl
    tags externalIds { source id } visibility owner allowedUsers tenant seriesId season episode
    alternateTitles releaseYears
"""


def gql(
    client: TestClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def data(client: TestClient, query: str, variables: dict[str, Any] | None = None) -> Any:
    body = gql(client, query, variables)
    assert "errors" not in body, body["errors"]
    return body["data"]


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body.get("errors", [])) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


def snake(graphql_media: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL Media object in REST's shape, to compare field by field."""
    renames = {
        "releaseDate": "release_date",
        "runtimeMinutes": "runtime_minutes",
        "ratingCount": "rating_count",
        "maturityRating": "maturity_rating",
        "imageUrl": "image_url",
        "allowedUsers": "allowed_users",
        "seriesId": "series_id",
        "externalIds": "external_ids",
        "alternateTitles": "alternate_titles",
        "releaseYears": "release_years",
    }
    out = {renames.get(k, k): v for k, v in graphql_media.items()}
    out["external_ids"] = {e["source"]: e["id"] for e in out["external_ids"]}
    return out


def test_search_returns_what_rest_returns_with_filters(client: TestClient) -> None:
    query = """
      query($q: String!, $filters: SearchFiltersInput) {
        search(query: $q, limit: 5, filters: $filters) {
          results {
            id title year type genres language platforms rating description imageUrl score
            explanation {
              keywordRank keywordScore vectorRank vectorSimilarity fusedScore method vectorPlan
            }
            media { id cast }
          }
          matched nextOffset
        }
      }"""
    filters = {"types": ["movie"], "genres": ["crime"], "yearMin": 1990, "yearMax": 1999}
    page = data(client, query, {"q": HEIST, "filters": filters})["search"]
    rest = client.post(
        "/v1/search",
        json={
            "query": HEIST,
            "limit": 5,
            "filters": {
                "types": ["movie"],
                "genres": ["crime"],
                "year_min": 1990,
                "year_max": 1999,
            },
        },
    ).json()
    results = page["results"]
    assert results[0]["id"] == NINTH_VAULT and results[0]["title"] == "The Ninth Vault"
    assert [r["id"] for r in results] == [r["id"] for r in rest["results"]]
    assert [r["score"] for r in results] == [r["score"] for r in rest["results"]]
    assert page["matched"] == rest["matched"] and page["nextOffset"] == rest["next_offset"]
    for mine, theirs in zip(results, rest["results"], strict=True):
        assert mine["explanation"] == {
            "keywordRank": theirs["explanation"]["keyword_rank"],
            "keywordScore": theirs["explanation"]["keyword_score"],
            "vectorRank": theirs["explanation"]["vector_rank"],
            "vectorSimilarity": theirs["explanation"]["vector_similarity"],
            "fusedScore": theirs["explanation"]["fused_score"],
            "method": theirs["explanation"]["method"],
            "vectorPlan": theirs["explanation"]["vector_plan"],
        }
        assert (mine["type"], mine["genres"], mine["platforms"], mine["imageUrl"]) == (
            theirs["type"],
            theirs["genres"],
            theirs["platforms"],
            theirs["image_url"],
        )
        assert 1990 <= mine["year"] <= 1999 and mine["type"] == "movie"
        assert mine["media"]["cast"] == client.get(f"/v1/media/{mine['id']}").json()["cast"]


def test_search_validation_errors_carry_the_product_message(client: TestClient) -> None:
    inverted = gql(
        client, '{ search(query: "heist", filters: {yearMin: 2000, yearMax: 1990}) { matched } }'
    )
    error = only_error(inverted)
    assert error["extensions"] == {"code": "InvalidRequestError", "status": 422}
    assert "year range is inverted: year_min 2000 > year_max 1990" in error["message"]
    rest = client.post(
        "/v1/search", json={"query": "heist", "filters": {"year_min": 2000, "year_max": 1990}}
    )
    assert rest.status_code == 422 and rest.json()["error"]["message"] == error["message"]
    assert inverted["data"] is None

    blank = only_error(gql(client, '{ search(query: "   ") { matched } }'))
    assert blank["extensions"]["code"] == "InvalidRequestError" and "query" in blank["message"]

    too_many = only_error(gql(client, '{ search(query: "heist", limit: 101) { matched } }'))
    assert too_many["extensions"]["code"] == "InvalidRequestError"
    assert "limit" in too_many["message"] and "100" in too_many["message"]

    bad_type = only_error(
        gql(client, '{ search(query: "heist", filters: {types: [film]}) { matched } }')
    )
    assert bad_type["extensions"] == {"code": "InvalidQuery", "status": 400}
    assert "film" in bad_type["message"] and "MediaType" in bad_type["message"]

    unknown = only_error(gql(client, '{ media(id: "mm-0063") { title budget } }'))
    assert unknown["extensions"]["code"] == "InvalidQuery"
    assert "Cannot query field 'budget' on type 'Media'" in unknown["message"]


def test_media_and_similar_match_rest_and_unknown_ids_are_not_found(client: TestClient) -> None:
    media = data(client, f'{{ media(id: "{NINTH_VAULT}") {{ {MEDIA_FIELDS} }} }}')["media"]
    assert snake(media) == client.get(f"/v1/media/{NINTH_VAULT}").json()

    query = """query($id: String!) {
      similar(id: $id, limit: 5, negative: ["mm-0170"]) { id title score reasons }
      media(id: $id) { similar(limit: 5, negative: ["mm-0170"]) { id score } }
    }"""
    got = data(client, query, {"id": NINTH_VAULT})
    rest = client.get(
        f"/v1/media/{NINTH_VAULT}/similar", params={"limit": 5, "negative": ["mm-0170"]}
    ).json()
    assert got["similar"] == rest and len(rest) == 5
    assert got["media"]["similar"] == [{"id": r["id"], "score": r["score"]} for r in rest]

    for document in ('{ media(id: "mm-9999") { id } }', '{ similar(id: "mm-9999") { id } }'):
        body = gql(client, document)
        error = only_error(body)
        assert error["extensions"] == {"code": "NotFoundError", "status": 404}
        assert error["message"] == "media item 'mm-9999' not found in tenant 'default'"
        assert error["message"] == client.get("/v1/media/mm-9999").json()["error"]["message"]
        assert body["data"] is None

    other_tenant = gql(
        client, f'{{ media(id: "{NINTH_VAULT}") {{ id }} }}', headers={"X-Tenant": "t2"}
    )
    assert only_error(other_tenant)["extensions"]["code"] == "NotFoundError"


def test_users_feed_and_interactions_match_rest(
    client: TestClient, anon_client: TestClient
) -> None:
    admin = client
    client = anon_client  # end users write their own interactions with their own token
    client.headers.update(user_headers(admin, "ana"))
    created = data(
        client, 'mutation { upsertUser(id: "ana") { id tenant preferences { region } } }'
    )
    assert created["upsertUser"] == {
        "id": "ana",
        "tenant": "default",
        "preferences": {"region": None},
    }

    feed_query = """query($user: String!, $limit: Int!, $cursor: String) {
      discoveryFeed(user: $user, limit: $limit, cursor: $cursor) {
        items { id title score reasons media { id genres } } nextCursor
      }
    }"""
    record = """mutation($user: String!, $events: [InteractionInput!]!) {
      recordInteraction(user: $user, events: $events) {
        recorded rejected results { index status error }
      }
    }"""
    likes = [{"item": i, "type": "like"} for i in SCI_FI_LIKES]
    outcome = data(client, record, {"user": "ana", "events": likes})["recordInteraction"]
    assert outcome == {
        "recorded": 3,
        "rejected": 0,
        "results": [{"index": i, "status": "recorded", "error": None} for i in range(3)],
    }

    feed = data(client, feed_query, {"user": "ana", "limit": 10})["discoveryFeed"]
    rest = client.get("/v1/users/ana/feed", params={"limit": 10}).json()
    items = feed["items"]
    assert [(i["id"], i["title"], i["reasons"]) for i in items] == [
        (i["id"], i["title"], i["reasons"]) for i in rest["items"]
    ]
    assert all(i["media"]["id"] == i["id"] for i in items)
    assert any(r.startswith("because you liked") for i in items for r in i["reasons"])
    second = data(client, feed_query, {"user": "ana", "limit": 10, "cursor": feed["nextCursor"]})
    assert not {i["id"] for i in items} & {i["id"] for i in second["discoveryFeed"]["items"]}

    top = items[0]["id"]
    events = [
        {"item": top, "type": "dislike", "context": {"surface": "feed", "session": "s1"}},
        {"item": SCI_FI_LIKES[0], "type": "favorite"},
        {"item": "mm-9999", "type": "view"},
        {"item": SCI_FI_LIKES[1], "type": "rate", "value": 9},
    ]
    outcome = data(client, record, {"user": "ana", "events": events})["recordInteraction"]
    assert (outcome["recorded"], outcome["rejected"]) == (2, 2)
    admin.put("/v1/users/ana-rest")
    rest_outcome = admin.post(
        "/v1/users/ana-rest/interactions",
        json={"events": events},
    ).json()
    assert outcome["results"] == rest_outcome["results"]
    assert outcome["results"][2]["error"] == "unknown item 'mm-9999' in tenant 'default'"
    assert outcome["results"][3]["status"] == "rejected" and "9" in outcome["results"][3]["error"]

    after = data(client, feed_query, {"user": "ana", "limit": 20})["discoveryFeed"]["items"]
    assert top not in [i["id"] for i in after]

    profile = data(
        client,
        """{ user(id: "ana") {
              id createdAt preferences { likedGenres }
              history(limit: 10) { item type value ts context { surface session device } }
              session: history(session: "s1") { item type }
              favorites { item since media { title } }
        } }""",
    )["user"]
    rest_user = client.get("/v1/users/ana").json()
    assert profile["createdAt"] == rest_user["created_at"]
    rest_history = client.get("/v1/users/ana/history", params={"limit": 10}).json()
    assert [(h["item"], h["type"], h["value"], h["ts"]) for h in profile["history"]] == [
        (h["item"], h["type"], h["value"], h["ts"]) for h in rest_history
    ]
    assert profile["session"] == [{"item": top, "type": "dislike"}]
    rest_favorites = client.get("/v1/users/ana/favorites").json()
    assert [(f["item"], f["since"]) for f in profile["favorites"]] == [
        (f["item"], f["since"]) for f in rest_favorites
    ]
    assert profile["favorites"][0]["media"]["title"] == "Station Meridian"

    for missing in (
        '{ user(id: "nobody") { id } }',
        '{ discoveryFeed(user: "nobody") { nextCursor } }',
    ):
        error = only_error(gql(admin, missing))  # a key acting for a user who isn't there
        assert error["extensions"] == {"code": "NotFoundError", "status": 404}
        assert "user 'nobody' not found in tenant 'default'" in error["message"]


def test_set_preferences_matches_rest_and_validates(
    client: TestClient, anon_client: TestClient
) -> None:
    anon_client.headers.update(user_headers(client, "ben"))
    client = anon_client
    assert client.put("/v1/users/ben").status_code == 200
    mutation = """mutation($prefs: PreferencesInput!) {
      setPreferences(user: "ben", preferences: $prefs) {
        likedGenres dislikedGenres languages platforms maturityLimit region blockedOwners
      }
    }"""
    prefs = {"likedGenres": ["Sci-Fi", "heist"], "languages": ["en"], "maturityLimit": "PG-13"}
    saved = data(client, mutation, {"prefs": prefs})["setPreferences"]
    rest = client.get("/v1/users/ben/preferences").json()
    assert saved["likedGenres"] == rest["liked_genres"] == ["sci-fi", "heist"]
    assert saved == {
        "likedGenres": rest["liked_genres"],
        "dislikedGenres": rest["disliked_genres"],
        "languages": rest["languages"],
        "platforms": rest["platforms"],
        "maturityLimit": rest["maturity_limit"],
        "region": rest["region"],
        "blockedOwners": rest["blocked_owners"],
    }

    error = only_error(gql(client, mutation, {"prefs": {"maturityLimit": "X" * 40}}))
    assert error["extensions"] == {"code": "InvalidRequestError", "status": 422}
    rest_error = client.put("/v1/users/ben/preferences", json={"maturity_limit": "X" * 40})
    assert rest_error.json()["error"]["message"] == error["message"]
    assert "maturity_limit" in error["message"]


def test_user_writes_need_the_users_token_or_a_key(
    client: TestClient, anon_client: TestClient
) -> None:
    cy = user_headers(client, "cy")
    other = user_headers(client, "dee")
    record = """mutation {
      recordInteraction(user: "cy", events: [{item: "mm-0063", type: like}]) { recorded }
    }"""
    error = only_error(gql(anon_client, record))
    assert error["extensions"] == {"code": "AuthenticationError", "status": 401}, error
    assert "user's token" in error["message"]
    error = only_error(gql(anon_client, record, headers=other))
    assert error["extensions"] == {"code": "PermissionDeniedError", "status": 403}, error
    assert client.get("/v1/users/cy/history").json() == []
    done = gql(anon_client, record, headers=cy)
    assert done["data"]["recordInteraction"]["recorded"] == 1
    assert [h["item"] for h in client.get("/v1/users/cy/history").json()] == ["mm-0063"]


def test_upsert_media_needs_a_key_then_is_searchable(
    client: TestClient, anon_client: TestClient
) -> None:
    mutation = """mutation($media: MediaInput!) {
      upsertMedia(media: $media) { status media { id title year genres platforms { name region } } }
    }"""
    media = {
        "id": "gql-1",
        "title": "Velvet Lighthouse",
        "description": "A lighthouse keeper on a fog-bound island decodes whale songs that "
        "predict shipwrecks a day before they happen.",
        "genres": ["Mystery"],
        "year": 2021,
        "type": "movie",
        "platforms": [{"name": "Netflix", "region": "us"}],
        "externalIds": [{"source": "imdb", "id": "tt0000001"}],
    }
    refused = gql(anon_client, mutation, {"media": media})
    error = only_error(refused)
    assert error["extensions"] == {"code": "AuthenticationError", "status": 401}
    assert "needs an API key with scope 'write'" in error["message"]
    assert refused["data"] is None
    assert client.get("/v1/media/gql-1").status_code == 404

    done = data(client, mutation, {"media": media})["upsertMedia"]
    assert done["status"] == "inserted"
    assert done["media"]["genres"] == ["mystery"]
    assert done["media"]["platforms"] == [{"name": "netflix", "region": "US"}]
    rest = client.get("/v1/media/gql-1").json()
    assert rest["title"] == "Velvet Lighthouse" and rest["external_ids"] == {"imdb": "tt0000001"}
    again = data(client, mutation, {"media": media})["upsertMedia"]
    assert again["status"] == "unchanged"

    found = data(
        client,
        '{ search(query: "lighthouse keeper decodes whale songs", limit: 3) { results { id } } }',
    )["search"]["results"]
    assert found[0]["id"] == "gql-1"

    invalid = only_error(gql(client, mutation, {"media": {**media, "rating": 7.5}}))
    assert invalid["extensions"] == {"code": "ValidationFailed", "status": 422}
    body = {k: v for k, v in media.items() if k != "externalIds"}
    rest_invalid = client.put("/v1/media/gql-1", json={**body, "rating": 7.5})
    assert rest_invalid.json()["error"]["message"] == invalid["message"]
    assert "rating" in invalid["message"]


def test_depth_limit_refuses_before_any_resolver_runs(client: TestClient) -> None:
    deep = "id"
    for _ in range(5):
        deep = f"media {{ similar(limit: 1) {{ {deep} }} }}"
    body = gql(client, f'{{ similar(id: "{NINTH_VAULT}", limit: 1) {{ {deep} }} }}')
    error = only_error(body)
    assert error["extensions"] == {"code": "QueryTooDeep", "status": 400}
    assert "exceeds maximum operation depth of 8" in error["message"]
    assert body["data"] is None

    mutation = f"""mutation {{
      upsertMedia(media: {{id: "too-deep", title: "Never Written"}}) {{
        media {{ similar(limit: 1) {{ {deep} }} }}
      }}
    }}"""
    assert only_error(gql(client, mutation))["extensions"]["code"] == "QueryTooDeep"
    assert client.get("/v1/media/too-deep").status_code == 404


def test_cost_limit_refuses_fan_out_and_names_cost_and_limit(client: TestClient) -> None:
    fan_out = """query($n: Int!) {
      search(query: "heist", limit: $n) { results { media { similar(limit: 100) { id title } } } }
    }"""
    body = gql(client, fan_out, {"n": 100})
    error = only_error(body)
    assert error["extensions"] == {
        "code": "QueryTooCostly",
        "status": 400,
        "cost": 22750,
        "maxCost": 5000,
    }
    assert "costs 22750, over the limit of 5000" in error["message"]
    assert body["data"] is None
    cheap = data(client, fan_out, {"n": 2})
    assert len(cheap["search"]["results"]) == 2

    mutation = """mutation {
      upsertMedia(media: {id: "too-dear", title: "Never Written"}) {
        media { similar(limit: 100) { media { similar(limit: 100) { id } } } }
      }
    }"""
    assert only_error(gql(client, mutation))["extensions"]["code"] == "QueryTooCostly"
    assert client.get("/v1/media/too-dear").status_code == 404


def test_themes_match_rest(client: TestClient, demo_runtime: Runtime) -> None:
    query = "{ themes { id label terms size items(limit: 3) { id title year } } }"
    before = only_error(gql(client, query))
    assert before["extensions"] == {"code": "NotFoundError", "status": 404}
    assert "run `metamedia train`" in before["message"]

    demo_runtime.train()
    themes = data(client, query)["themes"]
    rest = client.get("/v1/themes").json()
    assert [{k: t[k] for k in ("id", "label", "terms", "size")} for t in themes] == rest
    for theme in themes[:3]:
        detail = client.get(f"/v1/themes/{theme['id']}", params={"limit": 3}).json()
        assert theme["items"] == detail["items"]
    one = data(client, "{ theme(id: 0) { id label } }")["theme"]
    assert one == {"id": 0, "label": rest[0]["label"]}
    missing = only_error(gql(client, "{ theme(id: 999) { id } }"))
    assert missing["extensions"]["code"] == "NotFoundError"


def test_unexpected_errors_are_masked_and_product_errors_keep_their_message() -> None:
    leaked = _classified(GraphQLError("boom", original_error=RuntimeError("/srv/secret.db")))
    assert leaked.message == "internal error: the server log has the details"
    assert leaked.extensions == {"code": "InternalError", "status": 500}
    wrapped = GraphQLError(
        "x", original_error=GraphQLError("y", original_error=NotFoundError("gone"))
    )
    assert _classified(wrapped).message == "gone"
    assert wrapped.extensions == {"code": "NotFoundError", "status": 404}


def test_alias_flooding_and_get_queries(client: TestClient) -> None:
    flood = " ".join(f'm{i}: media(id: "{NINTH_VAULT}") {{ id }}' for i in range(31))
    error = only_error(gql(client, f"{{ {flood} }}"))
    assert error["extensions"]["code"] == "InvalidQuery" and "aliases" in error["message"]
    got = client.get("/graphql", params={"query": f'{{ media(id: "{NINTH_VAULT}") {{ title }} }}'})
    assert got.json() == {"data": {"media": {"title": "The Ninth Vault"}}}
