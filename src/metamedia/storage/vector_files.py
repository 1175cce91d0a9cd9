"""Persist the vector index as one file in the data directory.

Written to a temporary name, fsynced, then renamed over the old file, so a
crash at any moment leaves either the previous complete file or the new one.
The file records the outbox sequence it reflects; on load the index replays
later changes from the relational store.

A compressed ("hnsw_sq8") index keeps its float rows in a sidecar file beside
the npz, appended to on each save and mapped read-only on load (see
`storage.float_rows`); the npz records which file and how many rows, and a
sidecar that fails its check makes the load return None, like an unreadable npz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from metamedia.engine.index import VectorIndex
from metamedia.storage.float_rows import FloatRowFiles, SidecarRecord
from metamedia.storage.model_files import StreamedBytes, load_npz, save_npz_atomic

INDEX_FILE = "vectors.npz"


@dataclass(frozen=True)
class LoadedIndex:
    index: VectorIndex
    watermark: int
    model: str
    extra: dict[str, npt.NDArray[np.generic]]
    companions: dict[str, VectorIndex] = field(default_factory=dict)


class VectorFileStore:
    """Local faiss-backed vector store: one atomically replaced file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / INDEX_FILE
        self.sidecars = FloatRowFiles(directory, INDEX_FILE.removesuffix(".npz"))

    def exists(self) -> bool:
        return self.path.exists()

    def save(
        self,
        index: VectorIndex,
        watermark: int,
        model: str,
        extra: dict[str, npt.NDArray[np.generic]] | None = None,
        companions: dict[str, VectorIndex] | None = None,
    ) -> None:
        """Write the index with `extra` arrays and `companions` (more vector indexes,
        stored as `x_<name>_*` arrays) beside it; float rows of compressed indexes go
        to their sidecars first, so the npz never names rows that are not on disk."""
        kept: set[str] = set()
        state = self._index_state(index, "items", kept)
        for name, companion in (companions or {}).items():
            for key, value in self._index_state(companion, name, kept).items():
                state[f"x_{name}_{key}"] = value
        for name, value in (extra or {}).items():
            state[f"x_{name}"] = value
        state["watermark"] = np.array([watermark], dtype=np.int64)
        state["model"] = np.frombuffer(model.encode("utf-8"), dtype=np.uint8)
        save_npz_atomic(self.path, state)
        self.sidecars.remove_stale(kept)

    def _index_state(
        self, index: VectorIndex, name: str, kept: set[str]
    ) -> dict[str, npt.NDArray[np.generic] | StreamedBytes]:
        state: dict[str, npt.NDArray[np.generic] | StreamedBytes] = dict(index.state(graph=False))
        state["faiss"] = StreamedBytes(index.graph_bytes(), index.write_graph)
        rows = index.float_rows
        if rows is not None:
            record = self.sidecars.write(name, rows)
            kept.add(record.file)
            state.update(record.to_arrays())
        return state

    def _index_from(
        self, state: dict[str, npt.NDArray[np.generic]], exact_fraction: float
    ) -> VectorIndex:
        floats = None
        if "floats_meta" in state:
            floats = self.sidecars.open(SidecarRecord.from_arrays(state))
        return VectorIndex.from_state(state, exact_fraction=exact_fraction, floats=floats)

    def load(self, exact_fraction: float, companions: tuple[str, ...] = ()) -> LoadedIndex | None:
        """The saved index (and the named companion indexes that were saved with it),
        or None when there is none or it, or a sidecar of it, is unreadable."""
        state = load_npz(self.path)
        if state is None:
            return None
        extra = {k[2:]: v for k, v in state.items() if k.startswith("x_")}
        loaded: dict[str, VectorIndex] = {}
        try:
            index = self._index_from(state, exact_fraction)
            watermark = int(state["watermark"][0])
            model = bytes(state["model"]).decode("utf-8")
            for name in companions:
                prefix = f"{name}_"
                part = {k[len(prefix) :]: v for k, v in extra.items() if k.startswith(prefix)}
                if part:
                    loaded[name] = self._index_from(part, exact_fraction)
                    extra = {k: v for k, v in extra.items() if not k.startswith(prefix)}
        except (ValueError, KeyError, RuntimeError):
            return None
        return LoadedIndex(index, watermark, model, extra, loaded)

    def size_bytes(self) -> int:
        npz = self.path.stat().st_size if self.path.exists() else 0
        return npz + self.sidecars.size_bytes()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.sidecars.remove_stale(set())
