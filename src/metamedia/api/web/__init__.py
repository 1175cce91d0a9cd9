"""The web UI: server-rendered pages on the same app and port as the REST API.

No build step: Jinja2 templates, one stylesheet and one small script that only
enhances (every page works without it). `install(app)` is the one hook the app
factory calls.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from metamedia.api.web import admin_pages, feed_pages, search_pages
from metamedia.api.web.common import STATIC_DIR, WebError, WebState, error_page


def install(app: FastAPI) -> None:
    """Mount `/static`, add the pages and their HTML error page."""
    app.state.web = WebState()

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> HTMLResponse:
        return error_page(request, exc)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(search_pages.router)
    app.include_router(feed_pages.router)
    app.include_router(admin_pages.router)


__all__ = ["install"]
