"""The vector role in process memory: the engine's `VectorIndex` plus its `PayloadColumns`.

A thin adapter, so that services can hold a `VectorStore` whether the vectors live
in this process or in PostgreSQL. The engine already does the hard parts (flat or
HNSW search inside a boolean mask, exact search when the mask is selective, the
exact fall-back when the approximate search comes back short); this module only
keeps the filter columns aligned with the index's positions.

Both the index and the columns are append-only by position: an upsert appends a
new position (the index tombstones the key's old one) and appends the item's
attributes at the same position; a removal only tombstones. The attributes of a
tombstoned position stay behind, harmlessly: the index never returns a dead
position whatever the mask says.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.engine.payload import AttributeFilter, ItemAttributes, PayloadColumns


class MemoryVectorStore:
    """`VectorStore` on one `VectorIndex` and the `PayloadColumns` of its positions."""

    def __init__(self, dim: int, params: IndexParams | None = None) -> None:
        self.dim = dim
        self._index = VectorIndex(dim, params)
        self._payload = PayloadColumns()
        # Upserts grow the index and the columns in two steps; a search in between
        # would see a mask one upsert short of the index (ValueError), so both sides
        # take the lock. Searches are short (microseconds to a millisecond or two).
        self._lock = threading.Lock()

    @property
    def index(self) -> VectorIndex:
        """The engine index (read-only use: tombstone counts, compaction decisions)."""
        return self._index

    def upsert(self, rows: Sequence[tuple[int, npt.NDArray[np.float32], ItemAttributes]]) -> None:
        """Add or replace items; a pk already present gets its new vector and attributes."""
        if not rows:
            return
        # The last row wins when a batch names a pk twice (the index refuses duplicates).
        latest = {int(pk): (vector, attrs) for pk, vector, attrs in rows}
        keys = np.fromiter(latest, dtype=np.int64, count=len(latest))
        matrix = np.vstack(
            [np.asarray(v, dtype=np.float32).reshape(1, -1) for v, _ in latest.values()]
        )
        with self._lock:
            positions = self._index.upsert(keys, matrix)
            if int(positions[0]) != len(self._payload):
                raise RuntimeError(
                    f"payload holds {len(self._payload)} positions, "
                    f"index appended at {positions[0]}"
                )
            self._payload.append([attrs for _, attrs in latest.values()])

    def remove(self, pks: Sequence[int]) -> None:
        """Tombstone items; unknown pks are ignored."""
        with self._lock:
            self._index.remove(np.asarray(pks, dtype=np.int64))

    def search(
        self, vector: npt.NDArray[np.float32], k: int, flt: AttributeFilter
    ) -> list[tuple[int, float]]:
        """Top-k (pk, inner product) inside the filter, best first."""
        with self._lock:
            mask = self._payload.mask(flt)
            found = self._index.search(vector, k, allowed=mask)
        return [
            (int(pk), float(score))
            for pk, score in zip(found.keys.tolist(), found.scores.tolist(), strict=True)
        ]

    def count(self) -> int:
        """Live items."""
        return len(self._index)
