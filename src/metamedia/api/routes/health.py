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
    """Ready once the index and the model are loaded; shared stores only degrade it.

    The database and Redis are shared by every replica. If readiness failed with
    them, an outage of either would pull every replica from the load balancer at
    once, and searches the replicas answer from their in-memory indexes (and cached
    answers) would be refused too. So a warm replica stays ready (200) with
    `status: degraded` and the failing store named in `checks`; writes meanwhile
    answer 503 with Retry-After on their own. Before warm-up the answer is 503.
    """
    runtime = request.app.state.runtime
    checks: dict[str, Any] = {"warm": bool(getattr(request.app.state, "warm", False))}
    try:
        runtime.repo.ping()
        checks["database"] = "ok"
    except Exception as exc:  # any database failure: report it, degrade
        checks["database"] = f"error: {type(exc).__name__}"
    shared = getattr(runtime, "shared", None)
    if shared is not None:
        checks["redis"] = shared.status()
    healthy = checks["database"] == "ok" and checks.get("redis", "ok") == "ok"
    status = ("ready" if healthy else "degraded") if checks["warm"] else "not ready"
    body = {"status": status, "checks": checks}
    return JSONResponse(body, status_code=503 if status == "not ready" else 200)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
