"""Request dependencies: the runtime, tenant and viewer, in one place."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from metamedia.services.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_tenant(x_tenant: Annotated[str | None, Header(max_length=64)] = None) -> str:
    return x_tenant or "default"


def get_viewer(x_user: Annotated[str | None, Header(max_length=256)] = None) -> str | None:
    return x_user or None


def get_region(
    x_region: Annotated[str | None, Header(max_length=8, pattern=r"^[A-Za-z]{2,3}$")] = None,
) -> str | None:
    """The viewer's region (ISO country code) for experiment targeting, e.g. from a CDN."""
    return x_region.upper() if x_region else None


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
TenantDep = Annotated[str, Depends(get_tenant)]
ViewerDep = Annotated[str | None, Depends(get_viewer)]
RegionDep = Annotated[str | None, Depends(get_region)]
