"""Request ids, per-route metrics and the access log, as pure ASGI middleware.

Pure ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware
runs the app in a second task and re-streams the body, which costs more than
every other thing this middleware does together on a cached search.
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metamedia.observability.logs import request_id
from metamedia.observability.metrics import Metrics, current_metrics

access = logging.getLogger("metamedia.access")


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = request_id.set(rid)
        metrics = self.metrics
        metrics_token = current_metrics.set(metrics)
        metrics.window.sample_counters()
        started = time.perf_counter()
        status = 500
        header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            # The route template, never the raw path: ids in paths are personal data.
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            metrics.requests.labels(template, method, str(status)).inc()
            metrics.latency.labels(template, method, str(status)).observe(elapsed)
            metrics.window.request(status)
            if access.isEnabledFor(logging.INFO):
                access.info(
                    "request",
                    extra={
                        "fields": {
                            "method": method,
                            "route": template,
                            "status": status,
                            "ms": round(elapsed * 1000, 2),
                        }
                    },
                )
            current_metrics.reset(metrics_token)
            request_id.reset(token)


def _request_id(scope: Scope) -> str:
    """The caller's X-Request-ID when it is sane, else a fresh one."""
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            rid: str = value.decode("latin-1")
            if 0 < len(rid) <= 128 and rid.isprintable():
                return rid
            break
    return uuid.uuid4().hex
