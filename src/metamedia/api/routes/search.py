"""`/v1/search`: POST with a JSON body, GET with query parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError

from metamedia.api.access import CallerDep
from metamedia.api.deps import RegionDep, RuntimeDep, TenantDep, ViewerDep
from metamedia.api.variants import shown_to
from metamedia.domain import SearchMode, SearchRequest, SearchResponse, search_request_from_params
from metamedia.errors import InvalidRequestError
from metamedia.services.validation import describe_validation_error

router = APIRouter(prefix="/v1", tags=["search"])

GET_PARAMS = {
    "q",
    "query",
    "mode",
    "limit",
    "offset",
    "type",
    "genre",
    "year_min",
    "year_max",
    "platform",
    "language",
    "min_rating",
}


def _request(data: dict[str, Any]) -> SearchRequest:
    try:
        return SearchRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(describe_validation_error(exc)) from exc


@router.post("/search", response_model=SearchResponse)
def search_post(
    body: dict[str, Any],
    runtime: RuntimeDep,
    tenant: TenantDep,
    viewer: ViewerDep,
    region: RegionDep,
    caller: CallerDep,
) -> SearchResponse:
    """Search with the full request body (mode, paging, filters, fusion weights)."""
    if "tenant" in body or "user" in body:
        raise InvalidRequestError(
            "tenant and user come from the credentials (keys may send X-Tenant / X-User)"
        )
    request = _request({**body, "tenant": tenant, "user": viewer})
    return shown_to(caller, runtime.discovery.search(request, region=region))


@router.get("/search", response_model=SearchResponse)
def search_get(
    request: Request,
    runtime: RuntimeDep,
    tenant: TenantDep,
    viewer: ViewerDep,
    region: RegionDep,
    caller: CallerDep,
    q: Annotated[str | None, Query(description="The query text.")] = None,
    mode: SearchMode = "hybrid",
    limit: int = 10,
    offset: int = 0,
    type: Annotated[list[str] | None, Query()] = None,
    genre: Annotated[list[str] | None, Query()] = None,
    year_min: int | None = None,
    year_max: int | None = None,
    platform: Annotated[list[str] | None, Query()] = None,
    language: Annotated[list[str] | None, Query()] = None,
    min_rating: float | None = None,
) -> SearchResponse:
    """Simple searches as a URL; list filters repeat (`genre=crime&genre=drama`)."""
    unknown = sorted(set(request.query_params) - GET_PARAMS)
    if unknown:
        raise InvalidRequestError(
            f"unknown query parameter(s): {', '.join(unknown)}", field=unknown[0]
        )
    query = q if q is not None else request.query_params.get("query")
    try:
        search_request = search_request_from_params(
            query or "",
            mode=mode,
            limit=limit,
            offset=offset,
            types=type,
            genres=genre,
            platforms=platform,
            languages=language,
            year_min=year_min,
            year_max=year_max,
            min_rating=min_rating,
            tenant=tenant,
            user=viewer,
        )
    except ValidationError as exc:
        raise InvalidRequestError(describe_validation_error(exc)) from exc
    return shown_to(caller, runtime.discovery.search(search_request, region=region))
