"""Per-request GraphQL context: runtime, tenant and viewer, as REST's dependencies give them."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import strawberry
from fastapi import Request
from starlette.concurrency import run_in_threadpool
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext

from metamedia.api.deps import TenantDep, ViewerDep
from metamedia.domain import MediaItem
from metamedia.errors import NotFoundError
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

    def __init__(self, request: Request, runtime: Runtime, tenant: str, viewer: str | None):
        super().__init__()
        self.request = request
        self.runtime = runtime
        self.tenant = tenant
        self.viewer = viewer
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


async def get_context(request: Request, tenant: TenantDep, viewer: ViewerDep) -> GraphQLContext:
    """FastAPI dependency: tenant from `X-Tenant`, viewer from `X-User`, as in REST."""
    runtime: Runtime = request.app.state.runtime
    return GraphQLContext(request, runtime, tenant, viewer)


Info = strawberry.Info[GraphQLContext, None]
