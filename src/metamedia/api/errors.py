"""One place that maps errors to HTTP responses: JSON with a message that says what was wrong."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from metamedia.errors import MetaMediaError, RateLimitedError, StoreUnavailableError


def error_body(
    kind: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if details:
        body["error"]["details"] = details
    return body


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


def _count(request: Request, kind: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(type=kind).inc()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MetaMediaError)
    async def _product_error(request: Request, exc: MetaMediaError) -> JSONResponse:
        _count(request, type(exc).__name__)
        details = [{"field": exc.field}] if exc.field else None
        headers = None
        if isinstance(exc, RateLimitedError | StoreUnavailableError):
            headers = {"Retry-After": str(exc.retry_after)}
        return JSONResponse(
            error_body(type(exc).__name__, exc.message, details),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        _count(request, "InvalidRequest")
        details = []
        for problem in exc.errors():
            where = _location(problem.get("loc", ()))
            message = str(problem.get("msg", "invalid"))
            if problem.get("type") == "extra_forbidden":
                message = f"unknown field '{where}'"
            details.append({"field": where, "message": message})
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return JSONResponse(
            error_body("InvalidRequest", f"invalid request: {summary}", details), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body("HTTPError", str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
