"""Persist the vector index as one file in the data directory.

Written to a temporary name, fsynced, then renamed over the old file, so a
crash at any moment leaves either the previous complete file or the new one.
The file records the outbox sequence it reflects; on load the index replays
later changes from the relational store.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from metamedia.engine.index import VectorIndex

INDEX_FILE = "vectors.npz"


@dataclass(frozen=True)
class LoadedIndex:
    index: VectorIndex
    watermark: int
    model: str


class VectorFileStore:
    """Local faiss-backed vector store: one atomically replaced file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / INDEX_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, index: VectorIndex, watermark: int, model: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state: dict[str, npt.NDArray[np.generic]] = dict(index.state())
        state["watermark"] = np.array([watermark], dtype=np.int64)
        state["model"] = np.frombuffer(model.encode("utf-8"), dtype=np.uint8)
        tmp = self.path.with_suffix(f".tmp-{os.getpid()}")
        with open(tmp, "wb") as handle:
            np.savez(handle, **state)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def load(self, exact_fraction: float) -> LoadedIndex | None:
        """The saved index, or None when there is none or it is unreadable."""
        if not self.path.exists():
            return None
        try:
            with np.load(self.path) as data:
                state = {name: data[name] for name in data.files}
            index = VectorIndex.from_state(state, exact_fraction=exact_fraction)
            watermark = int(state["watermark"][0])
            model = bytes(state["model"]).decode("utf-8")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, RuntimeError):
            return None
        return LoadedIndex(index, watermark, model)

    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
