"""Per-request GraphQL context: the caller (tenant, viewer) resolved as for REST."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import strawberry
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from metamedia.api.access import GRAPHQL_RULES, CallerDep, UndeclaredRouteError
from metamedia.domain import MediaItem
from metamedia.errors import NotFoundError
from metamedia.services.access import Caller, check
from metamedia.services.runtime import Runtime

P = ParamSpec("P")
T = TypeVar("T")


async def call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a synchronous service call on the thread pool.

    GraphQL resolvers run on the event loop; our services block on SQLite,
    faiss and the embedding model, so a slow search must not stall every other
    request. This is the same pool FastAPI uses for the plain-`def` REST routes.
    """
    return await run_in_threadpool(fn, *args, **kwargs)


class GraphQLContext(BaseContext):
    """What every resolver needs; `media` batches nested item look-ups per request."""

    def __init__(self, request: Request, runtime: Runtime, caller: Caller):
        super().__init__()
        self.request = request
        self.runtime = runtime
        self.caller = caller
        self.tenant = caller.tenant
        self.viewer = caller.viewer
        self.media: DataLoader[str, MediaItem | None] = DataLoader(load_fn=self._load_media)

    @property
    def http_request(self) -> Request:
        """The HTTP request (never a WebSocket: this schema has no subscriptions)."""
        request = self.request
        assert isinstance(request, Request)
        return request

    async def _load_media(self, ids: list[str]) -> list[MediaItem | None]:
        return await call(self._fetch_media, ids)

    def _fetch_media(self, ids: list[str]) -> list[MediaItem | None]:
        """Items as this viewer may see them; None for gone or hidden ones."""
        found: list[MediaItem | None] = []
        for media_id in ids:
            try:
                found.append(self.runtime.catalog.get(media_id, self.tenant, self.viewer))
            except NotFoundError:
                found.append(None)
        return found


async def get_context(request: Request, caller: CallerDep) -> GraphQLContext:
    """FastAPI dependency: the caller (and its tenant and viewer) resolved as for REST."""
    runtime: Runtime = request.app.state.runtime
    return GraphQLContext(request, runtime, caller)


Info = strawberry.Info[GraphQLContext, None]


def allow(info: Info, user: str | None = None) -> None:
    """Apply the field's declared rule (`GRAPHQL_RULES`, the same as the REST route it
    mirrors) to the caller; `user` is the user the field is about. Refusals become
    errors with REST's code and status (AuthenticationError 401, PermissionDeniedError 403)."""
    name = f"{info.operation.operation.value.title()}.{info.field_name}"
    rule = GRAPHQL_RULES.get(name)
    if rule is None:
        raise UndeclaredRouteError(f"GraphQL field {name} declares no access rule")
    check(info.context.caller, rule, user)


def verify_fields_declared(*roots: type) -> None:
    """Every root field (Query, Mutation) has an entry in `GRAPHQL_RULES`."""
    missing = []
    for root in roots:
        definition = root.__strawberry_definition__  # type: ignore[attr-defined]
        for field in definition.fields:
            name = f"{definition.name}.{field.graphql_name or _camel(field.python_name)}"
            if name not in GRAPHQL_RULES:
                missing.append(name)
    if missing:
        raise UndeclaredRouteError(
            "GraphQL fields without an access rule in GRAPHQL_RULES: " + ", ".join(missing)
        )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
