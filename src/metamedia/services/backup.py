"""`metamedia backup` and `metamedia restore`: a consistent snapshot of a deployment, and back.

A deployment is its relational store plus its data directory (vector index
files, trained models, the signing key of user tokens and sessions). The data
directory's files are copied first and the database last: index files record
the outbox position they reflect, so an index older than the database is caught
up from the outbox on start, while one newer than the database could hold items
the database does not.

Restores are all or nothing: every checksum is verified before anything is
touched, the files are staged beside the target, and the database is loaded
either into the staged directory (SQLite) or in one transaction (PostgreSQL)
before or while the staged directory is swapped in, undone on failure.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from metamedia.config import Settings
from metamedia.storage.open import open_backup, redact_url
from metamedia.storage.snapshot import (
    DATABASE,
    BackupError,
    Manifest,
    copy_data_files,
    entry_for,
    finish_folder,
    is_within,
    known_revision,
    restore_data_files,
    stage_beside,
    start_folder,
    swap_in,
    verify,
)

__all__ = ["BackupError", "BackupReport", "RestoreReport", "create_backup", "restore_backup"]


@dataclass(frozen=True)
class BackupReport:
    path: Path
    manifest: Manifest


@dataclass(frozen=True)
class RestoreReport:
    path: Path
    manifest: Manifest
    data_dir: Path
    database: str  # redacted URL
    replaced: bool  # the target held data (restored with --force)
    seconds: float


def create_backup(settings: Settings, dest: Path, *, app_version: str) -> BackupReport:
    """Write a complete backup of `settings`' deployment to the new folder `dest`."""
    started = time.perf_counter()
    data_dir = settings.data_dir.resolve()
    dest = dest.resolve()
    if is_within(dest, data_dir):
        raise BackupError(
            f"{dest} is inside the data directory {data_dir}: the next backup would copy it "
            "and losing the directory would lose it too; back up somewhere else"
        )
    database = open_backup(settings.resolved_database_url)
    staging = start_folder(dest)
    try:
        files = copy_data_files(data_dir, staging, database.live_files)
        dump = database.dump(staging / DATABASE)
        files += [entry_for(staging, staging / DATABASE / name) for name in dump.files]
        manifest = Manifest(
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            app_version=app_version,
            source={
                "data_dir": str(data_dir),
                "database": redact_url(settings.resolved_database_url),
            },
            database=dump,
            files=tuple(files),
            seconds=round(time.perf_counter() - started, 3),
        )
        finish_folder(staging, dest, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BackupReport(dest, manifest)


def check_backup(src: Path) -> Manifest:
    """Verify a backup without restoring it: every file against its checksum."""
    return verify(src.resolve())


def restore_backup(settings: Settings, src: Path, *, force: bool = False) -> RestoreReport:
    """Restore the backup at `src` into `settings`' data directory and database.

    Refuses a target that holds data unless `force`, naming what it holds.
    Servers on the target must be stopped first (a PostgreSQL restore refuses
    while other sessions are connected).
    """
    started = time.perf_counter()
    src = src.resolve()
    manifest = verify(src)
    database = open_backup(settings.resolved_database_url)
    dump = manifest.database
    if dump.kind != database.kind:
        raise BackupError(
            f"{src} holds a {dump.kind} store, but the target is {database.kind} "
            f"({redact_url(settings.resolved_database_url)}): restore it into a {dump.kind} "
            "deployment (then `metamedia migrate-store` moves an embedded store to PostgreSQL)"
        )
    if not known_revision(dump.schema_revision):
        raise BackupError(
            f"{src} has schema revision {dump.schema_revision}, which this release "
            f"({manifest.app_version} made the backup) does not know: restore it with that "
            "release or a newer one"
        )
    data_dir = settings.data_dir.resolve()
    if is_within(data_dir, src) or is_within(src, data_dir):
        raise BackupError(f"the backup {src} and the data directory {data_dir} overlap")
    occupied = _occupied(data_dir, database.existing_contents())
    if occupied and not force:
        raise BackupError(
            f"the target is not empty: {'; '.join(occupied)}. Restoring replaces it: pass "
            "--force to do that (stop its servers first)"
        )
    live = database.live_files[0] if database.live_files else None
    inside = live is not None and is_within(live, data_dir)
    staged = stage_beside(data_dir)
    try:
        restore_data_files(manifest, src, staged)
        if inside and live is not None:
            database.restore(
                src / DATABASE, dump, into=staged / live.resolve().relative_to(data_dir)
            )
            swap_in(staged, data_dir).discard()
        else:
            swap = swap_in(staged, data_dir)
            try:
                database.restore(src / DATABASE, dump)
            except BaseException:
                swap.undo()
                raise
            swap.discard()
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    return RestoreReport(
        src,
        manifest,
        data_dir,
        redact_url(settings.resolved_database_url),
        replaced=bool(occupied),
        seconds=round(time.perf_counter() - started, 3),
    )


def _occupied(data_dir: Path, database: str | None) -> list[str]:
    held = []
    if data_dir.is_dir():
        entries = sorted(p.name for p in data_dir.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            held.append(f"the data directory {data_dir} holds {len(entries)} entries ({shown})")
    elif data_dir.exists():
        raise BackupError(f"{data_dir} is a file, not a data directory")
    if database is not None:
        held.append(f"the database holds data: {database}")
    return held
