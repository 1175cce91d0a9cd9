"""`/v1/admin`: API keys and the audit log (admin scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from metamedia.api.deps import RuntimeDep
from metamedia.api.security import AdminKey
from metamedia.storage.sqlite_security import KeyRecord

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=3)


class KeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
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
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


@router.get("/keys", response_model=list[KeyOut])
def list_keys(runtime: RuntimeDep, _admin: AdminKey) -> list[KeyOut]:
    return [KeyOut(**_key_out(r)) for r in runtime.keys.all()]


@router.post("/keys", response_model=IssuedKeyOut, status_code=201)
def create_key(body: KeyIn, runtime: RuntimeDep, admin: AdminKey) -> IssuedKeyOut:
    issued = runtime.keys.create(body.name, body.scopes, actor=admin.actor)
    return IssuedKeyOut(**_key_out(issued.record), key=issued.secret)


@router.delete("/keys/{key_id}", status_code=204)
def revoke_key(key_id: int, runtime: RuntimeDep, admin: AdminKey) -> Response:
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
    rows = []
    for s in runtime.caches.stats():
        lookups = s.hits + s.misses
        rows.append(
            CacheOut(**s.__dict__, hit_rate=round(s.hits / lookups, 4) if lookups else None)
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
