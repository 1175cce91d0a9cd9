"""Persist the vector index as one file in the data directory.

Written to a temporary name, fsynced, then renamed over the old file, so a
crash at any moment leaves either the previous complete file or the new one.
The file records the outbox sequence it reflects; on load the index replays
later changes from the relational store.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from metamedia.engine.index import VectorIndex
from metamedia.storage.model_files import load_npz, save_npz_atomic

INDEX_FILE = "vectors.npz"


@dataclass(frozen=True)
class LoadedIndex:
    index: VectorIndex
    watermark: int
    model: str
    extra: dict[str, npt.NDArray[np.generic]]


class VectorFileStore:
    """Local faiss-backed vector store: one atomically replaced file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / INDEX_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def save(
        self,
        index: VectorIndex,
        watermark: int,
        model: str,
        extra: dict[str, npt.NDArray[np.generic]] | None = None,
    ) -> None:
        """Write the index with `extra` arrays (companion indexes) beside it."""
        state: dict[str, npt.NDArray[np.generic]] = dict(index.state())
        for name, value in (extra or {}).items():
            state[f"x_{name}"] = value
        state["watermark"] = np.array([watermark], dtype=np.int64)
        state["model"] = np.frombuffer(model.encode("utf-8"), dtype=np.uint8)
        save_npz_atomic(self.path, state)

    def load(self, exact_fraction: float) -> LoadedIndex | None:
        """The saved index, or None when there is none or it is unreadable."""
        state = load_npz(self.path)
        if state is None:
            return None
        try:
            index = VectorIndex.from_state(state, exact_fraction=exact_fraction)
            watermark = int(state["watermark"][0])
            model = bytes(state["model"]).decode("utf-8")
        except (ValueError, KeyError, RuntimeError):
            return None
        extra = {k[2:]: v for k, v in state.items() if k.startswith("x_")}
        return LoadedIndex(index, watermark, model, extra)

    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
