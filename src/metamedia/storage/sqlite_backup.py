"""Backups of the embedded store: SQLite's online-backup API, and restoring the file.

`sqlite3.Connection.backup` with `pages=-1` copies the whole database in one
step under one read transaction: in WAL mode writers keep committing while it
runs, and the copy is the database as of that transaction's start, never a torn
mix. The source is opened read-write without create and is never migrated or
written, so backing up an older data directory leaves it as it was.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

from sqlalchemy.engine import make_url

from metamedia.errors import InvalidRequestError
from metamedia.storage.records import DatabaseDump
from metamedia.storage.snapshot import BackupError, default_mode

KIND = "sqlite"
FILE = "catalog.sqlite3"
SIDECARS = ("-wal", "-shm", "-journal")
BUSY_TIMEOUT_S = 60


def sqlite_path(url: str) -> Path:
    """The database file of a `sqlite:///PATH` URL; in-memory databases have none."""
    database = make_url(url).database
    if not database or database == ":memory:":
        raise InvalidRequestError(f"{url}: an in-memory SQLite database cannot be backed up")
    return Path(database)


def table_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows in every table (FTS5 shadow tables included), read in one transaction."""
    names = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
    return {
        name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in names
    }


def schema_revision(conn: sqlite3.Connection) -> str | None:
    present = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    if not present:
        return None
    row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(row[0]) if row else None


class SQLiteBackup:
    """The backup role for a SQLite file."""

    kind = KIND

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        self.live_files = (self.path, *(self.path.with_name(self.path.name + s) for s in SIDECARS))

    def dump(self, folder: Path) -> DatabaseDump:
        if not self.path.is_file():
            raise BackupError(f"{self.path}: no database here: nothing to back up")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / FILE
        source = sqlite3.connect(
            f"file:{self.path}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
        )
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            source.backup(copy, pages=-1)
            # A self-contained file: no -wal beside it to lose. The restored store
            # switches back to WAL when the service opens it.
            copy.execute("PRAGMA journal_mode=DELETE")
            tables = table_counts(copy)
            revision = schema_revision(copy)
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{self.path}: SQLite backup failed: {exc}") from None
        finally:
            copy.close()
            source.close()
        with open(target, "rb+") as handle:
            os.fsync(handle.fileno())
        return DatabaseDump(KIND, (FILE,), revision, tables, {"sqlite": sqlite3.sqlite_version})

    def existing_contents(self) -> str | None:
        if not self.path.exists():
            return None
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
        try:
            tables = table_counts(conn)
        except sqlite3.DatabaseError as exc:
            return f"{self.path} (unreadable: {exc})"
        finally:
            conn.close()
        rows = sum(tables.values())
        if not tables:
            return None
        return f"{self.path} ({len(tables)} tables, {rows} rows)"

    def restore(self, folder: Path, dump: DatabaseDump, *, into: Path | None = None) -> None:
        """Copy the backed-up file to `into` (default: this store's file), atomically.

        The copy is written beside its destination, checked (integrity and row
        counts), then renamed over it. Replacing a live file in place first
        checkpoints the old WAL and removes it: a stale WAL left beside a new
        database file would be replayed into it.
        """
        if dump.kind != KIND:
            raise BackupError(f"a {dump.kind} backup cannot be restored into a SQLite store")
        destination = into or self.path
        destination.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=".metamedia-restore-", suffix=".sqlite3", dir=destination.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _copy_file(folder / dump.files[0], tmp)
            _check_copy(tmp, dump)
            # mkstemp makes 0600: keep the replaced file's mode, else a plain create's.
            mode = destination.stat().st_mode & 0o7777 if destination.exists() else None
            tmp.chmod(mode if mode is not None else default_mode(0o666))
            if destination.exists():
                _retire_wal(destination)
            os.replace(tmp, destination)
        finally:
            tmp.unlink(missing_ok=True)


def _copy_file(source: Path, target: Path) -> None:
    with open(source, "rb") as read, open(target, "wb") as write:
        while chunk := read.read(1 << 20):
            write.write(chunk)
        write.flush()
        os.fsync(write.fileno())


def _check_copy(path: Path, dump: DatabaseDump) -> None:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise BackupError(f"{path}: the restored database fails SQLite's check: {verdict}")
        counts = table_counts(conn)
    finally:
        conn.close()
    if counts != dump.tables:
        differ = sorted(
            k for k in set(counts) | set(dump.tables) if counts.get(k) != dump.tables.get(k)
        )
        raise BackupError(f"{path}: row counts differ from the manifest in {', '.join(differ)}")


def _retire_wal(path: Path) -> None:
    """Fold the live file's WAL into it and delete the journals; refuse a busy file."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5, isolation_level=None)
    try:
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    if busy:
        raise BackupError(f"{path} is in use: stop the servers using it before restoring")
    for suffix in SIDECARS:
        path.with_name(path.name + suffix).unlink(missing_ok=True)
