"""`/v1/admin`: API keys and the audit log (admin scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from metamedia.api.deps import RuntimeDep
from metamedia.api.security import AdminKey
from metamedia.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from metamedia.services.auth import DEFAULT_TENANT, Principal
from metamedia.storage.records import KeyRecord

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=3)
    tenant: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The tenant the key acts for; default: the caller's (a platform "
        "caller's default is 'default'). A tenant key may only name its own.",
    )
    platform: bool = Field(
        default=False,
        description="A platform key (no tenant; names one with X-Tenant). Only a "
        "platform admin key may create one.",
    )


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    tenant: str | None = Field(description="null for a platform key")
    created_at: float
    revoked_at: float | None


class IssuedKeyOut(KeyOut):
    key: str = Field(description="Shown once; only its SHA-256 digest is stored.")


class AuditOut(BaseModel):
    id: int
    ts: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def _key_out(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.pk,
        "name": record.name,
        "prefix": record.prefix,
        "scopes": sorted(record.scopes),
        "tenant": record.tenant,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


def _visible(record: KeyRecord, admin: Principal) -> bool:
    """A platform admin sees every key; a tenant's admin only that tenant's keys."""
    return admin.platform or record.tenant == admin.tenant


@router.get("/keys", response_model=list[KeyOut])
def list_keys(runtime: RuntimeDep, admin: AdminKey) -> list[KeyOut]:
    return [KeyOut(**_key_out(r)) for r in runtime.keys.all() if _visible(r, admin)]


@router.post("/keys", response_model=IssuedKeyOut, status_code=201)
def create_key(body: KeyIn, runtime: RuntimeDep, admin: AdminKey) -> IssuedKeyOut:
    """Mint a key for one tenant (or, by a platform admin, a platform key)."""
    if body.platform and body.tenant is not None:
        raise InvalidRequestError("a key is either for one tenant or a platform key, not both")
    if body.platform and not admin.platform:
        raise PermissionDeniedError("only a platform key with 'admin' may create platform keys")
    tenant = None if body.platform else (body.tenant or admin.tenant or DEFAULT_TENANT)
    if not admin.platform and tenant != admin.tenant:
        raise PermissionDeniedError(
            f"key '{admin.name}' administers tenant {admin.tenant!r} only, not {tenant!r}"
        )
    issued = runtime.keys.create(body.name, body.scopes, actor=admin.actor, tenant=tenant)
    return IssuedKeyOut(**_key_out(issued.record), key=issued.secret)


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=2**62)], runtime: RuntimeDep, admin: AdminKey
) -> Response:
    record = runtime.keys.get(key_id)
    if record is None or not _visible(record, admin):
        raise NotFoundError(f"no active API key with id {key_id}")
    runtime.keys.revoke(key_id, actor=admin.actor)
    return Response(status_code=204)


@router.get("/audit", response_model=list[AuditOut])
def audit(
    runtime: RuntimeDep,
    _admin: AdminKey,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    action: Annotated[str | None, Query(max_length=64, description="action prefix")] = None,
) -> list[AuditOut]:
    return [
        AuditOut(id=e.pk, **{k: v for k, v in e.__dict__.items() if k != "pk"})
        for e in runtime.keys.history(limit, action)
    ]


class CacheOut(BaseModel):
    name: str
    entries: int
    bytes: int
    hits: int
    misses: int
    hit_rate: float | None
    evictions: int
    expirations: int
    ttl_s: float
    # The shared tier (Redis): lookups the in-process tier missed, answered or not.
    # `hits` above already includes shared_hits; null without a shared tier.
    shared_hits: int | None = None
    shared_misses: int | None = None


class CachesOut(BaseModel):
    budget_bytes: int
    bytes_in_use: int
    cleanups: int
    memory_cleanups: int
    caches: list[CacheOut]


@router.get("/caches", response_model=CachesOut)
def caches(runtime: RuntimeDep, _admin: AdminKey) -> CachesOut:
    """Every cache's size, hit rate and evictions against the shared byte budget."""
    pool = runtime.caches.pool
    shared = runtime.caches.shared_counts()
    rows = []
    for s in runtime.caches.stats():
        lookups = s.hits + s.misses
        l2_hits, l2_misses = shared.get(s.name, (None, None))
        rows.append(
            CacheOut(
                **s.__dict__,
                hit_rate=round(s.hits / lookups, 4) if lookups else None,
                shared_hits=l2_hits,
                shared_misses=l2_misses,
            )
        )
    return CachesOut(
        budget_bytes=pool.budget_bytes,
        bytes_in_use=pool.bytes,
        cleanups=pool.cleanups,
        memory_cleanups=runtime.caches.memory_cleanups,
        caches=rows,
    )


@router.post("/caches/clear")
def clear_caches(runtime: RuntimeDep, admin: AdminKey) -> dict[str, int]:
    """Empty every cache (answers are unchanged; the next requests recompute)."""
    dropped = runtime.caches.clear()
    runtime.keys.record(admin.actor, "cache.clear", "caches", {"entries": dropped})
    return {"dropped": dropped}
