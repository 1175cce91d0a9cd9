"""`/v1/users/{id}`: profile and preferences, interactions, history, favorites,
discovery feed, and GDPR export / erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel

from metamedia.api.abuse import EventGate, event_gate
from metamedia.api.access import CallerDep
from metamedia.api.deps import RegionDep, RuntimeDep, TenantDep
from metamedia.api.params import SessionIdPath, UserIdPath
from metamedia.api.security import WriteKey
from metamedia.api.variants import shown_to
from metamedia.domain.users import InteractionResult, Preferences, StoredInteraction
from metamedia.errors import InvalidRequestError
from metamedia.services.recommend import FeedPage
from metamedia.storage.records import UserRecord

router = APIRouter(prefix="/v1/users", tags=["users"])


class UserOut(BaseModel):
    id: str
    tenant: str
    created_at: float
    preferences: Preferences


class InteractionsOut(BaseModel):
    results: list[InteractionResult]
    recorded: int
    duplicate: int
    rejected: int


_STATUSES = ("recorded", "duplicate", "rejected")


@router.put("/{user_id}", response_model=UserOut)
def put_user(
    user_id: UserIdPath,
    runtime: RuntimeDep,
    tenant: TenantDep,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> UserOut:
    """Create a user (idempotent); `{"preferences": {...}}` sets preferences too."""
    if body is not None and set(body) - {"preferences"}:
        unknown = ", ".join(sorted(set(body) - {"preferences"}))
        raise InvalidRequestError(f"unknown field(s): {unknown}")
    return _user_out(runtime.users.upsert(tenant, user_id, (body or {}).get("preferences")))


@router.get("/{user_id}", response_model=UserOut)
def get_user(user_id: UserIdPath, runtime: RuntimeDep, tenant: TenantDep) -> UserOut:
    return _user_out(runtime.users.require(tenant, user_id))


def _user_out(record: UserRecord) -> UserOut:
    return UserOut(
        id=record.external_id,
        tenant=record.tenant,
        created_at=record.created_at,
        preferences=Preferences.model_validate(record.preferences),
    )


@router.get("/{user_id}/preferences", response_model=Preferences)
def get_preferences(user_id: UserIdPath, runtime: RuntimeDep, tenant: TenantDep) -> Preferences:
    return runtime.users.preferences(tenant, user_id)


@router.put("/{user_id}/preferences", response_model=Preferences)
def put_preferences(
    user_id: UserIdPath,
    body: Annotated[dict[str, Any], Body()],
    runtime: RuntimeDep,
    tenant: TenantDep,
) -> Preferences:
    return runtime.users.set_preferences(tenant, user_id, body)


@router.post("/{user_id}/interactions", response_model=InteractionsOut)
def post_interactions(
    user_id: UserIdPath,
    body: Annotated[Any, Body()],
    runtime: RuntimeDep,
    tenant: TenantDep,
    caller: CallerDep,
    gate: Annotated[EventGate, Depends(event_gate)],
) -> InteractionsOut:
    """`{"events": [{"item", "type", "value", "ts", "context"}]}`; per-event results.
    User tokens and anonymous callers send at most `untrusted_event_batch` events a
    request and `user_event_rate` per user."""
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list):
        raise InvalidRequestError('body must be {"events": [...]}')
    gate.admit(caller, tenant, user_id, len(events))
    results = runtime.users.record(tenant, user_id, events)
    counts = [sum(1 for r in results if r.status == status) for status in _STATUSES]
    return InteractionsOut(
        results=results, recorded=counts[0], duplicate=counts[1], rejected=counts[2]
    )


@router.get("/{user_id}/history", response_model=list[StoredInteraction])
def get_history(
    user_id: UserIdPath,
    runtime: RuntimeDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[StoredInteraction]:
    return runtime.users.history(tenant, user_id, limit, offset)


@router.get("/{user_id}/sessions/{session_id}", response_model=list[StoredInteraction])
def get_session(
    user_id: UserIdPath,
    session_id: SessionIdPath,
    runtime: RuntimeDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[StoredInteraction]:
    """The current session's context: recent actions sent with this `context.session`."""
    return runtime.users.history(tenant, user_id, limit, 0, session=session_id)


@router.get("/{user_id}/favorites")
def get_favorites(
    user_id: UserIdPath, runtime: RuntimeDep, tenant: TenantDep
) -> list[dict[str, Any]]:
    return runtime.users.favorites(tenant, user_id)


@router.get("/{user_id}/feed", response_model=FeedPage)
def get_feed(
    user_id: UserIdPath,
    runtime: RuntimeDep,
    tenant: TenantDep,
    region: RegionDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> FeedPage:
    """The discovery feed; pass `next_cursor` back for the next page (no duplicates).
    `experiments` names the variants only to callers holding a key."""
    page = runtime.discovery.feed(tenant, user_id, limit, cursor, region=region)
    return shown_to(caller, page)


class TokenOut(BaseModel):
    token: str
    expires_in: int


@router.post("/{user_id}/token", response_model=TokenOut)
def issue_token(
    user_id: UserIdPath,
    runtime: RuntimeDep,
    tenant: TenantDep,
    _key: WriteKey,
    ttl_s: Annotated[int, Query(ge=60, le=86_400)] = 3600,
) -> TokenOut:
    """A short-lived token that proves this user of this tenant: their device sends it
    as `Authorization: Bearer` (REST, GraphQL) or in `/v1/ws`'s `auth` message and acts
    as that user only. Minted by a back end with a `write` key; devices never hold keys."""
    runtime.users.require(tenant, user_id)
    return TokenOut(token=runtime.keys.issue_user_token(tenant, user_id, ttl_s), expires_in=ttl_s)


@router.get("/{user_id}/export")
def export_user(user_id: UserIdPath, runtime: RuntimeDep, tenant: TenantDep) -> dict[str, Any]:
    """Everything held about the user (GDPR access): their own token, or a `write` key."""
    return runtime.users.export(tenant, user_id)


@router.delete("/{user_id}", status_code=204)
def delete_user(
    user_id: UserIdPath, runtime: RuntimeDep, tenant: TenantDep, _key: WriteKey
) -> Response:
    """Erase the user from every store and cache (GDPR erasure)."""
    runtime.users.delete(tenant, user_id)
    return Response(status_code=204)
