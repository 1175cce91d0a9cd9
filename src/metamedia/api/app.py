"""FastAPI application factory."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from metamedia import __version__
from metamedia.api.access import document_rules, enforce, verify_declared
from metamedia.api.errors import install_error_handlers
from metamedia.api.graphql import graphql_router
from metamedia.api.observing import RequestObserver
from metamedia.api.routes import admin, alerts, health, media, search, themes, users, ws
from metamedia.api.routes import experiments as experiment_routes
from metamedia.api.security import RequestGuard
from metamedia.api.web import install as install_web
from metamedia.config import Settings
from metamedia.observability.alerts import AlertEvaluator, AlertThresholds
from metamedia.observability.logs import configure as configure_logging
from metamedia.observability.metrics import Metrics, resident_bytes
from metamedia.observability.sql import time_queries
from metamedia.services.runtime import Runtime


def _warm_up(app: FastAPI, runtime: Runtime) -> None:
    """Load the index and the model before the first user query pays for it."""
    runtime.indexes.sync()
    runtime.search.embed_query("warm up")
    # Everything loaded so far (model, index, payload) lives as long as the process:
    # moving it out of the collector's sight keeps full collections short.
    gc.collect()
    gc.freeze()
    # Cached answers take ~1 ms of Python; a feed being ranked holds the GIL for tens.
    # Switching threads every 1 ms (not 5) shortens a cached answer's wait behind it.
    sys.setswitchinterval(0.001)
    app.state.warm = True


def _gauges(runtime: Runtime) -> dict[str, float]:
    """Numbers read at scrape time."""
    indexes = runtime.indexes
    pool = runtime.caches.pool
    return {
        "catalog_items": runtime.repo.count(),
        "index_vectors": len(indexes.index),
        "index_tombstones": indexes.index.tombstones,
        "outbox_lag": runtime.repo.last_change() - indexes.watermark,
        "cache_budget_bytes": pool.budget_bytes,
        "cache_bytes_in_use": pool.bytes,
        "cache_cleanups_total": pool.cleanups,
        "cache_memory_cleanups_total": runtime.caches.memory_cleanups,
    }


def _alerts(settings: Settings, metrics: Metrics, runtime: Runtime) -> AlertEvaluator:
    thresholds = AlertThresholds(
        feed_p95_s=settings.alert_feed_p95_s,
        memory_bytes=settings.alert_memory_bytes,
        cache_hit_rate_min=settings.alert_cache_hit_rate_min,
        db_query_p95_s=settings.alert_db_query_s,
        error_rate=settings.alert_error_rate,
        min_samples=settings.alert_min_samples,
    )
    # Cache hit rate over every named cache: (hits, misses) summed by the registry.
    return AlertEvaluator(thresholds, metrics.window, runtime.caches.totals, resident_bytes)


async def _follow_outbox(runtime: Runtime, every_s: float = 1.0) -> None:
    """While live clients hold saved searches, replay other processes' catalog writes
    (e.g. a CLI ingest) every second so matches are pushed without waiting for a request."""
    while True:
        await asyncio.sleep(every_s)
        if any(s.searches for s in list(runtime.live.sessions.values())):
            try:
                await asyncio.to_thread(runtime.indexes.sync)
            except Exception:  # the next tick retries; a request would surface the error
                logging.getLogger(__name__).exception("outbox follow failed")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime.open(settings)
        app.state.runtime = rt
        metrics.watch(lambda: _gauges(rt))
        metrics.watch_caches(rt.caches.stats)
        app.state.alerts = _alerts(rt.settings, metrics, rt)
        untime_queries = time_queries(rt.stores.engine, metrics)
        app.state.warm = False
        warmer = threading.Thread(target=_warm_up, args=(app, rt), daemon=True)
        warmer.start()
        rt.live.attach(asyncio.get_running_loop())
        if rt.settings.feed_refresh:
            rt.refresher.start()
        if rt.activity is not None:  # this replica consumes the shared user-event stream
            rt.activity.start()
        follower = asyncio.create_task(_follow_outbox(rt))
        try:
            yield
        finally:
            follower.cancel()
            if rt.activity is not None:
                rt.activity.stop()
            rt.refresher.stop()
            warmer.join(timeout=60)
            untime_queries()
            if runtime is None:
                rt.close()
            else:
                rt.indexes.flush()

    app = FastAPI(
        title="Meta-Media-Search",
        version=__version__,
        description="Natural-language search over a media catalog: hybrid keyword + semantic.",
        lifespan=lifespan,
        dependencies=[Depends(enforce)],
    )
    config = runtime.settings if runtime is not None else (settings or Settings())
    settings = config
    metrics = Metrics(window_s=config.alert_window_s)
    app.state.metrics = metrics
    app.add_middleware(
        RequestGuard,
        max_body_bytes=config.max_body_bytes,
        per_ip=config.rate_limit_per_ip,
        per_key=config.rate_limit_per_key,
        redis_url=config.redis_url,
        database_url=config.resolved_database_url,
    )
    configure_logging()
    app.add_middleware(RequestObserver, metrics=metrics)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(media.router)
    app.include_router(users.router)
    app.include_router(themes.router)
    app.include_router(admin.router)
    app.include_router(experiment_routes.router)
    app.include_router(ws.router)
    app.include_router(alerts.router)
    app.include_router(graphql_router(config))
    install_web(app)  # the web UI: /, /media/{id}, /feed, /themes, /admin, /static
    verify_declared(app)  # every route has an access rule, or the app does not start
    document_rules(app)  # ... and /openapi.json says which
    return app
