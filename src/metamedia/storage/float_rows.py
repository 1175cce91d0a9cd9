"""Sidecar files of float32 rows beside vectors.npz, for the compressed index kind.

An "hnsw_sq8" index keeps its exact vectors outside the npz: raw little-endian
float32 rows, `dim` per row, in `vectors.<name>.<token>.f32`. A loaded index
maps the file read-only (`mmap`, advised random access), so a process serving a 1M catalog does
not read 1.5 GB into RAM; only the rows its searches re-score become resident.

Positions are append-only between rebuilds, so a save appends just the rows past
what the file holds (then fsync) and the file's earlier bytes never change. Appends
take an exclusive `flock` on the file; rows another process appended are kept when
they equal ours at the same positions (processes follow the same outbox). A
rebuild renumbers positions: then the rows go to a file with a new token (temp
name, fsync, rename), never over a file a reader may have mapped. Nothing is ever
truncated in place (a mapped page past a truncation kills its reader with
SIGBUS); stale files are deleted once the npz naming the new one is in place
(deleting a mapped file is harmless: the mapping keeps it until unmapped).

The npz records each sidecar's token, row count and a CRC of sampled rows, so a
missing, short or mismatched sidecar fails the load (and the index is rebuilt
from the relational store). Rows past the recorded count (a crash between the
append and the npz rename) are ignored, and replaced by the next full write.
"""

from __future__ import annotations

import mmap
import os
import secrets
import sys
import weakref
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from metamedia.engine.float_rows import FloatRows

if sys.platform != "win32":
    import fcntl

ROW_DTYPE = np.dtype("<f4")
CHECK_ROWS = 64  # rows sampled (evenly, first and last included) into the checksum
WRITE_BLOCK_ROWS = 16_384


class SidecarError(ValueError):
    """A sidecar is missing, shorter than recorded, or not the rows the npz names."""


@dataclass(frozen=True)
class SidecarRecord:
    """What the npz says about one sidecar: its file name, rows, width and checksum."""

    file: str
    rows: int
    dim: int
    checksum: int

    def to_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        return {
            "floats_file": np.frombuffer(self.file.encode("utf-8"), dtype=np.uint8),
            "floats_meta": np.array([self.rows, self.dim, self.checksum], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, npt.NDArray[np.generic]]) -> SidecarRecord:
        name = bytes(np.asarray(arrays["floats_file"], dtype=np.uint8)).decode("utf-8")
        if "/" in name or name.startswith("."):
            raise SidecarError(f"bad sidecar name {name!r}")
        rows, dim, checksum = (int(x) for x in arrays["floats_meta"].tolist())
        return cls(name, rows, dim, checksum)


@dataclass
class _Written:
    path: Path
    rows: int


# Which sidecar holds how many leading rows of each live `FloatRows`, process-wide (an
# index loaded through one `FloatRowFiles` may be saved through another).
_WRITTEN: weakref.WeakKeyDictionary[FloatRows, _Written] = weakref.WeakKeyDictionary()


def sample_checksum(path: Path, count: int, dim: int) -> int:
    """CRC32 of `CHECK_ROWS` evenly spaced rows among the first `count` of a sidecar
    (and of count), read with pread: checking a mapped file must not fault it in."""
    crc = zlib.crc32(int(count).to_bytes(8, "little"))
    if count == 0:
        return crc
    row_bytes = dim * ROW_DTYPE.itemsize
    picks = np.unique(np.linspace(0, count - 1, min(count, CHECK_ROWS)).round().astype(np.int64))
    fd = os.open(path, os.O_RDONLY)
    try:
        for pick in picks.tolist():
            row = os.pread(fd, row_bytes, pick * row_bytes)
            if len(row) != row_bytes:
                raise SidecarError(f"sidecar {path.name} ends before row {pick}")
            crc = zlib.crc32(row, crc)
    finally:
        os.close(fd)
    return crc


class FloatRowFiles:
    """Writes and maps the float-row sidecars of one directory.

    Remembers, per `FloatRows` object, which file holds how many of its rows, so the
    next save of the same rows appends; any other rows (a rebuilt index) get a new
    file. Callers serialise saves (the index manager's lock).
    """

    def __init__(self, directory: Path, stem: str = "vectors") -> None:
        self.directory = directory
        self.stem = stem

    def _pattern(self, name: str) -> str:
        return f"{self.stem}.{name}."

    def write(self, name: str, rows: FloatRows) -> SidecarRecord:
        """Persist `rows` (append when this file already holds a prefix of them) and
        map the written rows back in as their base, freeing the in-RAM tail."""
        self.directory.mkdir(parents=True, exist_ok=True)
        count = len(rows)
        known = _WRITTEN.get(rows)
        path = known.path if known is not None else None
        if not (
            known is not None
            and path is not None
            and path.parent == self.directory
            and path.name.startswith(self._pattern(name))
            and self._append(path, known.rows, rows)
        ):
            path = self.directory / f"{self._pattern(name)}{secrets.token_hex(6)}.f32"
            self._rewrite(path, rows, count)
        _WRITTEN[rows] = _Written(path, count)
        if count > rows.base_rows:
            rows.rebase(self._map(path, count, rows.dim))
        return SidecarRecord(path.name, count, rows.dim, sample_checksum(path, count, rows.dim))

    def _append(self, path: Path, written: int, rows: FloatRows) -> bool:
        """Append our rows past what `path` holds, when it still holds exactly our first
        `written` rows, perhaps followed by rows equal to our next ones (another process
        following the same outbox appended them, or a crash left them); False (write a
        new file) otherwise. Appenders of one file take turns under an exclusive lock."""
        try:
            with open(path, "r+b") as handle:
                return self._append_to(handle, written, rows)
        except FileNotFoundError:
            return False

    def _append_to(self, handle: BinaryIO, written: int, rows: FloatRows) -> bool:
        row_bytes = rows.dim * ROW_DTYPE.itemsize
        if sys.platform != "win32":
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file closes
        size = os.fstat(handle.fileno()).st_size
        if size % row_bytes or size < written * row_bytes:
            return False
        on_file = size // row_bytes
        shared = min(on_file, len(rows))
        for first in range(written, shared, WRITE_BLOCK_ROWS):
            last = min(first + WRITE_BLOCK_ROWS, shared)
            handle.seek(first * row_bytes)
            theirs = np.frombuffer(handle.read((last - first) * row_bytes), dtype=ROW_DTYPE)
            if not np.array_equal(theirs.reshape(-1, rows.dim), rows.rows(first, last)):
                return False
        if on_file < len(rows):
            handle.seek(0, os.SEEK_END)
            self._write_rows(handle, rows, on_file, len(rows))
        return True

    def _rewrite(self, path: Path, rows: FloatRows, count: int) -> None:
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as handle:
            self._write_rows(handle, rows, 0, count)
        os.replace(tmp, path)

    @staticmethod
    def _write_rows(handle: BinaryIO, rows: FloatRows, start: int, stop: int) -> None:
        for first in range(start, stop, WRITE_BLOCK_ROWS):
            block = rows.rows(first, min(first + WRITE_BLOCK_ROWS, stop))
            handle.write(np.ascontiguousarray(block, dtype=ROW_DTYPE).tobytes())
        handle.flush()
        os.fsync(handle.fileno())

    @staticmethod
    def _map(path: Path, count: int, dim: int) -> npt.NDArray[np.float32]:
        """The first `count` rows as a read-only array over a shared mapping, advised
        random access: a cold read then pulls in the pages of the rows touched rather
        than read-ahead windows around them."""
        if count == 0:
            return np.empty((0, dim), dtype=np.float32)
        with open(path, "rb") as handle:
            mapping = mmap.mmap(
                handle.fileno(), count * dim * ROW_DTYPE.itemsize, access=mmap.ACCESS_READ
            )
        if hasattr(mmap, "MADV_RANDOM"):
            mapping.madvise(mmap.MADV_RANDOM)
        return np.frombuffer(mapping, dtype=ROW_DTYPE, count=count * dim).reshape(count, dim)

    def open(self, record: SidecarRecord) -> FloatRows:
        """The recorded rows, mapped read-only; raises `SidecarError` when the file is
        missing, shorter than recorded or fails the checksum."""
        path = self.directory / record.file
        row_bytes = record.dim * ROW_DTYPE.itemsize
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SidecarError(f"sidecar {path.name} is missing") from exc
        if record.dim <= 0 or size < record.rows * row_bytes:
            raise SidecarError(
                f"sidecar {path.name} holds {size} bytes, fewer than {record.rows} rows"
            )
        if sample_checksum(path, record.rows, record.dim) != record.checksum:
            raise SidecarError(f"sidecar {path.name} does not hold the recorded rows")
        base = self._map(path, record.rows, record.dim)
        rows = FloatRows(record.dim, base)
        _WRITTEN[rows] = _Written(path, record.rows)
        return rows

    def remove_stale(self, keep: set[str]) -> None:
        """Delete sidecars not named in `keep`, and this process's leftover temp files
        (another process's may be mid-write)."""
        if not self.directory.exists():
            return
        for path in self.directory.glob(f"{self.stem}.*.f32"):
            if path.name not in keep:
                path.unlink(missing_ok=True)
        for path in self.directory.glob(f"{self.stem}.*.f32.tmp-{os.getpid()}"):
            path.unlink(missing_ok=True)

    def size_bytes(self) -> int:
        if not self.directory.exists():
            return 0
        return sum(p.stat().st_size for p in self.directory.glob(f"{self.stem}.*.f32"))
