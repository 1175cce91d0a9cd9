"""Trained models (collaborative weights, themes) as files in the data directory.

Models are derived data: `metamedia train` rebuilds them from the relational
store. Files are replaced atomically; readers compare modification times so a
model trained by another process is picked up without a restart.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from metamedia.engine.collaborative import EaseModel
from metamedia.storage.tenant_names import legacy_tenant_key, tenant_key


@dataclass(frozen=True)
class StreamedBytes:
    """A byte array written straight into a saved file, never held whole: its length,
    and a function that hands its bytes, in order, to the sink it is given. A vector
    index serialised in memory was held two to three times over while saving (faiss's
    growing buffer, then the numpy copy), the peak of an ingest."""

    nbytes: int
    write_to: Callable[[Callable[[bytes], object]], None]


def save_npz_atomic(path: Path, arrays: Mapping[str, npt.NDArray[Any] | StreamedBytes]) -> None:
    """Write to a temporary name, fsync, rename: readers see old or new, never half.

    The layout is `numpy.savez`'s (one stored .npy member per array, so `np.load`
    reads it); `StreamedBytes` values become uint8 arrays written chunk by chunk.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, value in arrays.items():
                    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                        if isinstance(value, StreamedBytes):
                            _write_streamed(member, value)
                        else:
                            array = np.asanyarray(value)
                            np.lib.format.write_array(member, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind


def _write_streamed(member: IO[bytes], value: StreamedBytes) -> None:
    header = {"descr": "|u1", "fortran_order": False, "shape": (value.nbytes,)}
    np.lib.format.write_array_header_1_0(member, header)
    written = 0

    def sink(chunk: bytes) -> None:
        nonlocal written
        written += len(chunk)
        member.write(chunk)

    value.write_to(sink)
    if written != value.nbytes:
        raise OSError(f"streamed {written} bytes where {value.nbytes} were announced")


def load_npz(path: Path) -> dict[str, npt.NDArray[Any]] | None:
    """Arrays of a saved file, or None when missing or unreadable (then retrain)."""
    if not path.exists():
        return None
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None


def _text(value: str) -> npt.NDArray[np.uint8]:
    return np.frombuffer(value.encode("utf-8"), dtype=np.uint8)


def _from_text(array: npt.NDArray[Any]) -> str:
    return bytes(array.astype(np.uint8)).decode("utf-8")


@dataclass(frozen=True)
class Themes:
    """Clusters of the catalog: unit centroids, a label per theme, members by key."""

    centroids: npt.NDArray[np.float32]
    labels: list[list[str]]
    keys: npt.NDArray[np.int64]
    assignment: npt.NDArray[np.int64]

    def theme_of(self) -> dict[int, int]:
        return {
            int(k): int(a)
            for k, a in zip(self.keys.tolist(), self.assignment.tolist(), strict=True)
        }


class ModelStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, kind: str, tenant: str) -> Path:
        """Where this tenant's model is written (one file per tenant, never shared)."""
        return self.directory / f"{kind}-{tenant_key(tenant)}.npz"

    def _legacy(self, kind: str, tenant: str) -> Path | None:
        legacy = legacy_tenant_key(tenant)
        return None if legacy is None else self.directory / f"{kind}-{legacy}.npz"

    def _readable(self, kind: str, tenant: str) -> Path:
        """The file to read: this tenant's, or one an older version wrote unambiguously."""
        path = self._path(kind, tenant)
        legacy = self._legacy(kind, tenant)
        if not path.exists() and legacy is not None and legacy.exists():
            return legacy
        return path

    def mtime(self, kind: str, tenant: str) -> float | None:
        path = self._readable(kind, tenant)
        return path.stat().st_mtime if path.exists() else None

    def save_ease(self, tenant: str, model: EaseModel) -> None:
        save_npz_atomic(self._path("ease", tenant), {"keys": model.keys, "weights": model.weights})

    def load_ease(self, tenant: str) -> EaseModel | None:
        data = load_npz(self._readable("ease", tenant))
        if data is None or "keys" not in data or "weights" not in data:
            return None
        return EaseModel(data["keys"].astype(np.int64), data["weights"].astype(np.float32))

    def save_themes(self, tenant: str, themes: Themes) -> None:
        save_npz_atomic(
            self._path("themes", tenant),
            {
                "centroids": themes.centroids,
                "labels": _text(json.dumps(themes.labels)),
                "keys": themes.keys,
                "assignment": themes.assignment,
            },
        )

    def load_themes(self, tenant: str) -> Themes | None:
        data = load_npz(self._readable("themes", tenant))
        if data is None or "centroids" not in data:
            return None
        return Themes(
            data["centroids"].astype(np.float32),
            json.loads(_from_text(data["labels"])),
            data["keys"].astype(np.int64),
            data["assignment"].astype(np.int64),
        )

    def remove(self, tenant: str) -> None:
        for kind in ("ease", "themes"):
            self._path(kind, tenant).unlink(missing_ok=True)
            legacy = self._legacy(kind, tenant)
            if legacy is not None:
                legacy.unlink(missing_ok=True)
