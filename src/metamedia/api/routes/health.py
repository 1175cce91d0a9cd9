"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and the index and model are loaded.

    With Redis configured, `checks.redis` says `ok` or `degraded`; a degraded
    Redis leaves the replica ready (it answers without the shared tier, with
    per-process rate limits) so a load balancer keeps sending it traffic.
    """
    runtime = request.app.state.runtime
    checks: dict[str, Any] = {"warm": bool(getattr(request.app.state, "warm", False))}
    try:
        runtime.repo.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any database failure means not ready
        checks["database"] = f"error: {type(exc).__name__}"
    shared = getattr(runtime, "shared", None)
    if shared is not None:
        checks["redis"] = shared.status()
    ready = checks["database"] == "ok" and checks["warm"]
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
