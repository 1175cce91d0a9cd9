"""Every route's access rule, in one table, enforced by one app-wide dependency.

A route is matched by (method, path template); `WS` stands for a WebSocket. The app
refuses to start with a route missing from `RULES`, and the isolation suite
(`tests/api/test_isolation.py`) is generated from the same table and the live
OpenAPI schema, so a new route is covered (or fails) without anyone remembering to.

`enforce` resolves the caller once per request (key, user token or anonymous; the
tenant from the credentials) and applies the route's rule; handlers read the
result through `CallerDep`, `TenantDep` and `ViewerDep` (see `deps.py`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.requests import HTTPConnection

from metamedia.api.security import presented_key
from metamedia.errors import AuthenticationError
from metamedia.services.access import RULE_TEXT, Access, Caller, check, resolve
from metamedia.services.auth import DEFAULT_TENANT
from metamedia.services.runtime import Runtime

A = Access
RULES: dict[tuple[str, str], Access] = {
    # probes, metrics and the API's own description
    ("GET", "/healthz"): A.PUBLIC,
    ("GET", "/readyz"): A.PUBLIC,
    ("GET", "/metrics"): A.PUBLIC,
    ("GET", "/openapi.json"): A.PUBLIC,
    ("GET", "/docs"): A.PUBLIC,
    ("GET", "/docs/oauth2-redirect"): A.PUBLIC,
    ("GET", "/redoc"): A.PUBLIC,
    # the catalog
    ("GET", "/v1/search"): A.CATALOG_READ,
    ("POST", "/v1/search"): A.CATALOG_READ,
    ("GET", "/v1/media/{media_id:path}/similar"): A.CATALOG_READ,
    ("GET", "/v1/media/{media_id:path}"): A.CATALOG_READ,
    ("PUT", "/v1/media/{media_id:path}"): A.CATALOG_WRITE,
    ("DELETE", "/v1/media/{media_id:path}"): A.CATALOG_WRITE,
    ("POST", "/v1/media"): A.CATALOG_WRITE,
    ("GET", "/v1/themes"): A.CATALOG_READ,
    ("GET", "/v1/themes/{theme_id}"): A.CATALOG_READ,
    # a user's data
    ("PUT", "/v1/users/{user_id}"): A.USER_WRITE,
    ("GET", "/v1/users/{user_id}"): A.USER_READ,
    ("GET", "/v1/users/{user_id}/preferences"): A.USER_READ,
    ("PUT", "/v1/users/{user_id}/preferences"): A.USER_WRITE,
    ("POST", "/v1/users/{user_id}/interactions"): A.USER_WRITE,
    ("GET", "/v1/users/{user_id}/history"): A.USER_READ,
    ("GET", "/v1/users/{user_id}/sessions/{session_id}"): A.USER_READ,
    ("GET", "/v1/users/{user_id}/favorites"): A.USER_READ,
    ("GET", "/v1/users/{user_id}/feed"): A.USER_READ,
    ("POST", "/v1/users/{user_id}/token"): A.TOKEN_ISSUE,
    ("GET", "/v1/users/{user_id}/export"): A.USER_EXPORT,
    ("DELETE", "/v1/users/{user_id}"): A.USER_ERASE,
    # keys: a tenant's admin manages its own; everything else spans tenants
    ("GET", "/v1/admin/keys"): A.TENANT_ADMIN,
    ("POST", "/v1/admin/keys"): A.TENANT_ADMIN,
    ("DELETE", "/v1/admin/keys/{key_id}"): A.TENANT_ADMIN,
    ("GET", "/v1/admin/audit"): A.PLATFORM_ADMIN,
    ("GET", "/v1/admin/caches"): A.PLATFORM_ADMIN,
    ("POST", "/v1/admin/caches/clear"): A.PLATFORM_ADMIN,
    ("GET", "/v1/admin/alerts"): A.PLATFORM_ADMIN,
    ("GET", "/v1/admin/flags"): A.PLATFORM_ADMIN,
    ("POST", "/v1/admin/flags"): A.PLATFORM_ADMIN,
    ("GET", "/v1/admin/flags/{key}"): A.PLATFORM_ADMIN,
    ("PUT", "/v1/admin/flags/{key}"): A.PLATFORM_ADMIN,
    ("PATCH", "/v1/admin/flags/{key}"): A.PLATFORM_ADMIN,
    ("POST", "/v1/admin/flags/{key}/enable"): A.PLATFORM_ADMIN,
    ("POST", "/v1/admin/flags/{key}/disable"): A.PLATFORM_ADMIN,
    ("DELETE", "/v1/admin/flags/{key}"): A.PLATFORM_ADMIN,
    ("GET", "/v1/admin/experiments"): A.PLATFORM_ADMIN,
    ("POST", "/v1/admin/experiments"): A.PLATFORM_ADMIN,
    ("GET", "/v1/admin/experiments/{key}"): A.PLATFORM_ADMIN,
    ("PUT", "/v1/admin/experiments/{key}"): A.PLATFORM_ADMIN,
    ("PATCH", "/v1/admin/experiments/{key}"): A.PLATFORM_ADMIN,
    ("POST", "/v1/admin/experiments/{key}/enable"): A.PLATFORM_ADMIN,
    ("POST", "/v1/admin/experiments/{key}/disable"): A.PLATFORM_ADMIN,
    ("DELETE", "/v1/admin/experiments/{key}"): A.PLATFORM_ADMIN,
    ("GET", "/v1/admin/experiments/{key}/report"): A.PLATFORM_ADMIN,
    ("GET", "/v1/admin/evaluate/{key}"): A.PLATFORM_ADMIN,
    # GraphQL (each field checks the rule of the REST route it mirrors) and live updates
    ("GET", "/graphql"): A.GRAPHQL,
    ("POST", "/graphql"): A.GRAPHQL,
    ("WS", "/graphql"): A.GRAPHQL,
    ("WS", "/v1/ws"): A.LIVE,
    # web pages
    ("GET", "/"): A.WEB,
    ("GET", "/media/{media_id:path}"): A.WEB,
    ("GET", "/feed"): A.WEB,
    ("POST", "/feed/user"): A.WEB,
    ("POST", "/feed/signout"): A.WEB,
    ("POST", "/feed/react"): A.WEB,
    ("GET", "/themes"): A.WEB,
    ("GET", "/themes/{theme_id}"): A.WEB,
    ("GET", "/admin/login"): A.WEB,
    ("POST", "/admin/login"): A.WEB,
    ("POST", "/admin/logout"): A.WEB,
    ("GET", "/admin"): A.WEB,
    ("POST", "/admin/kill-switch"): A.WEB,
    ("POST", "/admin/toggle"): A.WEB,
}

# GraphQL root fields, by "Type.field": the rule of the REST route each mirrors. Nested
# fields (a user's history, an item's `similar`) are reached only through these.
GRAPHQL_RULES: dict[str, Access] = {
    "Query.search": A.CATALOG_READ,
    "Query.media": A.CATALOG_READ,
    "Query.similar": A.CATALOG_READ,
    "Query.themes": A.CATALOG_READ,
    "Query.theme": A.CATALOG_READ,
    "Query.discoveryFeed": A.USER_READ,
    "Query.user": A.USER_READ,
    "Mutation.recordInteraction": A.USER_WRITE,
    "Mutation.setPreferences": A.USER_WRITE,
    "Mutation.upsertUser": A.USER_WRITE,
    "Mutation.upsertMedia": A.CATALOG_WRITE,
}

# Rules whose handlers authenticate themselves (in-protocol, cookies) or need nobody.
_SELF_CHECKED = frozenset({A.PUBLIC, A.LIVE, A.WEB})


class UndeclaredRouteError(RuntimeError):
    """A route has no entry in `RULES`: declare who may call it before it can be served."""


def route_keys(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves (HEAD rides along with GET)."""
    for context in iter_route_contexts(app.routes):
        route = context.route
        if isinstance(route, APIWebSocketRoute):
            yield "WS", route.path
            continue
        methods = getattr(route, "methods", None)
        path = getattr(route, "path", None)
        if not methods or path is None:
            continue  # mounts (static files)
        for method in sorted(methods - {"HEAD"}):
            yield method, path


def undeclared(app: FastAPI) -> list[tuple[str, str]]:
    return [key for key in route_keys(app) if key not in RULES]


def verify_declared(app: FastAPI) -> None:
    missing = undeclared(app)
    if missing:
        raise UndeclaredRouteError(
            "routes without an access rule in metamedia.api.access.RULES: "
            + ", ".join(f"{m} {p}" for m, p in missing)
        )


def openapi_rule(method: str, openapi_path: str) -> Access | None:
    """The rule of an operation as OpenAPI names it (`{id:path}` appears as `{id}`)."""
    for (rule_method, path), rule in RULES.items():
        if rule_method == method and path.replace(":path}", "}") == openapi_path:
            return rule
    return None


def document_rules(app: FastAPI) -> None:
    """Put each operation's rule in `/openapi.json` (`x-access` and a line of its
    description) and name the two ways to send credentials, so clients, fuzzers and
    operators read the same table the app enforces."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                rule = openapi_rule(method.upper(), path)
                if rule is None:
                    continue
                operation["x-access"] = rule.value
                text = operation.get("description", "")
                operation["description"] = f"{text}\n\nAccess: {RULE_TEXT[rule]}.".strip()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key, or a user token from POST /v1/users/{id}/token.",
            },
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        schema["security"] = [{}, {"bearer": []}, {"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def rule_for(conn: HTTPConnection) -> Access:
    route = conn.scope.get("route")
    path = getattr(route, "path", None)
    method = "WS" if conn.scope["type"] == "websocket" else conn.scope["method"]
    if method == "HEAD":
        method = "GET"
    rule = RULES.get((method, str(path)))
    if rule is None:  # verify_declared makes this unreachable for served routes
        raise UndeclaredRouteError(f"no access rule for {method} {path}")
    return rule


def credentials(runtime: Runtime, headers: dict[str, str]) -> Caller:
    """The caller behind `Authorization: Bearer` / `X-API-Key` (a key or a user token)
    and the `X-Tenant` / `X-User` claims; a credential that is neither is a 401."""
    settings = runtime.settings
    secret = presented_key(headers)
    key = token = None
    if secret is not None:
        key = runtime.keys.verify(secret)
        token = None if key is not None else runtime.keys.verify_user_token(secret)
        if key is None and token is None:
            raise AuthenticationError("the API key or user token is unknown, revoked or expired")
    return resolve(
        settings.anonymous,
        DEFAULT_TENANT,
        key,
        token,
        claimed_tenant=headers.get("x-tenant") or None,
        claimed_user=headers.get("x-user") or None,
    )


def caller_of(conn: HTTPConnection) -> Caller:
    """This request's caller, resolved once (by `enforce`, or here on first use)."""
    cached = getattr(conn.state, "caller", None)
    if isinstance(cached, Caller):
        return cached
    runtime: Runtime = conn.app.state.runtime
    caller = credentials(runtime, {k.lower(): v for k, v in conn.headers.items()})
    conn.state.caller = caller
    return caller


def enforce(conn: HTTPConnection) -> None:
    """App-wide dependency: apply the matched route's rule before its handler runs."""
    rule = rule_for(conn)
    if rule in _SELF_CHECKED:
        return
    caller = caller_of(conn)
    check(caller, rule, conn.path_params.get("user_id"))


CallerDep = Annotated[Caller, Depends(caller_of)]
