"""`/v1/admin/flags`, `/v1/admin/experiments`: feature flags and A/B tests (admin scope).

Every change is written to the audit log with the caller's key (`flag.create`,
`flag.update`, `flag.kill`, `flag.enable`, `flag.delete`, and the same for
`experiment.*`). Disabling is the kill switch: the next request of every user
ranks as control, in this process at once and in others sharing the database
within `METAMEDIA_EXPERIMENTS_REFRESH_S`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import HTTPException
from openfeature.evaluation_context import EvaluationContext
from pydantic import BaseModel

from metamedia.api.deps import RuntimeDep
from metamedia.api.security import AdminKey
from metamedia.domain.experiments import ExperimentDefinition, FlagDefinition

router = APIRouter(prefix="/v1/admin", tags=["experiments"])

Body = dict[str, Any]
KeyPath = Annotated[str, "flag or experiment key"]


class Evaluation(BaseModel):
    """An OpenFeature evaluation, for checking who gets what."""

    key: str
    value: bool | str | None
    variant: str | None
    reason: str | None
    error: str | None
    metadata: dict[str, Any]


def _flag(value: Any) -> FlagDefinition:
    assert isinstance(value, FlagDefinition)
    return value


def _experiment(value: Any) -> ExperimentDefinition:
    assert isinstance(value, ExperimentDefinition)
    return value


def _created(response: Response, created: bool) -> None:
    response.status_code = 201 if created else 200


def _refuse_existing(runtime: RuntimeDep, key: str) -> None:
    snapshot = runtime.experiments.store.reload()
    if key in snapshot.flags or key in snapshot.experiments:
        raise HTTPException(409, f"{key!r} already exists: use PUT or PATCH to change it")


def _key_of(body: Body) -> str:
    key = body.get("key")
    if not isinstance(key, str):
        raise HTTPException(422, "the body needs a 'key' (a string)")
    return key


# -- flags -------------------------------------------------------------------------------


@router.get("/flags", response_model=list[FlagDefinition])
def list_flags(runtime: RuntimeDep, _admin: AdminKey) -> list[FlagDefinition]:
    return runtime.experiments.flags()


@router.post("/flags", response_model=FlagDefinition, status_code=201)
def create_flag(body: Body, runtime: RuntimeDep, admin: AdminKey) -> FlagDefinition:
    """Create a flag (409 if the key exists). `rolloutPercentage` is accepted too."""
    key = _key_of(body)
    _refuse_existing(runtime, key)
    return _flag(runtime.experiments.put("flag", key, body, admin.actor)[0])


@router.get("/flags/{key}", response_model=FlagDefinition)
def get_flag(key: KeyPath, runtime: RuntimeDep, _admin: AdminKey) -> FlagDefinition:
    return runtime.experiments.flag(key)


@router.put("/flags/{key}", response_model=FlagDefinition)
def put_flag(
    key: KeyPath, body: Body, response: Response, runtime: RuntimeDep, admin: AdminKey
) -> FlagDefinition:
    """Create or replace (201 when new); a bad definition is refused and nothing changes."""
    definition, created = runtime.experiments.put("flag", key, body, admin.actor)
    _created(response, created)
    return _flag(definition)


@router.patch("/flags/{key}", response_model=FlagDefinition)
def patch_flag(key: KeyPath, body: Body, runtime: RuntimeDep, admin: AdminKey) -> FlagDefinition:
    """Change some fields, e.g. `{"rollout_percentage": 50}`."""
    return _flag(runtime.experiments.patch("flag", key, body, admin.actor))


@router.post("/flags/{key}/enable", response_model=FlagDefinition)
def enable_flag(key: KeyPath, runtime: RuntimeDep, admin: AdminKey) -> FlagDefinition:
    return _flag(runtime.experiments.set_enabled("flag", key, True, admin.actor))


@router.post("/flags/{key}/disable", response_model=FlagDefinition)
def disable_flag(key: KeyPath, runtime: RuntimeDep, admin: AdminKey) -> FlagDefinition:
    """Kill switch: off for everyone from the next request."""
    return _flag(runtime.experiments.set_enabled("flag", key, False, admin.actor))


@router.delete("/flags/{key}", status_code=204)
def delete_flag(key: KeyPath, runtime: RuntimeDep, admin: AdminKey) -> Response:
    runtime.experiments.delete("flag", key, admin.actor)
    return Response(status_code=204)


# -- experiments -------------------------------------------------------------------------


@router.get("/experiments", response_model=list[ExperimentDefinition])
def list_experiments(runtime: RuntimeDep, _admin: AdminKey) -> list[ExperimentDefinition]:
    return runtime.experiments.experiments()


@router.post("/experiments", response_model=ExperimentDefinition, status_code=201)
def create_experiment(body: Body, runtime: RuntimeDep, admin: AdminKey) -> ExperimentDefinition:
    """Create an experiment (409 if the key exists). `trafficAllocation` is accepted too."""
    key = _key_of(body)
    _refuse_existing(runtime, key)
    return _experiment(runtime.experiments.put("experiment", key, body, admin.actor)[0])


@router.get("/experiments/{key}", response_model=ExperimentDefinition)
def get_experiment(key: KeyPath, runtime: RuntimeDep, _admin: AdminKey) -> ExperimentDefinition:
    return runtime.experiments.experiment(key)


@router.put("/experiments/{key}", response_model=ExperimentDefinition)
def put_experiment(
    key: KeyPath, body: Body, response: Response, runtime: RuntimeDep, admin: AdminKey
) -> ExperimentDefinition:
    """Create or replace (201 when new); a bad definition is refused and nothing changes."""
    definition, created = runtime.experiments.put("experiment", key, body, admin.actor)
    _created(response, created)
    return _experiment(definition)


@router.patch("/experiments/{key}", response_model=ExperimentDefinition)
def patch_experiment(
    key: KeyPath, body: Body, runtime: RuntimeDep, admin: AdminKey
) -> ExperimentDefinition:
    """Change some fields, e.g. `{"traffic_allocation": 50}` (nobody already in changes
    variant when the allocation grows)."""
    return _experiment(runtime.experiments.patch("experiment", key, body, admin.actor))


@router.post("/experiments/{key}/enable", response_model=ExperimentDefinition)
def enable_experiment(key: KeyPath, runtime: RuntimeDep, admin: AdminKey) -> ExperimentDefinition:
    return _experiment(runtime.experiments.set_enabled("experiment", key, True, admin.actor))


@router.post("/experiments/{key}/disable", response_model=ExperimentDefinition)
def disable_experiment(key: KeyPath, runtime: RuntimeDep, admin: AdminKey) -> ExperimentDefinition:
    """Kill switch: everyone ranks as control from the next request (audited as
    `experiment.kill`); exposures and outcomes so far stay for the report."""
    return _experiment(runtime.experiments.set_enabled("experiment", key, False, admin.actor))


@router.delete("/experiments/{key}", status_code=204)
def delete_experiment(key: KeyPath, runtime: RuntimeDep, admin: AdminKey) -> Response:
    """Remove the experiment with its exposures and outcomes."""
    runtime.experiments.delete("experiment", key, admin.actor)
    return Response(status_code=204)


@router.get("/experiments/{key}/report")
def experiment_report(key: KeyPath, runtime: RuntimeDep, _admin: AdminKey) -> dict[str, Any]:
    """Per variant: exposed users and exposures; per outcome type (click, like, complete,
    favorite, share, any): converting users, events, per-user rate with its Wilson score
    95% interval, and difference / relative lift against control."""
    return runtime.experiments.report(key)


# -- evaluation --------------------------------------------------------------------------


@router.get("/evaluate/{key}", response_model=Evaluation)
def evaluate(
    key: KeyPath,
    runtime: RuntimeDep,
    _admin: AdminKey,
    user: Annotated[str, Query(min_length=1, max_length=256)],
    tenant: Annotated[str, Query(min_length=1, max_length=64)] = "default",
    region: Annotated[str | None, Query(max_length=16)] = None,
) -> Evaluation:
    """What `user` gets for a flag or experiment right now (through OpenFeature);
    evaluating records no exposure."""
    service = runtime.experiments
    snapshot = service.snapshot()
    context: EvaluationContext = service.context(tenant, user, region)
    if key in snapshot.flags:
        flag = service.client.get_boolean_details(key, False, context)
        value: bool | str | None = flag.value
        details: Any = flag
    else:
        found = service.client.get_string_details(key, "", context)
        value = found.value or None
        details = found
    error = details.error_message if details.error_code else None
    if details.error_code and details.error_code.value == "FLAG_NOT_FOUND":
        raise HTTPException(404, f"no flag or experiment named {key!r}")
    return Evaluation(
        key=key,
        value=value,
        variant=details.variant,
        reason=str(details.reason) if details.reason else None,
        error=error,
        metadata=dict(details.flag_metadata),
    )
