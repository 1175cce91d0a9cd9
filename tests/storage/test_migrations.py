"""Alembic migrations: a real pre-Alembic data directory, empty SQLite and PostgreSQL.

The fixture under tests/fixtures/legacy-24dcd78 was written by the code of commit 24dcd78
(see its README): opening it with today's code must migrate it in place without losing
a row, and every migrated database must match `sql_schema.metadata`, which is what the
queries are written against.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from metamedia.domain import SearchRequest
from metamedia.engine.payload import maturity_level
from metamedia.storage.sql_migrate import (
    HEAD_REVISION,
    alembic_config,
    current_revision,
    head_revision,
    upgrade_database,
)
from metamedia.storage.sql_schema import metadata, open_sqlite

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy-24dcd78" / "catalog.sqlite3.gz"

# Minted by `metamedia keys create` at 24dcd78 for the fixture only (see its README).
TENANT_KEY = "mm_5263353a_vhY0vNKZzGwZhB3qaC79rHAW0kr5YZlWbqbs3VlYv6g"
PLATFORM_KEY = "mm_de007be0_veXy_WSwq7IrFxQMAiBq2Vw-x32sQDA6URCgv5GWLbQ"

# What 24dcd78's `open_sqlite` made: its tables and the FTS5 table with its shadow tables.
LEGACY_TABLES = {
    "api_keys",
    "audit_log",
    "embeddings",
    "experiment_exposures",
    "experiment_outcomes",
    "favorites",
    "feature_definitions",
    "interactions",
    "media",
    "media_fts",
    "media_genre",
    "media_platform",
    "media_viewer",
    "media_year",
    "meta",
    "outbox",
    "user_vectors",
    "users",
}


def legacy_copy(directory: Path) -> Path:
    """A fresh copy of the 24dcd78 database as `directory/catalog.sqlite3`."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "catalog.sqlite3"
    with gzip.open(FIXTURE) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
    return target


def row_counts(path: Path) -> dict[str, int]:
    """Rows per table, SQLite's own bookkeeping tables aside."""
    with sqlite3.connect(path) as conn:
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def _ignore_non_model(name: str | None, type_: str, _parents: Any) -> bool:
    """Compare only what `metadata` models: not the full-text tables (FTS5 on SQLite,
    media_text on PostgreSQL), SQLite's own or Alembic's."""
    if type_ == "table" and name is not None:
        return not (
            name.startswith("media_fts")
            or name.startswith("sqlite_")
            or name in ("alembic_version", "media_text")
        )
    return True


def schema_diff(engine: Engine) -> list[Any]:
    """Alembic's autogenerate differences between the database and `metadata`."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": _ignore_non_model,
            },
        )
        diff: list[Any] = compare_metadata(context, metadata)
        return diff


def test_the_legacy_data_dir_is_migrated_in_place(tmp_path: Path, make_runtime: Any) -> None:
    data_dir = tmp_path / "data"
    path = legacy_copy(data_dir)
    before = row_counts(path)
    assert set(before) >= LEGACY_TABLES and before["media"] == 170 and before["users"] == 2
    with sqlite3.connect(path) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(media)")}
        assert "maturity_level" not in columns  # really made before the column existed

    runtime = make_runtime(data_dir)

    after = row_counts(path)
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) == {"alembic_version"}
    engine = create_engine(f"sqlite:///{path}")
    assert current_revision(engine) == head_revision()
    assert schema_diff(engine) == []
    engine.dispose()

    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT doc, maturity_level FROM media").fetchall()
    expected = [maturity_level(json.loads(doc).get("maturity_rating")) for doc, _ in rows]
    assert [level for _, level in rows] == expected
    assert all(level >= 0 for level in expected)  # every demo item has a known rating

    tenant = runtime.keys.verify(TENANT_KEY)
    assert tenant is not None and tenant.tenant == "default"
    assert tenant.allows("write") and not tenant.allows("admin")
    platform = runtime.keys.verify(PLATFORM_KEY)
    assert platform is not None and platform.platform and platform.allows("admin")

    item = runtime.catalog.get("mm-0001")
    assert item.title == "The Whispering Rooms of Ashgrove Manor"
    found = runtime.search.search(SearchRequest(query="haunted manor on the moors", limit=5))
    assert "mm-0001" in [hit.id for hit in found.results]
    assert [f["item"] for f in runtime.users.favorites("default", "alice")] == ["mm-0003"]


def test_opening_a_migrated_database_again_writes_nothing(tmp_path: Path) -> None:
    path = legacy_copy(tmp_path)
    url = f"sqlite:///{path}"
    engine = open_sqlite(url)
    engine.dispose()  # the last connection out checkpoints the WAL into the file
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    engine = open_sqlite(url)
    assert current_revision(engine) == head_revision()
    engine.dispose()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_concurrent_openers_of_a_new_file_migrate_it_once(tmp_path: Path) -> None:
    """Each opener has its own engine and connection, as separate processes would."""
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    openers = 4
    barrier = threading.Barrier(openers)
    errors: list[BaseException] = []
    engines: list[Engine] = []

    def open_it() -> None:
        barrier.wait()
        try:
            engines.append(open_sqlite(url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert schema_diff(engines[0]) == []
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(text("SELECT value FROM meta")).scalars().all() == ["1"]
    for engine in engines:
        engine.dispose()


def test_an_older_data_dir_gains_the_tables_and_columns_it_lacks(tmp_path: Path) -> None:
    """Before tenant-bound keys and experiments: no api_keys.tenant, no later tables."""
    path = legacy_copy(tmp_path)
    dropped = ("media_year", "feature_definitions", "experiment_exposures", "experiment_outcomes")
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE api_keys DROP COLUMN tenant")
        for name in dropped:
            conn.execute(f"DROP TABLE {name}")
    engine = open_sqlite(f"sqlite:///{path}")
    assert schema_diff(engine) == []
    with engine.connect() as conn:
        # Keys from before the column stay platform keys: accepted for every tenant.
        assert conn.execute(text("SELECT tenant FROM api_keys")).all() == [(None,), (None,)]
        assert conn.execute(text("SELECT count(*) FROM media")).scalar() == 170
    engine.dispose()


def test_a_data_dir_that_already_has_maturity_level_keeps_its_values(tmp_path: Path) -> None:
    """Opened by the code between the column's arrival and Alembic: column present, no stamp."""
    path = legacy_copy(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE media ADD COLUMN maturity_level INTEGER NOT NULL DEFAULT -1")
        conn.execute("UPDATE media SET maturity_level = 2")
    engine = open_sqlite(f"sqlite:///{path}")
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        levels = conn.execute(text("SELECT DISTINCT maturity_level FROM media")).scalars().all()
    assert levels == [2]
    engine.dispose()


def test_an_empty_sqlite_database_upgraded_to_head_matches_the_metadata(tmp_path: Path) -> None:
    engine = open_sqlite(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    assert current_revision(engine) == head_revision()
    assert schema_diff(engine) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM media_fts")).scalar() == 0
        assert conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar()
    engine.dispose()


def test_an_empty_postgresql_database_upgraded_to_head_matches_the_metadata(
    postgres_url: str,
) -> None:
    engine = create_engine(postgres_url)
    try:
        upgrade_database(engine)
        assert current_revision(engine) == head_revision()
        assert schema_diff(engine) == []
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
            found = set(tables)
            assert "media_text" in found  # PostgreSQL's full text (0003), not FTS5
            assert not [t for t in found if "fts" in t]
        upgrade_database(engine)  # at head: nothing to do
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_concurrent_upgrades_of_one_postgresql_database_migrate_it_once(
    postgres_url: str,
) -> None:
    """The advisory lock makes the others wait, then find the database at head."""
    openers = 3
    engines = [create_engine(postgres_url) for _ in range(openers)]
    barrier = threading.Barrier(openers)
    errors: list[BaseException] = []

    def upgrade(engine: Engine) -> None:
        barrier.wait()
        try:
            upgrade_database(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(e,)) for e in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert current_revision(engines[0]) == head_revision()
        assert schema_diff(engines[0]) == []
    finally:
        for engine in engines:
            engine.dispose()


def test_the_maturity_backfill_reads_the_json_doc_on_postgresql(postgres_url: str) -> None:
    """Rows written at the baseline get their level from `doc` when 0002 runs."""
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001_baseline")
            for pk, rating in ((1, "R"), (2, "TV-Y"), (3, None), (4, "no such rating")):
                doc = json.dumps({"id": f"m{pk}", "maturity_rating": rating})
                conn.execute(
                    text(
                        "INSERT INTO media (pk, tenant, external_id, type, title, visibility,"
                        " popularity, content_hash, row_hash, doc, created_at, updated_at)"
                        " VALUES (:pk, 'default', :ext, 'movie', 't', 'public', 0, 'c', 'r',"
                        " :doc, 0, 0)"
                    ),
                    {"pk": pk, "ext": f"m{pk}", "doc": doc},
                )
        assert current_revision(engine) == "0001_baseline"
        upgrade_database(engine)
        with engine.connect() as conn:
            levels: dict[int, int] = dict(
                conn.execute(text("SELECT pk, maturity_level FROM media")).all()
            )
        assert levels == {1: maturity_level("R"), 2: maturity_level("TV-Y"), 3: -1, 4: -1}
        assert levels[1] > levels[2] >= 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("revision", ["0001_baseline", "base"])
def test_downgrades_run_on_sqlite(tmp_path: Path, revision: str) -> None:
    """The downgrade paths work, so a bad release can step back one revision."""
    engine = open_sqlite(f"sqlite:///{tmp_path / 'down.sqlite3'}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), revision)
    assert current_revision(engine) == (None if revision == "base" else revision)
    upgrade_database(engine)
    assert schema_diff(engine) == []
    engine.dispose()


def test_the_head_revision_constant_names_the_newest_script() -> None:
    """Opening a database at HEAD_REVISION skips Alembic entirely, so the constant
    must move with every new revision."""
    assert head_revision() == HEAD_REVISION
