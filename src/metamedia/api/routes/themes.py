"""`/v1/themes`: the catalog's clusters, labelled by their most telling terms."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from metamedia.api.deps import RuntimeDep, TenantDep
from metamedia.api.params import ThemeIdPath

router = APIRouter(prefix="/v1/themes", tags=["themes"])


@router.get("")
def list_themes(runtime: RuntimeDep, tenant: TenantDep) -> list[dict[str, Any]]:
    """Every theme with its label and size (404 until `metamedia train` has run)."""
    return runtime.themes.list(tenant)


@router.get("/{theme_id}")
def get_theme(
    theme_id: ThemeIdPath,
    runtime: RuntimeDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """One theme and its most central items."""
    return runtime.themes.get(tenant, theme_id, limit)
