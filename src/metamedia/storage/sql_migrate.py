"""Brings a relational store's schema up to date with Alembic, SQLite and PostgreSQL alike.

Every backend calls `upgrade_database(engine)` when it opens a database, so a data
directory from any older version is migrated in place and a new one gets the whole
schema from the same revisions (`storage/migrations`). Three cases, one code path:

* empty database: every revision runs, starting with the baseline;
* database made before Alembic (tables, no `alembic_version`): the baseline revision
  completes it to the 24dcd78 schema (missing tables, `api_keys.tenant`) without
  touching its rows, is stamped, and the later revisions run;
* Alembic-managed database: the revisions it lacks run (none: nothing is written).

Two processes may open one database at once (a server and a CLI command, several
workers). Only one may migrate: SQLite's write lock (BEGIN IMMEDIATE) or a PostgreSQL
transaction-level advisory lock is taken before the revision is read, and held until the
last revision commits; the other process then finds the database at head.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from metamedia.storage.migrations import SCRIPT_LOCATION

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision in `storage/migrations/versions` (a test holds the two equal). A
# database stamped with it is opened without importing Alembic at all, which would
# cost every serving process ~10 MB of modules (Alembic and Mako) it never uses.
HEAD_REVISION = "0005_vector_attributes"

# pg_advisory_xact_lock key: any constant the application uses for nothing else.
PG_MIGRATION_LOCK = 0x6D6D_6D69_6772  # "mmmigr"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged revisions; `connection` is what env.py runs on."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision of the packaged scripts, as Alembic reads them."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # only if the versions folder were empty
        raise RuntimeError(f"no migration revisions in {SCRIPT_LOCATION}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision stamped in the database (None: empty or made before Alembic)."""
    with engine.connect() as conn:
        return _stamped(conn)


def _stamped(conn: Connection) -> str | None:
    """The revision in `alembic_version`, read with plain SQL (None: no such table)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    version: str | None = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return version


def upgrade_database(engine: Engine) -> None:
    """Migrate the database behind `engine` to the newest revision, holding a lock.

    Safe to call on every open: at head it only reads the version under the lock.
    """
    if engine.dialect.name == "sqlite":
        _upgrade_sqlite(engine)
    elif engine.dialect.name == "postgresql":
        _upgrade_postgresql(engine)
    else:
        raise ValueError(f"no migrations for the {engine.dialect.name!r} dialect")


def _upgrade_sqlite(engine: Engine) -> None:
    """All revisions in one BEGIN IMMEDIATE transaction.

    pysqlite opens its own transactions only before DML and never with IMMEDIATE, so the
    DB-API connection is switched to manual transactions for this one: BEGIN IMMEDIATE
    takes the write lock before anything is read (a second opener waits in the busy
    handler, then sees head), and DDL and backfill commit or roll back together.
    """
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        if not isinstance(dbapi, sqlite3.Connection):
            raise TypeError(f"expected a sqlite3 connection, got {type(dbapi).__name__}")
        saved = dbapi.isolation_level
        dbapi.isolation_level = None
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                _upgrade(conn)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                conn.rollback()
                raise
            conn.exec_driver_sql("COMMIT")
            conn.commit()
        finally:
            dbapi.isolation_level = saved


def _upgrade_postgresql(engine: Engine) -> None:
    """All revisions in one transaction (PostgreSQL DDL is transactional) under an
    advisory lock that the commit releases."""
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
        _upgrade(conn)


def _upgrade(conn: Connection) -> None:
    """Run the missing revisions on `conn`, inside the caller's transaction."""
    if _stamped(conn) == HEAD_REVISION:
        return
    from alembic import command

    command.upgrade(alembic_config(conn), "head")
