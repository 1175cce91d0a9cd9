"""`metamedia backup` / `metamedia restore`: the restore drill on both stores, backups
taken under a running writer, and refusals that leave the target untouched.

The drill is what an operator does: record what the service answers, back up
while it serves, lose the data directory (and the database), restore, and get
the very same answers from search, the feed and the user export.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metamedia.api.app import create_app
from metamedia.cli import app
from metamedia.config import Settings
from metamedia.services.runtime import Runtime
from metamedia.testing.postgres import PostgresServer
from tests.conftest import ADMIN_HEADERS, ADMIN_KEY

runner = CliRunner()
QUERIES = ("heist movie with a twist ending", "space station survival", "Ninth Vault, The")
USERS = ("ada", "rosa")
# Answer fields that describe the request, not the data: timings (`*_ms`), whether a
# cache answered, and feed cursors (a fresh opaque id per ranked list).
VOLATILE = {"cached", "next_cursor"}


def cli(*args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: stable(v) for k, v in value.items() if k not in VOLATILE and not k.endswith("_ms")
        }
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def answers(data_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Search, feed (CLI) and user export (REST) answers of a deployment, as JSON."""
    found = {
        q: stable(json.loads(cli("search", q, "--data-dir", str(data_dir), "--json", env=env)))
        for q in QUERIES
    }
    feeds = {
        u: stable(
            json.loads(cli("feed", "--user", u, "--data-dir", str(data_dir), "--json", env=env))
        )
        for u in USERS
    }
    settings = Settings(
        data_dir=data_dir,
        database_url=env.get("METAMEDIA_DATABASE_URL"),
        admin_key=ADMIN_KEY,
        memory_limit_mb=0,
    )
    with TestClient(create_app(settings), headers=dict(ADMIN_HEADERS)) as client:
        exports = {u: client.get(f"/v1/users/{u}/export").json() for u in USERS}
    return {"search": found, "feed": feeds, "export": exports}


def add_history(data_dir: Path, env: dict[str, str], embedder: Any) -> None:
    """Users with interactions and preferences, so feeds and exports hold real data."""
    settings = Settings(data_dir=data_dir, database_url=env.get("METAMEDIA_DATABASE_URL"))
    runtime = Runtime.open(settings, embedder=embedder)
    try:
        for user, items in (("ada", ["mm-0063", "mm-0001"]), ("rosa", ["mm-0002"])):
            events = [{"item": i, "type": "like"} for i in items]
            results = runtime.users.record("default", user, events, create_user=True)
            assert all(r.status == "recorded" for r in results), results
    finally:
        runtime.close()


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def embedded(demo_data_dir: Path, tmp_path: Path, embedder: Any) -> tuple[Path, dict[str, str]]:
    data_dir = tmp_path / "data"
    shutil.copytree(demo_data_dir, data_dir)
    add_history(data_dir, {}, embedder)
    return data_dir, {}


@pytest.fixture()
def on_postgres(
    demo_data_dir: Path, tmp_path: Path, postgres_url: str, embedder: Any
) -> tuple[Path, dict[str, str]]:
    """The demo catalog moved into PostgreSQL; the data dir keeps only its index files."""
    data_dir = tmp_path / "data"
    shutil.copytree(demo_data_dir, data_dir)
    cli("migrate-store", "--to", postgres_url, "--data-dir", str(data_dir), "--json")
    for stale in data_dir.glob("catalog.sqlite3*"):
        stale.unlink()
    env = {"METAMEDIA_DATABASE_URL": postgres_url}
    add_history(data_dir, env, embedder)
    return data_dir, env


def serving(data_dir: Path, env: dict[str, str]) -> TestClient:
    """The app with its runtime open on the deployment (what a backup runs beside)."""
    settings = Settings(
        data_dir=data_dir, database_url=env.get("METAMEDIA_DATABASE_URL"), memory_limit_mb=0
    )
    return TestClient(create_app(settings))


def test_restore_drill_on_the_embedded_store(
    embedded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    data_dir, env = embedded
    before = answers(data_dir, env)
    assert before["export"]["ada"]["interactions"] and before["feed"]["ada"]["items"]
    backup = tmp_path / "backup"
    with serving(data_dir, env) as client:
        assert client.get("/healthz").status_code == 200
        summary = json.loads(cli("backup", str(backup), "--data-dir", str(data_dir), "--json"))
        assert client.get("/v1/search", params={"q": "lighthouse"}).status_code == 200
    assert summary["store"] == "sqlite" and summary["items"] == 170
    manifest = json.loads((backup / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert {"database/catalog.sqlite3", "data/index/vectors.npz"} <= paths
    assert not any("-wal" in p or "-shm" in p or "data/catalog.sqlite3" in p for p in paths)
    assert manifest["database"]["schema_revision"] and manifest["app_version"]
    assert manifest["database"]["tables"]["interactions"] == 3

    shutil.rmtree(data_dir)
    restored = json.loads(cli("restore", str(backup), "--data-dir", str(data_dir), "--json"))
    assert restored["items"] == 170 and restored["replaced"] is False
    assert answers(data_dir, env) == before
    check = json.loads(cli("index", "check", "--data-dir", str(data_dir), "--json"))
    assert check["healthy"] is True


def test_restore_drill_on_postgresql(
    on_postgres: tuple[Path, dict[str, str]],
    tmp_path: Path,
    postgres_server: PostgresServer,
    postgres_url: str,
) -> None:
    data_dir, env = on_postgres
    before = answers(data_dir, env)
    assert before["export"]["rosa"]["interactions"] and before["feed"]["rosa"]["items"]
    backup = tmp_path / "backup"
    with serving(data_dir, env) as client:
        summary = json.loads(
            cli("backup", str(backup), "--data-dir", str(data_dir), "--json", env=env)
        )
        assert client.get("/healthz").status_code == 200
    assert summary["store"] == "postgresql" and summary["items"] == 170
    manifest = json.loads((backup / "manifest.json").read_text())
    assert "database/metamedia.dump" in {f["path"] for f in manifest["files"]}
    assert set(manifest["database"]["details"]["extensions"]) >= {"vector", "unaccent"}

    # The database still holds everything: a restore over it needs --force.
    refused = cli("restore", str(backup), "--data-dir", str(tmp_path / "new"), env=env, code=2)
    assert "not empty" in refused and "catalog items" in refused and "--force" in refused

    shutil.rmtree(data_dir)
    name = postgres_url.rsplit("/", 1)[1]
    assert postgres_server.create_database(name) == postgres_url  # dropped and made anew
    restored = json.loads(
        cli("restore", str(backup), "--data-dir", str(data_dir), "--json", env=env)
    )
    assert restored["items"] == 170 and restored["store"] == "postgresql"
    assert answers(data_dir, env) == before


WRITER = """
import sys
from pathlib import Path
from metamedia.domain import MediaItem
from metamedia.storage.open import open_stores

stores = open_stores(sys.argv[1])
stop = Path(sys.argv[2])
batch = 0
while not stop.exists():
    items = [MediaItem(id=f"w-{batch}-{j}", title=f"Written {batch} {j}") for j in range(7)]
    stores.catalog.write_batch(items, {}, "none")  # one transaction of 7 items
    batch += 1
    print(batch, flush=True)
stores.close()
"""


@pytest.fixture()
def writer_target(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Path, dict[str, str], str]]:
    """An empty deployment of either kind, and the URL a writer process writes to."""
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        yield data_dir, {}, f"sqlite:///{data_dir / 'catalog.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        yield data_dir, {"METAMEDIA_DATABASE_URL": url}, url


def count_rows(url: str, table: str) -> int:
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as pg:
        row = pg.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize("writer_target", ["sqlite", "postgresql"], indirect=True)
def test_backup_under_a_running_writer_is_one_consistent_snapshot(
    writer_target: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    data_dir, env, url = writer_target
    data_dir.mkdir()
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        for _ in range(3):  # the writer is under way before the backup starts
            assert writer.stdout.readline(), writer.stderr.read() if writer.stderr else ""
        backup = tmp_path / "backup"
        cli("backup", str(backup), "--data-dir", str(data_dir), env=env)
        for _ in range(3):  # and still writing after it
            assert writer.stdout.readline(), writer.stderr.read() if writer.stderr else ""
    finally:
        stop.touch()
        _out, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    tables = json.loads((backup / "manifest.json").read_text())["database"]["tables"]
    written = count_rows(url, "media")
    # Whole transactions only, and neither the start nor the end of the writing.
    assert tables["media"] % 7 == 0 and tables["outbox"] == tables["media"]
    assert 0 < tables["media"] < written

    target = tmp_path / "restored"
    if env:
        shutil.rmtree(data_dir)
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as pg:
            pg.execute("DROP TABLE IF EXISTS media CASCADE")  # something to replace
        cli("restore", str(backup), "--data-dir", str(target), "--force", env=env)
    else:
        cli("restore", str(backup), "--data-dir", str(target))
        url = f"sqlite:///{target / 'catalog.sqlite3'}"
    assert count_rows(url, "media") == tables["media"]
    assert count_rows(url, "outbox") == tables["outbox"]


def test_tampered_or_partial_backup_is_refused_and_the_target_untouched(
    embedded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    data_dir, _ = embedded
    backup = tmp_path / "backup"
    cli("backup", str(backup), "--data-dir", str(data_dir))
    untouched = tree_digest(data_dir)

    index = backup / "data" / "index" / "vectors.npz"
    body = bytearray(index.read_bytes())
    body[len(body) // 2] ^= 0xFF
    index.write_bytes(bytes(body))
    out = cli("restore", str(backup), "--data-dir", str(data_dir), "--force", code=2)
    assert "vectors.npz" in out and "checksum mismatch" in out
    assert tree_digest(data_dir) == untouched
    empty = tmp_path / "empty"
    cli("restore", str(backup), "--data-dir", str(empty), code=2)
    assert not empty.exists()

    index.write_bytes(bytes(body[:-100]))  # truncated
    out = cli("restore", str(backup), "--data-dir", str(data_dir), "--force", code=2)
    assert "vectors.npz" in out and "bytes" in out

    again = tmp_path / "again"
    cli("backup", str(again), "--data-dir", str(data_dir))
    (again / "database" / "catalog.sqlite3").unlink()
    out = cli("restore", str(again), "--data-dir", str(data_dir), "--force", code=2)
    assert "catalog.sqlite3" in out and "missing" in out
    (again / "manifest.json").unlink()
    out = cli("restore", str(again), "--data-dir", str(data_dir), "--force", code=2)
    assert "manifest.json" in out and "incomplete" in out
    assert tree_digest(data_dir) == untouched


def test_restore_into_a_non_empty_target_needs_force(
    embedded: tuple[Path, dict[str, str]], tmp_path: Path, embedder: Any
) -> None:
    data_dir, _ = embedded
    backup = tmp_path / "backup"
    cli("backup", str(backup), "--data-dir", str(data_dir))
    runtime = Runtime.open(Settings(data_dir=data_dir), embedder=embedder)
    try:
        runtime.ingest.ingest_path(_one_item(tmp_path / "late.jsonl"), "jsonl")  # after it
        assert runtime.repo.count() == 171
    finally:
        runtime.close()

    out = cli("restore", str(backup), "--data-dir", str(data_dir), code=2)
    assert "not empty" in out and str(data_dir) in out and "--force" in out
    cli("restore", str(backup), "--data-dir", str(data_dir), "--force")
    assert count_rows(f"sqlite:///{data_dir / 'catalog.sqlite3'}", "media") == 170
    assert not list(tmp_path.glob(".metamedia-*")), "staging or aside folders left behind"

    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    out = cli("backup", str(full), "--data-dir", str(data_dir), code=2)
    assert "not empty" in out
    out = cli("backup", str(data_dir / "inside"), "--data-dir", str(data_dir), code=2)
    assert "inside the data directory" in out


def _one_item(path: Path) -> Path:
    path.write_text(json.dumps({"id": "late-1", "title": "A Late Arrival"}) + "\n")
    return path


def test_a_manifest_that_points_outside_the_backup_or_miscounts_is_refused(
    embedded: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    data_dir, _ = embedded
    backup = tmp_path / "backup"
    cli("backup", str(backup), "--data-dir", str(data_dir))
    manifest = json.loads((backup / "manifest.json").read_text())
    target = tmp_path / "target"
    for change, message in (
        (lambda m: m["files"][0].update(path="../../etc/passwd"), "leaves the backup"),
        (lambda m: m["database"]["tables"].update(media="many"), "row counts"),
        (lambda m: m.update(format="metamedia-backup/99"), "newer release"),
        (lambda m: m["database"].update(schema_revision="9999_future"), "does not know"),
        (lambda m: m["database"].update(kind="postgresql"), "holds a postgresql store"),
    ):
        lying = json.loads(json.dumps(manifest))
        change(lying)
        (backup / "manifest.json").write_text(json.dumps(lying))
        out = cli("restore", str(backup), "--data-dir", str(target), code=2)
        assert message in out, out
        assert not target.exists()
