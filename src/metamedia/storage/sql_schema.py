"""Schema of the embedded relational store and how its SQLite connections are set up.

Kept apart from the repositories so every repository (media, users, ...) shares
one metadata object and one engine per database file.

The Table objects below are the current schema, the one queries are written against;
databases get it from the Alembic revisions in `storage/migrations` (run on open by
`sql_migrate.upgrade_database`), never from `metadata.create_all`. A schema change is a
change here plus a new revision; tests/storage/test_migrations.py checks that a
database migrated to head matches `metadata`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from metamedia.storage.sql_migrate import upgrade_database

metadata = MetaData()

media = Table(
    "media",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("external_id", String(256), nullable=False),
    Column("type", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("year", Integer),
    Column("rating", Float),
    Column("language", String(16)),
    Column("visibility", String(8), nullable=False),
    Column("owner", String(256)),
    Column("popularity", Float, nullable=False, default=0.0),
    # engine.payload.maturity_level of the item's maturity rating (-1: unknown), so that
    # SQL can evaluate a maturity limit the way the payload mask does.
    Column("maturity_level", Integer, nullable=False, server_default="-1"),
    Column("content_hash", String(64), nullable=False),
    Column("row_hash", String(64), nullable=False),
    Column("doc", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("tenant", "external_id", name="uq_media_tenant_id"),
    sqlite_autoincrement=True,
)
Index("ix_media_filter", media.c.tenant, media.c.type, media.c.year)
# The feed's "popular" and "fresh" sources read the top of these orders (migration 0004).
Index("ix_media_popularity", media.c.tenant, media.c.popularity)
Index("ix_media_year", media.c.tenant, media.c.year)

media_genre = Table(
    "media_genre",
    metadata,
    Column("pk", Integer, ForeignKey("media.pk", ondelete="CASCADE"), primary_key=True),
    Column("genre", String(200), primary_key=True),
)
Index("ix_media_genre_genre", media_genre.c.genre, media_genre.c.pk)

media_platform = Table(
    "media_platform",
    metadata,
    Column("pk", Integer, ForeignKey("media.pk", ondelete="CASCADE"), primary_key=True),
    Column("platform", String(200), primary_key=True),
)
Index("ix_media_platform_platform", media_platform.c.platform, media_platform.c.pk)

# Other release years (MediaItem.release_years): year filters match m.year or any of
# these. Created on open like every table, so older data dirs gain it (empty).
media_year = Table(
    "media_year",
    metadata,
    Column("pk", Integer, ForeignKey("media.pk", ondelete="CASCADE"), primary_key=True),
    Column("year", Integer, primary_key=True),
)

media_viewer = Table(
    "media_viewer",
    metadata,
    Column("pk", Integer, ForeignKey("media.pk", ondelete="CASCADE"), primary_key=True),
    Column("viewer", String(256), primary_key=True),
)

embeddings = Table(
    "embeddings",
    metadata,
    Column("model", String(128), primary_key=True),
    Column("content_hash", String(64), primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("pk", Integer, nullable=False),
    Column("op", String(8), nullable=False),
    Column("at", Float, nullable=False),
    sqlite_autoincrement=True,
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("external_id", String(256), nullable=False),
    Column("preferences", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("tenant", "external_id", name="uq_users_tenant_id"),
    sqlite_autoincrement=True,
)

interactions = Table(
    "interactions",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), nullable=False),
    Column("media_pk", Integer, nullable=False),
    Column("type", String(16), nullable=False),
    Column("value", Float),
    Column("ts", Float, nullable=False),
    Column("context", Text),
    UniqueConstraint("user_pk", "media_pk", "type", "ts", name="uq_interaction_event"),
)
Index("ix_interactions_user_ts", interactions.c.user_pk, interactions.c.ts)
Index("ix_interactions_media_ts", interactions.c.media_pk, interactions.c.ts)

favorites = Table(
    "favorites",
    metadata,
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("media_pk", Integer, primary_key=True),
    Column("created_at", Float, nullable=False),
)

user_vectors = Table(
    "user_vectors",
    metadata,
    Column("user_pk", Integer, ForeignKey("users.pk", ondelete="CASCADE"), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("events", Integer, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("scopes", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    # NULL: a platform key (may name any tenant); else the one tenant the key acts for.
    Column("tenant", String(64)),
    sqlite_autoincrement=True,
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
    sqlite_autoincrement=True,
)

# Feature flags and experiments: definitions (a change bumps meta 'features_version'),
# one exposure row per (experiment, user) with a count, per-user outcome counts.
feature_definitions = Table(
    "feature_definitions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("source", String(8), nullable=False),
    Column("config_hash", String(64)),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(128), nullable=False),
)

experiment_exposures = Table(
    "experiment_exposures",
    metadata,
    Column("experiment", String(64), primary_key=True),
    Column("tenant", String(64), primary_key=True),
    Column("user_id", String(256), primary_key=True),
    Column("variant", String(64), nullable=False),
    Column("first_ts", Float, nullable=False),
    Column("last_ts", Float, nullable=False),
    Column("count", Integer, nullable=False),
)
Index("ix_exposures_user", experiment_exposures.c.tenant, experiment_exposures.c.user_id)

experiment_outcomes = Table(
    "experiment_outcomes",
    metadata,
    Column("experiment", String(64), primary_key=True),
    Column("tenant", String(64), primary_key=True),
    Column("user_id", String(256), primary_key=True),
    Column("type", String(16), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("first_ts", Float, nullable=False),
)

_WRITE_LOCKS: WeakKeyDictionary[Engine, threading.RLock] = WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction that first queues behind this process's other writers.

    SQLite admits one writer; the rest poll its busy handler with sleeps of up to
    100 ms and no fairness, so under a burst of interactions some waited seconds.
    A process lock hands the turn over in order and at once; the busy timeout is
    left for writers in other processes.
    """
    with _LOCKS_GUARD:
        lock = _WRITE_LOCKS.setdefault(engine, threading.RLock())
    with lock, engine.begin() as conn:
        yield conn


def open_sqlite(url: str) -> Engine:
    """Engine for a SQLite URL with WAL and foreign keys on, migrated to the newest schema.

    The schema comes from the Alembic revisions (`storage/migrations`), not from
    `metadata`: a new file gets every revision, an older data directory the ones it
    lacks, so both end up with the tables below.
    """
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # The pool must outnumber the request threads (anyio's 40 plus background work):
    # a write transaction may read through a second connection, and a pool that runs
    # dry while writers wait for SQLite's lock deadlocks until the pool timeout.
    engine = create_engine(
        url, connect_args={"timeout": 60}, pool_size=16, max_overflow=80, pool_timeout=60
    )
    event.listen(engine, "connect", _configure_connection)
    _while_locked(lambda: upgrade_database(engine))
    return engine


# SQLite answers "database is locked" at once, without its busy handler, where waiting
# could deadlock: switching a brand-new file to WAL while another opener holds a lock
# on it. Openers racing on a new data directory retry for this long.
LOCKED_RETRY_S = 60.0


def _while_locked(step: Callable[[], None]) -> None:
    deadline = time.monotonic() + LOCKED_RETRY_S
    while True:
        try:
            step()
            return
        except (sqlite3.OperationalError, OperationalError) as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _configure_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=60000")

    def wal() -> None:
        cursor.execute("PRAGMA journal_mode=WAL")

    _while_locked(wal)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
