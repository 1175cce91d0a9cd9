"""FastAPI application factory."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from metamedia import __version__
from metamedia.api.errors import install_error_handlers
from metamedia.api.routes import health, media, search, themes, users
from metamedia.config import Settings
from metamedia.services.runtime import Runtime


def _warm_up(app: FastAPI, runtime: Runtime) -> None:
    """Load the index and the model before the first user query pays for it."""
    runtime.indexes.sync()
    runtime.search.embed_query("warm up")
    app.state.warm = True


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = runtime or Runtime.open(settings)
        app.state.runtime = rt
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
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(media.router)
    app.include_router(users.router)
    app.include_router(themes.router)
    return app
