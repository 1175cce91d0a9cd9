"""Tenant and user isolation, generated from the live API description.

Every REST operation in `/openapi.json`, every GraphQL root field from introspection
and every WebSocket message type is tried by every kind of caller (anonymous, user
tokens of this and the other tenant, tenant keys of each scope, the other tenant's
key, platform keys) against its own and the other user, its own and the other
tenant, with and without `X-Tenant` / `X-User` claims. Each answer must be what the
oracle in `tests/api/isolation.py` says (refused: 401/403; allowed: neither), and no
response may carry a marker word of an item, user datum or tenant the caller may not
see. A route or field without a declared access rule fails the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from metamedia.api.access import GRAPHQL_RULES, RULES, openapi_rule, route_keys, undeclared
from metamedia.api.app import create_app
from metamedia.api.routes.ws import MESSAGE_RULES
from metamedia.services.access import Access
from metamedia.services.runtime import Runtime
from tests.api.isolation import (
    ITEMS,
    QUERY,
    USERS,
    A,
    B,
    Verdict,
    Who,
    build_world,
    leaks,
    oracle,
    preferences,
)
from tests.conftest import ADMIN_HEADERS
from tests.live_server import ServeThread

UNLIMITED = "1000000/minute"
SCRATCH_USER = "scratch-user"
SCRATCH_ITEM = "scratch-item"
# Allowed calls of these would destroy the world; they target a scratch id instead
# (refused calls still aim at the real one, and the world is checked afterwards).
DESTRUCTIVE = {
    ("PUT", "/v1/media/{media_id}"),
    ("DELETE", "/v1/media/{media_id}"),
    ("DELETE", "/v1/users/{user_id}"),
}


@pytest.fixture()
def world_runtime(make_runtime: Any) -> Runtime:
    runtime: Runtime = make_runtime(
        rate_limit_per_ip=UNLIMITED,
        rate_limit_per_key=UNLIMITED,
        graphql_budget_per_minute=10**9,
        graphql_key_budget_per_minute=10**9,
    )
    return runtime


@pytest.fixture()
def world(world_runtime: Runtime) -> Iterator[tuple[httpx.Client, list[Who]]]:
    """The world over real HTTP: `metamedia serve`'s app under uvicorn on 127.0.0.1."""
    with (
        ServeThread(world_runtime) as serving,
        httpx.Client(base_url=serving.url, timeout=60) as client,
    ):
        yield client, build_world(client)


@pytest.fixture()
def ws_world(world_runtime: Runtime) -> Iterator[tuple[TestClient, list[Who]]]:
    """The same world for the WebSocket pass (the test client speaks the WS protocol)."""
    with TestClient(create_app(runtime=world_runtime)) as client:
        yield client, build_world(client)


def _declared(method: str, openapi_path: str) -> Access:
    """The rule of an OpenAPI operation (`{id:path}` templates appear as `{id}` there)."""
    rule = openapi_rule(method, openapi_path)
    assert rule is not None, f"{method} {openapi_path} declares no access rule in RULES"
    return rule


def _body(method: str, path: str, user: str | None, tenant: str) -> Any:
    """A valid body; preferences re-state the user's own (so allowed writes change
    nothing), and carry no marker where the user belongs to another tenant."""
    prefs = preferences(user) if user and USERS.get(user) == tenant else {"maturity_limit": "R"}
    bodies: dict[tuple[str, str], Any] = {
        ("PUT", "/v1/media/{media_id}"): {"title": "Scratch Item", "type": "movie"},
        ("POST", "/v1/media"): {"items": []},
        ("POST", "/v1/search"): {"query": QUERY, "limit": 20},
        ("PUT", "/v1/users/{user_id}"): {"preferences": prefs},
        ("PUT", "/v1/users/{user_id}/preferences"): prefs,
        ("POST", "/v1/users/{user_id}/interactions"): {"events": [{"item": "a1", "type": "view"}]},
    }
    return bodies.get((method, path), {} if method in ("POST", "PUT", "PATCH") else None)


def _query(method: str, path: str) -> dict[str, Any]:
    if path == "/v1/search" and method == "GET":
        return {"q": QUERY, "limit": 20}
    if path.startswith("/v1/admin/evaluate/"):
        return {"user": "ann"}
    return {}


def _cases(path: str) -> Iterator[tuple[str | None, str | None, dict[str, str], str | None]]:
    """(user, item, claims, named user) variants for one operation."""
    users: list[str | None] = ["ann", "cat", "gus"] if "{user_id}" in path else [None]
    items: list[str | None] = ["a1", "a2", "g2"] if "{media_id}" in path else [None]
    first = True
    for user in users:
        for item in items:
            yield user, item, {}, None
            if first:
                for claims in ({"X-Tenant": B}, {"X-Tenant": A}, {"X-User": "ann"}):
                    yield user, item, claims, None
                if path.endswith("/similar"):
                    yield user, item, {}, "ann"
                    yield user, item, {}, "cat"
                first = False


def _url(path: str, user: str | None, item: str | None) -> str:
    filled = path.replace("{user_id}", user or "").replace("{media_id}", item or "")
    filled = filled.replace("{session_id}", f"sessmark{user}").replace("{theme_id}", "0")
    return filled.replace("{key_id}", "999999").replace("{key}", "iso-missing")


def _visible_count(verdict: Verdict) -> int:
    """Items the caller may count: its tenant's public items and private ones it may see,
    plus the one scratch item an allowed write may have added."""
    own = [
        m
        for m, (tenant, _, visibility, viewers) in ITEMS.items()
        if tenant == verdict.tenant and (visibility == "public" or verdict.viewer in viewers)
    ]
    return len(own) + 1


def _check(
    problems: list[str], what: str, status: int, text: str, verdict: Verdict, refused: bool
) -> None:
    if status >= 500:
        problems.append(f"{what}: server error {status}: {text[:200]}")
    if verdict.allowed and refused:
        problems.append(f"{what}: refused ({status}) but should be allowed: {text[:200]}")
    if not verdict.allowed and not refused:
        problems.append(f"{what}: allowed ({status}) but should be refused: {text[:200]}")
    found = leaks(text, verdict)
    if found:
        problems.append(f"{what}: leaked {found}: {text[:300]}")


def _run_rest(client: httpx.Client, callers: list[Who], mode: str) -> list[str]:
    schema = client.get("/openapi.json").json()
    problems: list[str] = []
    for path, operations in schema["paths"].items():
        for method in (m.upper() for m in operations):
            rule = _declared(method, path)
            for user, item, claims, named in _cases(path):
                for who in callers:
                    verdict = oracle(who, rule, mode, claims, path_user=user, named_user=named)
                    target_user, target_item = user, item
                    if verdict.allowed and (method, path) in DESTRUCTIVE:
                        target_user = SCRATCH_USER if user else None
                        target_item = SCRATCH_ITEM if item else None
                        verdict = oracle(who, rule, mode, claims, target_user, named)
                    params = _query(method, path) | ({"user": named} if named else {})
                    response = client.request(
                        method,
                        _url(path, target_user, target_item),
                        params=params,
                        json=_body(method, path, target_user, verdict.tenant),
                        headers=who.headers | claims,
                    )
                    what = (
                        f"{who.name} {method} {path} user={target_user} item={target_item} "
                        f"{claims} named={named}"
                    )
                    refused = response.status_code in (401, 403)
                    _check(problems, what, response.status_code, response.text, verdict, refused)
                    if verdict.allowed and "search" in path and response.status_code == 200:
                        matched = response.json().get("matched") or 0
                        if matched > _visible_count(verdict):
                            problems.append(f"{what}: matched {matched} counts hidden items")
    return problems


def _world_intact(client: httpx.Client) -> None:
    """No refused write changed anything: every item and user is as it was made."""
    for media_id, (tenant, marker, _, viewers) in ITEMS.items():
        viewer = {"X-User": sorted(viewers)[0]} if viewers else {}
        found = client.get(
            f"/v1/media/{media_id}", headers=ADMIN_HEADERS | {"X-Tenant": tenant} | viewer
        )
        assert found.status_code == 200, (media_id, found.text)
        assert found.json()["title"].lower().startswith(marker), found.json()
    for user, tenant in USERS.items():
        prefs = client.get(
            f"/v1/users/{user}/preferences", headers=ADMIN_HEADERS | {"X-Tenant": tenant}
        )
        assert prefs.status_code == 200, (user, prefs.text)
        assert prefs.json()["blocked_owners"] == preferences(user)["blocked_owners"]
    keys = client.get("/v1/admin/keys", headers=dict(ADMIN_HEADERS)).json()
    assert len(keys) == 5 and all(k["revoked_at"] is None for k in keys), keys


def test_every_route_declares_an_access_rule(ws_world: tuple[TestClient, list[Who]]) -> None:
    client, _ = ws_world
    assert undeclared(client.app) == []  # type: ignore[arg-type]
    served = set(route_keys(client.app))  # type: ignore[arg-type]
    assert not set(RULES) - served, f"rules for routes that do not exist: {set(RULES) - served}"
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation["x-access"] == _declared(method.upper(), path).value
            assert "Access: " in operation["description"]
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def test_rest_routes_isolate_tenants_users_and_scopes(
    world: tuple[httpx.Client, list[Who]], world_runtime: Runtime
) -> None:
    client, callers = world
    problems = _run_rest(client, callers, "read")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:25])
    _world_intact(client)


@pytest.mark.parametrize("mode", ["off", "open"])
def test_anonymous_modes_hold_on_every_route(
    mode: str, world: tuple[httpx.Client, list[Who]], world_runtime: Runtime
) -> None:
    client, callers = world
    world_runtime.settings.anonymous = mode  # type: ignore[assignment]
    anonymous = [who for who in callers if who.kind == "anonymous"]
    problems = _run_rest(client, anonymous, mode)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:25])
    _world_intact(client)


# -- GraphQL ------------------------------------------------------------------------------

SEARCH = """query($q: String!) { search(query: $q, limit: 20) {
  matched results { media { id title description } } } }"""
MEDIA = "query($id: String!) { media(id: $id) { id title description } }"
SIMILAR = """query($id: String!, $named: String) {
  similar(id: $id, limit: 10, user: $named) { id title reasons } }"""
FEED = (
    "query($user: String!) { discoveryFeed(user: $user, limit: 20) { items { id title reasons } } }"
)
USER = """query($user: String!) { user(id: $user) {
  id preferences { blockedOwners } history(limit: 50) { item context { device session } }
  favorites { item media { title } } } }"""
RECORD = """mutation($user: String!) {
  recordInteraction(user: $user, events: [{item: "a1", type: view}]) { recorded } }"""
PREFS = """mutation($user: String!, $prefs: PreferencesInput!) {
  setPreferences(user: $user, preferences: $prefs) { blockedOwners } }"""
UPSERT_USER = (
    "mutation($user: String!) { upsertUser(id: $user) { id preferences { blockedOwners } } }"
)
UPSERT_MEDIA = """mutation { upsertMedia(media: {id: "scratch-gql", title: "Scratch Gql",
  type: movie}) { status } }"""

MEDIA_SIMILAR = """query($id: String!, $named: String) {
  media(id: $id) { id title similar(limit: 10, user: $named) { id title reasons } } }"""

# field -> (document, takes a user, takes an item, takes a named user); a nested field
# that names a user (`Media.similar(user:)`) is tried through its root field too.
GRAPHQL_CASES: dict[str, tuple[str, bool, bool, bool]] = {
    "Query.search": (SEARCH, False, False, False),
    "Query.media": (MEDIA, False, True, False),
    "Query.media+Media.similar": (MEDIA_SIMILAR, False, True, True),
    "Query.similar": (SIMILAR, False, True, True),
    "Query.themes": ("{ themes { id label } }", False, False, False),
    "Query.theme": ("{ theme(id: 0) { id label } }", False, False, False),
    "Query.discoveryFeed": (FEED, True, False, False),
    "Query.user": (USER, True, False, False),
    "Mutation.recordInteraction": (RECORD, True, False, False),
    "Mutation.setPreferences": (PREFS, True, False, False),
    "Mutation.upsertUser": (UPSERT_USER, True, False, False),
    "Mutation.upsertMedia": (UPSERT_MEDIA, False, False, False),
}


def _root_fields(client: httpx.Client) -> list[str]:
    document = "{ __schema { queryType { fields { name } } mutationType { fields { name } } } }"
    found = client.post("/graphql", json={"query": document}).json()["data"]["__schema"]
    names = [f"Query.{f['name']}" for f in found["queryType"]["fields"]]
    return names + [f"Mutation.{f['name']}" for f in found["mutationType"]["fields"]]


def test_graphql_fields_isolate_tenants_users_and_scopes(
    world: tuple[httpx.Client, list[Who]],
) -> None:
    client, callers = world
    fields = _root_fields(client)
    assert set(fields) == set(GRAPHQL_RULES), "every root field declares its access rule"
    untried = set(fields) - set(GRAPHQL_CASES)
    assert not untried, f"add an isolation case for the new GraphQL field(s) {untried}"
    problems: list[str] = []
    for name, (document, takes_user, takes_item, takes_named) in GRAPHQL_CASES.items():
        rule = GRAPHQL_RULES[name.split("+")[0]]
        users = ["ann", "cat", "gus"] if takes_user else [None]
        items = ["a1", "a2", "g2"] if takes_item else [None]
        variants: list[tuple[str | None, str | None, dict[str, str], str | None]] = [
            (u, i, {}, None) for u in users for i in items
        ]
        variants += [(users[0], items[0], c, None) for c in ({"X-Tenant": B}, {"X-User": "ann"})]
        if takes_named:
            variants += [(users[0], items[0], {}, n) for n in ("ann", "cat")]
        for user, item, claims, named in variants:
            variables: dict[str, Any] = {"q": QUERY, "id": item, "named": named, "user": user}
            for who in callers:
                verdict = oracle(who, rule, "read", claims, path_user=user, named_user=named)
                if name == "Mutation.setPreferences":
                    own = user is not None and USERS.get(user) == verdict.tenant
                    blocked = preferences(user)["blocked_owners"] if own and user else ["nobody"]
                    variables["prefs"] = {"blockedOwners": blocked}
                if named is not None:  # a public item the caller's tenant has: the claim decides
                    variables["id"] = "g1" if who.tenant == B else "a1"
                used = {k: v for k, v in variables.items() if f"${k}" in document}
                response = client.post(
                    "/graphql",
                    json={"query": document, "variables": used},
                    headers=who.headers | claims,
                )
                body = response.json()
                statuses = {e.get("extensions", {}).get("status") for e in body.get("errors") or []}
                refused = response.status_code in (401, 403) or bool(statuses & {401, 403})
                what = f"{who.name} {name} user={user} item={item} {claims} named={named}"
                _check(problems, what, response.status_code, response.text, verdict, refused)
                if 500 in statuses:
                    problems.append(f"{what}: internal error {response.text[:200]}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:25])
    _world_intact(client)


# -- WebSocket ---------------------------------------------------------------------------


def _ws_messages(user: str) -> list[tuple[str, dict[str, Any], str | None]]:
    """One message of each type (with the user it is about), in a sensible order."""
    return [
        ("ping", {"type": "ping"}, None),
        ("subscribe_feed", {"type": "subscribe_feed", "user": user, "limit": 20}, user),
        ("subscribe_search", {"type": "subscribe_search", "id": "s1", "query": QUERY}, None),
        ("unsubscribe", {"type": "unsubscribe", "id": "s1"}, None),
        ("bye", {"type": "bye"}, None),
    ]


def test_websocket_messages_isolate_tenants_users_and_scopes(
    ws_world: tuple[httpx.Client, list[Who]],
) -> None:
    client, callers = ws_world
    assert {kind for kind, _, _ in _ws_messages("ann")} == set(MESSAGE_RULES)
    problems: list[str] = []
    for who in callers:
        for claims, user in (({}, "ann"), ({}, "cat"), ({}, "gus"), ({"X-Tenant": B}, "gus")):
            connect = oracle(who, Access.LIVE, "read", claims)
            what = f"{who.name} ws {claims}"
            try:
                with client.websocket_connect("/v1/ws", headers=who.headers | claims) as ws:
                    if who.kind == "anonymous":
                        ws.send_json({"type": "auth"})
                    ready = ws.receive_json()
                    if who.kind == "anonymous" or not connect.allowed:
                        problems.append(f"{what}: connected but should be refused: {ready}")
                        continue
                    assert ready["type"] == "ready", ready
                    for kind, message, about in _ws_messages(user):
                        rule = MESSAGE_RULES[kind]
                        verdict = oracle(who, rule, "read", claims, path_user=about)
                        ws.send_json(message)
                        if kind == "bye":
                            break
                        reply = ws.receive_json()
                        while reply["type"] in ("heartbeat", "lag"):
                            reply = ws.receive_json()
                        refused = reply["type"] == "error" and (
                            "token" in reply["message"] or "scope" in reply["message"]
                        )
                        text = str(reply)
                        _check(problems, f"{what} {kind} user={about}", 200, text, verdict, refused)
            except WebSocketDisconnect as closed:
                if who.kind != "anonymous" and connect.allowed:
                    problems.append(f"{what}: refused ({closed.code} {closed.reason})")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:25])
