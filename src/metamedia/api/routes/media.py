"""`/v1/media`: read, replace, delete one item; batch upsert many."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, Field

from metamedia.api.access import CallerDep
from metamedia.api.deps import RuntimeDep, TenantDep, ViewerDep
from metamedia.api.params import MediaIdPath
from metamedia.api.security import WriteKey
from metamedia.errors import InvalidRequestError
from metamedia.services.recommend import FeedItem

router = APIRouter(prefix="/v1/media", tags=["media"])


class BatchResult(BaseModel):
    index: int
    id: str | None
    status: str = Field(description="inserted, updated, unchanged, superseded or rejected")
    error: str | None = None


class BatchResponse(BaseModel):
    results: list[BatchResult]
    accepted: int
    rejected: int


@router.get("/{media_id:path}/similar", response_model=list[FeedItem])
def similar_media(
    media_id: MediaIdPath,
    runtime: RuntimeDep,
    tenant: TenantDep,
    caller: CallerDep,
    user: Annotated[
        str | None,
        Query(max_length=256, description="Keys only: personalise for this user."),
    ] = None,
    positive: Annotated[list[str] | None, Query()] = None,
    negative: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[FeedItem]:
    """More like this; personalised with `user` (a key acting for them) or the caller's
    own user, steered by positive / negative examples."""
    return runtime.recommend.similar(
        tenant,
        media_id,
        user=caller.act_as(user),
        positive=positive,
        negative=negative,
        limit=limit,
    )


@router.get("/{media_id:path}")
def get_media(
    media_id: MediaIdPath, runtime: RuntimeDep, tenant: TenantDep, viewer: ViewerDep
) -> dict[str, Any]:
    return runtime.catalog.get(media_id, tenant, viewer).model_dump(mode="json")


@router.put("/{media_id:path}")
def put_media(
    media_id: MediaIdPath,
    body: dict[str, Any],
    runtime: RuntimeDep,
    tenant: TenantDep,
    response: Response,
    _key: WriteKey,
) -> dict[str, Any]:
    """Create or replace one item; 201 when it was new."""
    item, status = runtime.catalog.put(media_id, body, tenant)
    if status == "inserted":
        response.status_code = 201
    return {"status": status, "item": item.model_dump(mode="json")}


@router.delete("/{media_id:path}", status_code=204)
def delete_media(
    media_id: MediaIdPath, runtime: RuntimeDep, tenant: TenantDep, _key: WriteKey
) -> Response:
    runtime.catalog.delete(media_id, tenant)
    return Response(status_code=204)


@router.post("", response_model=BatchResponse)
def upsert_batch(
    body: Annotated[Any, Body()], runtime: RuntimeDep, tenant: TenantDep, _key: WriteKey
) -> BatchResponse:
    """Batch upsert: `{"items": [...]}` or a bare list; bad items do not block good ones."""
    items = body.get("items") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InvalidRequestError('body must be {"items": [...]} or a JSON array of items')
    results = runtime.catalog.upsert_many(items, tenant)
    rejected = sum(1 for r in results if r.status == "rejected")
    return BatchResponse(
        results=[BatchResult(**r.__dict__) for r in results],
        accepted=len(results) - rejected,
        rejected=rejected,
    )
