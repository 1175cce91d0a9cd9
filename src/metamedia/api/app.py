"""FastAPI application factory."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from metamedia import __version__
from metamedia.api.errors import install_error_handlers
from metamedia.api.routes import admin, health, media, search, themes, users
from metamedia.api.security import RequestGuard
from metamedia.config import Settings
from metamedia.observability.logs import configure as configure_logging
from metamedia.observability.logs import request_id
from metamedia.observability.metrics import Metrics
from metamedia.services.runtime import Runtime


def _warm_up(app: FastAPI, runtime: Runtime) -> None:
    """Load the index and the model before the first user query pays for it."""
    runtime.indexes.sync()
    runtime.search.embed_query("warm up")
    app.state.warm = True


def _gauges(runtime: Runtime) -> dict[str, float]:
    """Numbers read at scrape time."""
    indexes = runtime.indexes
    cache = runtime.search.query_cache
    return {
        "catalog_items": runtime.repo.count(),
        "index_vectors": len(indexes.index),
        "index_tombstones": indexes.index.tombstones,
        "outbox_lag": runtime.repo.last_change() - indexes.watermark,
        "query_cache_entries": len(cache),
        "query_cache_hits_total": cache.hits,
        "query_cache_misses_total": cache.misses,
        "query_cache_evictions_total": cache.evictions,
    }


def _observe_requests(app: FastAPI, metrics: Metrics) -> None:
    access = logging.getLogger("metamedia.access")

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        if len(rid) > 128 or not rid.isprintable():
            rid = uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["X-Request-ID"] = rid
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = request.scope.get("route")
            # The route template, never the raw path: ids in paths are personal data.
            template = getattr(route, "path", "unmatched")
            metrics.requests.labels(template, request.method, str(status)).inc()
            metrics.latency.labels(template, request.method).observe(elapsed)
            access.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "route": template,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    }
                },
            )
            request_id.reset(token)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime.open(settings)
        app.state.runtime = rt
        metrics.watch(lambda: _gauges(rt))
        app.state.warm = False
        warmer = threading.Thread(target=_warm_up, args=(app, rt), daemon=True)
        warmer.start()
        try:
            yield
        finally:
            warmer.join(timeout=60)
            if runtime is None:
                rt.close()
            else:
                rt.indexes.flush()

    app = FastAPI(
        title="Meta-Media-Search",
        version=__version__,
        description="Natural-language search over a media catalog: hybrid keyword + semantic.",
        lifespan=lifespan,
    )
    config = runtime.settings if runtime is not None else (settings or Settings())
    settings = config
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(
        RequestGuard,
        max_body_bytes=config.max_body_bytes,
        per_ip=config.rate_limit_per_ip,
        per_key=config.rate_limit_per_key,
    )
    configure_logging()
    _observe_requests(app, metrics)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(media.router)
    app.include_router(users.router)
    app.include_router(themes.router)
    app.include_router(admin.router)
    return app
