"""Request dependencies: the runtime, tenant and viewer, in one place.

The tenant and viewer come from the caller that `metamedia.api.access` resolved from
the credentials; the `X-Tenant` / `X-User` headers are declared here so the API
documents them, and are honoured only where the caller may make that claim.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from metamedia.api.access import caller_of
from metamedia.services.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_tenant(
    request: Request,
    x_tenant: Annotated[
        str | None,
        Header(
            max_length=64,
            description="Platform keys only: the tenant to act for. Other callers' tenant "
            "comes from their credentials; naming another is refused (403).",
        ),
    ] = None,
) -> str:
    return caller_of(request).tenant


def get_viewer(
    request: Request,
    x_user: Annotated[
        str | None,
        Header(
            max_length=256,
            description="Keys only: the end user to act for (sees their private items). "
            "A user token acts as its own user; anonymous callers cannot name one.",
        ),
    ] = None,
) -> str | None:
    return caller_of(request).viewer


def get_region(
    x_region: Annotated[str | None, Header(max_length=8, pattern=r"^[A-Za-z]{2,3}$")] = None,
) -> str | None:
    """The viewer's region (ISO country code) for experiment targeting, e.g. from a CDN."""
    return x_region.upper() if x_region else None


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
TenantDep = Annotated[str, Depends(get_tenant)]
ViewerDep = Annotated[str | None, Depends(get_viewer)]
RegionDep = Annotated[str | None, Depends(get_region)]
