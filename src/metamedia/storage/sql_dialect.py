"""The few places where SQLite and PostgreSQL need different SQL, in one module.

The SQL stores (`sql_users`, `sql_experiments`, `sql_security`) build their
statements with SQLAlchemy Core and must give the same answers on either
database. Where Core has no neutral spelling (insert-or-ignore, upserts, the
two-argument max/min, reading a field of a JSON text column, how writers queue)
the difference lives here, chosen per connection or compiled per dialect, so a
store never tests the dialect itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Float, Select, Table
from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import GenericFunction

from metamedia.storage import sql_schema

SQLITE = "sqlite"


def conflict_insert(bind: Connection | Engine, table: Table) -> SQLiteInsert | PostgresInsert:
    """An INSERT that takes `on_conflict_do_nothing` / `on_conflict_do_update`.

    Both dialects spell the clause `ON CONFLICT (...) DO ...` with an `excluded`
    row, but SQLAlchemy keeps one construct per dialect; this picks the one the
    connection compiles. (SQLite's `INSERT OR IGNORE` also swallowed NOT NULL
    and CHECK failures; `ON CONFLICT DO NOTHING` only skips the duplicate key,
    which is all the stores meant.)
    """
    if bind.dialect.name == SQLITE:
        return sqlite_insert(table)
    return postgres_insert(table)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction, queued behind this process's other writers on SQLite only.

    SQLite admits one writer, and `sql_schema.write_transaction` hands its turn
    over in order (see there). PostgreSQL locks rows, not the database: queueing
    every writer of the process would only serialise independent requests, so
    there it is a plain transaction and the stores lock the rows they must
    (`lock_rows`).
    """
    if engine.dialect.name == SQLITE:
        with sql_schema.write_transaction(engine) as conn:
            yield conn
    else:
        with engine.begin() as conn:
            yield conn


def lock_rows(
    conn: Connection, statement: Select[Any], parameters: dict[str, Any] | None = None
) -> None:
    """Run `statement`, a SELECT ... FOR UPDATE, where the database locks rows.

    On SQLite the write transaction already holds the one write lock, so the
    read is skipped and SQLite does exactly what it did before.
    """
    if conn.dialect.name != SQLITE:
        conn.execute(statement, parameters).all()


class greatest(GenericFunction[float]):
    """The larger of two non-NULL values: `max(a, b)` on SQLite, `GREATEST` elsewhere."""

    type = Float()
    inherit_cache = True
    _register = False


class least(GenericFunction[float]):
    """The smaller of two non-NULL values: `min(a, b)` on SQLite, `LEAST` elsewhere."""

    type = Float()
    inherit_cache = True
    _register = False


@compiles(greatest, "sqlite")
def _greatest_sqlite(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max({compiler.process(element.clauses, **kw)})"


@compiles(least, "sqlite")
def _least_sqlite(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"min({compiler.process(element.clauses, **kw)})"


class json_field(GenericFunction[Any]):
    """`json_field(column, key)`: the value at top-level `key` of the JSON object held
    as text in `column`, still typed as JSON, so compare it with `json_string`.

    SQLite's `json_extract` keeps the JSON type (a number 5 never equals the text
    '5'); PostgreSQL compares `jsonb` values, which keeps the same distinction
    where `->>` (text) would not.
    """

    inherit_cache = True
    _register = False


class json_string(GenericFunction[Any]):
    """A string as `json_field` compares it: itself on SQLite, a `jsonb` string elsewhere."""

    inherit_cache = True
    _register = False


@compiles(json_field, "sqlite")
def _json_field_sqlite(element: json_field, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_extract({column}, '$.' || {key})"


@compiles(json_field, "postgresql")
def _json_field_postgres(element: json_field, compiler: SQLCompiler, **kw: Any) -> str:
    column, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({column} AS JSONB) -> CAST({key} AS TEXT))"


@compiles(json_string, "sqlite")
def _json_string_sqlite(element: json_string, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(json_string, "postgresql")
def _json_string_postgres(element: json_string, compiler: SQLCompiler, **kw: Any) -> str:
    return f"to_jsonb(CAST({compiler.process(element.clauses, **kw)} AS TEXT))"
