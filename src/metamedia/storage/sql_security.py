"""API keys (stored only as SHA-256 digests) and the append-only audit log.

Plain SQLAlchemy Core: the same statements answer alike on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from metamedia.storage.records import AuditEntry, KeyRecord
from metamedia.storage.sql_dialect import write_transaction
from metamedia.storage.sql_schema import api_keys, audit_log


class SQLKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        name: str,
        prefix: str,
        digest: str,
        scopes: frozenset[str],
        tenant: str | None = None,
    ) -> KeyRecord:
        now = time.time()
        with write_transaction(self.engine) as conn:
            pk = conn.execute(
                insert(api_keys).values(
                    name=name,
                    prefix=prefix,
                    hash=digest,
                    scopes=",".join(sorted(scopes)),
                    created_at=now,
                    tenant=tenant,
                )
            ).inserted_primary_key
        assert pk is not None
        return KeyRecord(int(pk[0]), name, prefix, scopes, now, None, tenant)

    def by_digest(self, digest: str) -> KeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.hash == digest)).first()
        return None if row is None else _key(row._mapping)

    def all(self) -> list[KeyRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.pk)).all()
        return [_key(row._mapping) for row in rows]

    def by_pk(self, pk: int) -> KeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.pk == pk)).first()
        return None if row is None else _key(row._mapping)

    def revoke(self, pk: int) -> bool:
        with write_transaction(self.engine) as conn:
            done = conn.execute(
                update(api_keys)
                .where(api_keys.c.pk == pk, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
        return bool(done.rowcount)


class SQLAuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, actor: str, action: str, target: str, detail: dict[str, Any]) -> AuditEntry:
        now = time.time()
        with write_transaction(self.engine) as conn:
            pk = conn.execute(
                insert(audit_log).values(
                    ts=now,
                    actor=actor,
                    action=action,
                    target=target,
                    detail=json.dumps(detail, sort_keys=True, default=str),
                )
            ).inserted_primary_key
        assert pk is not None
        return AuditEntry(int(pk[0]), now, actor, action, target, detail)

    def recent(self, limit: int = 100, action_prefix: str | None = None) -> list[AuditEntry]:
        """Newest first; `action_prefix` matches the start of the action exactly.

        Not LIKE: SQLite's LIKE ignores ASCII case and PostgreSQL's does not, and
        both read `_` and `%` in the prefix as wildcards.
        """
        query = select(audit_log).order_by(audit_log.c.pk.desc()).limit(limit)
        if action_prefix:
            query = query.where(
                func.substr(audit_log.c.action, 1, len(action_prefix)) == action_prefix
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(r.pk, r.ts, r.actor, r.action, r.target, json.loads(r.detail or "{}"))
            for r in rows
        ]


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        pk=row["pk"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=frozenset(s for s in row["scopes"].split(",") if s),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        tenant=row["tenant"],
    )
