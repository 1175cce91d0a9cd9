"""API-key checks, rate limits and request-size limits.

The key travels in `Authorization: Bearer <key>` or `X-API-Key`; it is hashed
at once and never logged. Rate limits use the `limits` library's sliding-window
counters: a verified key is limited per key, everyone else per client IP, so a
made-up key cannot escape the per-IP limit.
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from limits import RateLimitItem, parse_many
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metamedia.services.access import require_key
from metamedia.services.auth import Principal
from metamedia.services.rate_limits import limiter_for
from metamedia.services.runtime import Runtime

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})


def presented_key(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def _headers(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def _key_with(request: Request, scope: str) -> Principal:
    """The caller's key if it holds `scope` (401 / 403 with the reason otherwise)."""
    from metamedia.api.access import caller_of  # access builds on this module

    return require_key(caller_of(request), scope)


def write_principal(request: Request) -> Principal:
    return _key_with(request, "write")


def admin_principal(request: Request) -> Principal:
    return _key_with(request, "admin")


WriteKey = Annotated[Principal, Depends(write_principal)]
AdminKey = Annotated[Principal, Depends(admin_principal)]


class RequestGuard:
    """ASGI middleware: body-size limit, then per-key / per-IP rate limit.

    Pure ASGI (not BaseHTTPMiddleware) so it adds microseconds, not a task hop,
    and so it can count streamed bodies that carry no Content-Length.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        per_ip: str,
        per_key: str,
        redis_url: str | None = None,
        database_url: str = "",
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.per_ip: list[RateLimitItem] = parse_many(per_ip)
        self.per_key: list[RateLimitItem] = parse_many(per_key)
        # Shared by every replica through Redis when there is one (see rate_limits).
        self.limiter = limiter_for(redis_url, database_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        retry_after = self._limited(scope, headers)
        if retry_after is not None:
            await _reject(
                scope,
                send,
                429,
                "RateLimited",
                f"too many requests: retry after {retry_after} s",
                [(b"retry-after", str(retry_after).encode())],
            )
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _reject(scope, send, 413, "PayloadTooLarge", self._too_large(int(declared)))
            return
        if scope["type"] == "http" and declared is None:
            # A streamed body: read it (up to the limit) before the app sees any of it.
            body = await self._read_bounded(receive)
            if body is None:
                await _reject(
                    scope, send, 413, "PayloadTooLarge", self._too_large(self.max_body + 1)
                )
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    def _too_large(self, size: int) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.max_body} bytes"

    def _limited(self, scope: Scope, headers: dict[str, str]) -> int | None:
        """Seconds to wait when over the limit, else None (and the hit is counted)."""
        runtime: Runtime | None = getattr(scope.get("app"), "state", None) and getattr(
            scope["app"].state, "runtime", None
        )
        secret = presented_key(headers)
        principal = runtime.keys.verify(secret) if runtime is not None and secret else None
        if principal is not None:
            limits, kind, who = self.per_key, "key", principal.actor
        else:
            client = scope.get("client")
            limits, kind, who = self.per_ip, "ip", client[0] if client else "unknown"
        for item in limits:
            if not self.limiter.hit(item, kind, who):
                reset = self.limiter.get_window_stats(item, kind, who).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None

    async def _read_bounded(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later messages: disconnect notices

    return replay


async def _reject(
    scope: Scope,
    send: Send,
    status: int,
    kind: str,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
