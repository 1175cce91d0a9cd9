"""The backup folder: its layout, manifest and checksums, and swapping a restore in.

A backup is one folder:

    manifest.json           what is inside, with a sha256 and size per file
    data/...                the data directory's own files (index, models, signing key)
    database/...            the relational store's snapshot (SQLite file or pg_dump archive)

It is written under a temporary sibling name and renamed into place last, so a
folder with a manifest is complete; one without is a partial backup and is
refused. A restore checks every file against the manifest before it touches
anything, copies into a staged directory (checking each copy again), and swaps
that in with renames, so a failure at any step leaves the target as it was.

No backend is named here: the database part goes through the `DatabaseBackup`
role that `storage.open.open_backup` picks by URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metamedia.errors import MetaMediaError
from metamedia.storage.records import DatabaseDump
from metamedia.storage.sql_migrate import alembic_config

FORMAT = "metamedia-backup/1"
MANIFEST = "manifest.json"
DATA = "data"
DATABASE = "database"
# Our own temporary folders (a backup or restore in progress) and files written
# under a temporary name before an atomic rename: never part of a backup.
OWN_PREFIX = ".metamedia-"
CHUNK = 1 << 20


class BackupError(MetaMediaError):
    """A backup cannot be written or restored; the message names the file and why."""

    status_code = 422


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the backup folder, with "/" separators
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    created_at: str
    app_version: str
    source: dict[str, str]  # data directory and (redacted) database URL backed up
    database: DatabaseDump
    files: tuple[FileEntry, ...]
    seconds: float
    format: str = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.files)

    def data_entries(self) -> list[FileEntry]:
        return [e for e in self.files if e.path.startswith(f"{DATA}/")]

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["database"]["files"] = list(self.database.files)
        document["files"] = [asdict(entry) for entry in self.files]
        return document

    @classmethod
    def from_json(cls, document: Any, where: Path) -> Manifest:
        """Parse a manifest, naming the first missing or mistyped field."""

        def need(obj: Any, key: str, kind: type | tuple[type, ...], path: str) -> Any:
            if not isinstance(obj, dict) or key not in obj:
                raise BackupError(f"{where}: the manifest lacks {path}{key}")
            value = obj[key]
            if not isinstance(value, kind):
                raise BackupError(f"{where}: {path}{key} has the wrong type")
            return value

        if need(document, "format", str, "") != FORMAT:
            raise BackupError(
                f"{where}: format {document['format']!r} is not {FORMAT!r}: "
                "made by another program or a newer release"
            )
        db = need(document, "database", dict, "")
        revision = db.get("schema_revision")
        dump = DatabaseDump(
            kind=need(db, "kind", str, "database."),
            files=tuple(str(f) for f in need(db, "files", list, "database.")),
            schema_revision=revision if isinstance(revision, str) else None,
            tables=_counts(need(db, "tables", dict, "database."), where),
            details=dict(need(db, "details", dict, "database.")),
        )
        files = []
        for i, raw in enumerate(need(document, "files", list, "")):
            files.append(
                FileEntry(
                    path=need(raw, "path", str, f"files[{i}]."),
                    bytes=need(raw, "bytes", int, f"files[{i}]."),
                    sha256=need(raw, "sha256", str, f"files[{i}]."),
                )
            )
        return cls(
            created_at=need(document, "created_at", str, ""),
            app_version=need(document, "app_version", str, ""),
            source={str(k): str(v) for k, v in need(document, "source", dict, "").items()},
            database=dump,
            files=tuple(files),
            seconds=float(need(document, "seconds", (int, float), "")),
            extra=dict(document.get("extra") or {}),
        )


def _counts(raw: dict[Any, Any], where: Path) -> dict[str, int]:
    if not all(isinstance(v, int) and v >= 0 for v in raw.values()):
        raise BackupError(f"{where}: database.tables must map table names to row counts")
    return {str(k): int(v) for k, v in raw.items()}


# -- writing ---------------------------------------------------------------------------


def is_within(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def start_folder(dest: Path) -> Path:
    """A fresh temporary folder beside `dest`, which must not exist or be empty.

    Refusing a non-empty destination keeps one backup per folder: a manifest
    can then never describe files that another backup left there.
    """
    if dest.exists() and not is_empty_dir(dest):
        raise BackupError(f"{dest} already exists and is not empty: back up into a new folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{OWN_PREFIX}backup-", dir=dest.parent))


def finish_folder(staging: Path, dest: Path, manifest: Manifest) -> None:
    """Write the manifest last, make it durable, and rename the folder into place."""
    path = staging / MANIFEST
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(manifest.to_json(), handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_tree(staging)
    if dest.exists():
        dest.rmdir()  # checked empty in start_folder
    os.rename(staging, dest)
    _fsync_dir(dest.parent)


def data_files(data_dir: Path, skip: Iterable[Path]) -> list[Path]:
    """Every regular file under `data_dir` that belongs in a backup, sorted.

    Left out: the live database files (the role's dump copies them consistently),
    files being written under a temporary name (`*.tmp*`), our own temporary
    folders, and links (a backup holds what the directory holds, not what it
    points to).
    """
    skipped = {p.resolve() for p in skip}
    found: list[Path] = []
    if not data_dir.is_dir():
        return found
    for root, dirs, names in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith(OWN_PREFIX))
        for name in sorted(names):
            path = Path(root) / name
            if ".tmp" in name or name.startswith(OWN_PREFIX) or path.is_symlink():
                continue
            if path.resolve() in skipped or not path.is_file():
                continue
            found.append(path)
    return found


def copy_hashed(source: Path, target: Path) -> tuple[int, str]:
    """Copy a file while hashing what was written: (bytes, sha256 hex)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as read, open(target, "wb") as write:
        while chunk := read.read(CHUNK):
            digest.update(chunk)
            write.write(chunk)
            size += len(chunk)
        write.flush()
        os.fsync(write.fileno())
    return size, digest.hexdigest()


def hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def entry_for(folder: Path, path: Path) -> FileEntry:
    size, sha = hash_file(path)
    return FileEntry(path.relative_to(folder).as_posix(), size, sha)


def copy_data_files(data_dir: Path, folder: Path, skip: Iterable[Path]) -> list[FileEntry]:
    """Copy the data directory's files into `folder/data`, hashing each copy."""
    entries = []
    for path in data_files(data_dir, skip):
        relative = path.relative_to(data_dir).as_posix()
        try:
            size, sha = copy_hashed(path, folder / DATA / relative)
        except FileNotFoundError:
            continue  # removed while we walked (a replaced model file): nothing to keep
        entries.append(FileEntry(f"{DATA}/{relative}", size, sha))
    return entries


# -- reading and restoring ----------------------------------------------------------


def verify(folder: Path) -> Manifest:
    """The manifest of a complete, intact backup; a BackupError naming the first bad file.

    Reads every byte: sizes are checked first (cheap, and what a partial copy
    breaks), then checksums.
    """
    if not folder.is_dir():
        raise BackupError(f"{folder}: no such backup folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupError(
            f"{folder}: no {MANIFEST}: not a backup, or an incomplete one (the manifest is "
            "written last)"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"{path}: unreadable manifest: {exc}") from None
    manifest = Manifest.from_json(document, path)
    listed = {entry.path for entry in manifest.files}
    for name in manifest.database.files:
        if f"{DATABASE}/{name}" not in listed:
            raise BackupError(f"{path}: the database file {name} has no checksum")
    for entry in manifest.files:
        file = _inside(folder, entry.path)
        if not file.is_file():
            raise BackupError(f"{file}: missing from the backup")
        if file.stat().st_size != entry.bytes:
            raise BackupError(
                f"{file}: {file.stat().st_size} bytes, the manifest says {entry.bytes}: "
                "truncated or changed since the backup"
            )
    for entry in manifest.files:
        file = _inside(folder, entry.path)
        if hash_file(file)[1] != entry.sha256:
            raise BackupError(f"{file}: checksum mismatch: the file changed since the backup")
    return manifest


def _inside(folder: Path, relative: str) -> Path:
    """`folder/relative`, refusing a manifest path that would leave the folder."""
    path = folder / relative
    if relative.startswith("/") or ".." in Path(relative).parts:
        raise BackupError(f"{folder / MANIFEST}: file path {relative!r} leaves the backup")
    return path


def known_revision(revision: str | None) -> bool:
    """Whether this code's migrations know `revision` (None: a store made before them)."""
    if revision is None:
        return True
    # Imported here: a backup or restore needs Alembic, a serving process does not.
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def stage_beside(target: Path) -> Path:
    """An empty folder on the target's file system for the restored files.

    Beside the target normally; inside it when the target is a mount point (a
    container volume), which cannot be renamed.
    """
    if target.is_dir() and os.path.ismount(target):
        parent = target
    else:
        parent = target.parent
        parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{OWN_PREFIX}restore-", dir=parent))
    # mkdtemp makes 0700; the restored directory keeps the old one's mode (or the
    # umask's), so a server running as another user can still open it.
    staged.chmod(target.stat().st_mode & 0o7777 if target.is_dir() else default_mode(0o777))
    return staged


def default_mode(full: int) -> int:
    """`full` less the process umask: the mode a plain create would give.

    Read from /proc: os.umask can only be read by setting it, which would briefly
    change it for every thread of the process.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return full & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return full & ~0o022


def restore_data_files(manifest: Manifest, folder: Path, staged: Path) -> int:
    """Copy the backup's data files into `staged`, checking each copy's checksum."""
    for entry in manifest.data_entries():
        relative = entry.path.removeprefix(f"{DATA}/")
        size, sha = copy_hashed(_inside(folder, entry.path), _inside(staged, relative))
        if (size, sha) != (entry.bytes, entry.sha256):
            raise BackupError(f"{folder / entry.path}: changed while it was being restored")
    return len(manifest.data_entries())


@dataclass
class Swap:
    """A restored directory put in place, with the old contents kept aside until
    `discard` (success) or put back by `undo` (a later step failed)."""

    target: Path
    aside: Path | None
    undo_steps: Callable[[], None]

    def undo(self) -> None:
        self.undo_steps()

    def discard(self) -> None:
        if self.aside is not None and self.aside.exists():
            shutil.rmtree(self.aside)


def swap_in(staged: Path, target: Path) -> Swap:
    """Put `staged` in place of `target`.

    Two renames on one file system: the old directory is moved aside, the staged
    one takes its name. A mount point cannot be renamed, so there its entries
    move instead, one rename each.
    """
    _fsync_tree(staged)
    if staged.parent == target:  # target is a mount point: move entries
        aside = Path(tempfile.mkdtemp(prefix=f"{OWN_PREFIX}replaced-", dir=target))
        moved_out = [p for p in target.iterdir() if not p.name.startswith(OWN_PREFIX)]
        for entry in moved_out:
            os.rename(entry, aside / entry.name)
        moved_in = list(staged.iterdir())
        for entry in moved_in:
            os.rename(entry, target / entry.name)
        staged.rmdir()
        _fsync_dir(target)

        def undo_entries() -> None:
            failed = Path(tempfile.mkdtemp(prefix=f"{OWN_PREFIX}failed-", dir=target))
            for entry in moved_in:
                os.rename(target / entry.name, failed / entry.name)
            for entry in moved_out:
                os.rename(aside / entry.name, target / entry.name)
            aside.rmdir()
            shutil.rmtree(failed)

        return Swap(target, aside, undo_entries)

    aside_path = target.parent / f"{OWN_PREFIX}replaced-{target.name}-{os.getpid()}"
    had_target = target.exists()
    if had_target:
        os.rename(target, aside_path)
    try:
        os.rename(staged, target)
    except OSError:
        if had_target:
            os.rename(aside_path, target)
        raise
    _fsync_dir(target.parent)

    def undo_rename() -> None:
        shutil.rmtree(target)
        if had_target:
            os.rename(aside_path, target)

    return Swap(target, aside_path if had_target else None, undo_rename)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Directory entries durable before a rename publishes them (file data was fsynced)."""
    for current, _dirs, _files in os.walk(root):
        _fsync_dir(Path(current))
