"""One relational backend per test, SQLite or PostgreSQL, with the SQL stores on it.

The contract tests ask the same questions of both and assert the same answers;
nothing here differs by backend except how the engine is opened.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Engine

from metamedia.storage.postgres import open_postgres
from metamedia.storage.sql_experiments import SQLExperimentStore
from metamedia.storage.sql_schema import media, media_viewer, open_sqlite
from metamedia.storage.sql_security import SQLAuditLog, SQLKeyStore
from metamedia.storage.sql_users import SQLUserStore


@dataclass(frozen=True)
class Backend:
    """An engine and the four SQL stores that share it."""

    name: str
    engine: Engine
    users: SQLUserStore
    experiments: SQLExperimentStore
    keys: SQLKeyStore
    audit: SQLAuditLog

    def count(self, table: Table, **where: object) -> int:
        """Rows of `table` whose columns equal `where`: reads the tables themselves,
        so erasure is checked beneath the store's own accounting."""
        query = select(func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def open_backend(name: str, engine: Engine) -> Backend:
    return Backend(
        name=name,
        engine=engine,
        users=SQLUserStore(engine),
        experiments=SQLExperimentStore(engine),
        keys=SQLKeyStore(engine),
        audit=SQLAuditLog(engine),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SQLite in a temp file or a fresh PostgreSQL database (the server starts only
    for the PostgreSQL half: `postgres_url` is asked for lazily)."""
    if request.param == "sqlite":
        engine = open_sqlite(f"sqlite:///{tmp_path / 'contract.db'}")
    else:
        engine = open_postgres(request.getfixturevalue("postgres_url"))
    yield open_backend(request.param, engine)
    engine.dispose()


def add_media(
    engine: Engine,
    tenant: str,
    external_id: str,
    *,
    visibility: str = "public",
    owner: str | None = None,
    viewers: Iterable[str] = (),
) -> int:
    """A minimal media row (plus media_viewer rows for the named viewers); its pk.

    The user store only joins media for pks, external ids and who may see an item,
    so every other column holds a placeholder.
    """
    now = time.time()
    with engine.begin() as conn:
        key = conn.execute(
            media.insert().values(
                tenant=tenant,
                external_id=external_id,
                type="movie",
                title=f"Title of {external_id}",
                visibility=visibility,
                owner=owner,
                popularity=0.0,
                content_hash=f"c-{tenant}-{external_id}",
                row_hash=f"r-{tenant}-{external_id}",
                doc="{}",
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key
        assert key is not None
        pk = int(key[0])
        rows = [{"pk": pk, "viewer": viewer} for viewer in viewers]
        if rows:
            conn.execute(media_viewer.insert(), rows)
    return pk
