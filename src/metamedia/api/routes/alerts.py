"""`GET /v1/admin/alerts`: the alert rules' current state (admin scope)."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from metamedia.api.security import AdminKey
from metamedia.observability.alerts import AlertEvaluator

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class AlertOut(BaseModel):
    name: str
    expression: str = Field(description="What the rule compares, in words.")
    threshold: float = Field(description="From configuration (METAMEDIA_ALERT_*).")
    unit: str
    window_s: float
    value: float | None = Field(description="Current value over the window; null without data.")
    samples: int | None = Field(
        description="Observations in the window (null for a point reading such as memory)."
    )
    min_samples: int | None = Field(description="Observations needed before the rule can fire.")
    state: Literal["ok", "firing", "no_data"]
    since: float | None = Field(description="Unix time the rule started firing; null otherwise.")
    severity: str


class AlertsOut(BaseModel):
    evaluated_at: float
    window_s: float
    firing: list[str]
    rules: list[AlertOut]


@router.get("/alerts", response_model=AlertsOut)
def list_alerts(request: Request, _admin: AdminKey) -> AlertsOut:
    """Every alert rule with its threshold, current value and state."""
    evaluator: AlertEvaluator = request.app.state.alerts
    now = time.time()
    rules = [AlertOut(**status.as_dict()) for status in evaluator.evaluate(now)]
    return AlertsOut(
        evaluated_at=now,
        window_s=evaluator.window.window_s,
        firing=[r.name for r in rules if r.state == "firing"],
        rules=rules,
    )
