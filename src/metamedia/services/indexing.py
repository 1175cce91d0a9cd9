"""Keeps the in-memory vector index in step with the relational store.

The index follows the outbox: every process (API server, CLI) applies the
changes after its watermark before it searches, so writes made by another
process are visible on the next request. The saved file is only a start-up
shortcut; losing it costs a rebuild, never data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.engine.index import IndexParams, Neighbours, VectorIndex, build_index
from metamedia.engine.payload import AttributeFilter, ItemAttributes, PayloadColumns
from metamedia.engine.vectors import FloatArray
from metamedia.errors import StaleMaskError
from metamedia.observability.metrics import observe_current
from metamedia.storage.base import IndexRow, MediaRepository
from metamedia.storage.vector_files import VectorFileStore

_GONE = ItemAttributes(type="", tenant="\x00removed")
SAVE_EVERY_S = 30.0
COMPACT_TOMBSTONE_FRACTION = 0.3


@dataclass
class VectorIndexReport:
    kind: str
    size: int
    missing: list[int] = field(default_factory=list)
    orphaned: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    pending_changes: int = 0

    @property
    def healthy(self) -> bool:
        return not (self.missing or self.orphaned or self.stale)


class PositionMask(np.ndarray):
    """A boolean mask over index positions that remembers which index it was made for.

    Between rebuilds positions are only appended, so a mask made before a concurrent
    write is still right for every position it covers (new ones are left out); after
    a rebuild it is meaningless. `generation` tells the two apart. Results of numpy
    operations on a mask (`mask & other`) keep it.
    """

    generation: int | None = None

    def __array_finalize__(self, obj: object) -> None:
        self.generation = getattr(obj, "generation", None)


@dataclass(frozen=True)
class CatalogChange:
    """Items (primary keys) an outbox replay upserted or deleted."""

    upserted: tuple[int, ...]
    deleted: tuple[int, ...]


class IndexManager:
    """Owns the live `VectorIndex` and its filter columns for one process."""

    def __init__(
        self,
        repo: MediaRepository,
        files: VectorFileStore,
        embedder: Embedder,
        settings: Settings,
    ) -> None:
        self.repo = repo
        self.files = files
        self.embedder = embedder
        self.settings = settings
        self._lock = threading.RLock()
        self._index: VectorIndex | None = None
        self._generation = 0  # bumped whenever `_index` is replaced (positions renumbered)
        self._payload = PayloadColumns()
        self._watermark = 0
        self._saved_watermark = 0
        self._last_save = time.monotonic()
        self._change_listeners: list[Callable[[CatalogChange], None]] = []

    def on_change(self, listener: Callable[[CatalogChange], None]) -> None:
        """Call `listener(change)` whenever a replay applies catalog changes, in any
        process's writes. Runs under the index lock: listeners must only enqueue."""
        self._change_listeners.append(listener)

    # -- lifecycle ----------------------------------------------------------

    def _params(self, size: int) -> IndexParams:
        s = self.settings
        return IndexParams(
            kind="hnsw" if size >= s.hnsw_threshold and s.hnsw_threshold > 0 else "flat",
            hnsw_m=s.hnsw_m,
            ef_construction=s.hnsw_ef_construction,
            ef_search=s.hnsw_ef_search,
            exact_fraction=s.exact_filter_fraction,
        )

    @property
    def index(self) -> VectorIndex:
        with self._lock:
            if self._index is None:
                self._load()
            assert self._index is not None
            return self._index

    @property
    def watermark(self) -> int:
        return self._watermark

    def _load(self) -> None:
        loaded = self.files.load(self.settings.exact_filter_fraction)
        stale_kind = loaded is not None and (
            loaded.index.kind != self._params(len(loaded.index)).kind
        )
        if loaded is None or loaded.model != self.embedder.name or stale_kind:
            # Missing, for another model, or the configured index type changed.
            self.rebuild()
            return
        self._index = loaded.index
        self._generation += 1
        self._watermark = self._saved_watermark = loaded.watermark
        self._payload = self._payload_for(loaded.index)
        self.sync()

    def _payload_for(self, index: VectorIndex) -> PayloadColumns:
        keys = index.key_at(np.arange(index.positions, dtype=np.int64))
        live = [int(k) for k in index.live_keys()]
        attrs = {row.pk: row.attributes for row in self.repo.index_rows(live, self.embedder.name)}
        gone = [k for k in live if k not in attrs]
        index.remove(np.asarray(gone, dtype=np.int64))
        payload = PayloadColumns(capacity=index.positions)
        payload.append(
            [attrs.get(int(k), _GONE) if index.contains(int(k)) else _GONE for k in keys]
        )
        return payload

    def rebuild(self) -> int:
        """Build the vector index from the relational store and save it."""
        with self._lock:
            watermark = self.repo.last_change()
            keys: list[int] = []
            vectors: list[FloatArray] = []
            attrs: list[ItemAttributes] = []
            for rows in self.repo.iter_index_rows(self.embedder.name):
                for row, vector in zip(rows, self._vectors_for(rows), strict=True):
                    keys.append(row.pk)
                    vectors.append(vector)
                    attrs.append(row.attributes)
            matrix = np.vstack(vectors) if vectors else np.empty((0, self.embedder.dim), np.float32)
            index = build_index(keys, matrix, self.embedder.dim, self._params(len(keys)))
            payload = PayloadColumns(capacity=len(attrs))
            payload.append(attrs)
            self._index, self._payload, self._watermark = index, payload, watermark
            self._generation += 1
            self.save()
            self.sync()
            return len(keys)

    def _vectors_for(self, rows: list[IndexRow]) -> list[FloatArray]:
        """Stored vectors, computing (and storing) any that are missing."""
        missing = [row.pk for row in rows if row.vector is None]
        fresh: dict[str, FloatArray] = {}
        if missing:
            texts = self.repo.texts_for_hashes(missing)
            hashes = list(texts)
            encoded = self.embedder.encode([texts[h] for h in hashes])
            fresh = {h: encoded[i] for i, h in enumerate(hashes)}
            self.repo.store_embeddings(self.embedder.name, fresh)
        return [row.vector if row.vector is not None else fresh[row.content_hash] for row in rows]

    def sync(self) -> int:
        """Apply outbox changes after the watermark; returns how many were applied."""
        with self._lock:
            if self._index is None:
                self._load()
                return 0
            applied = 0
            while True:
                changes = self.repo.changes_since(self._watermark)
                if not changes:
                    break
                last_op: dict[int, str] = {}
                for change in changes:
                    last_op[change.pk] = change.op
                deletes = [pk for pk, op in last_op.items() if op == "delete"]
                upserts = [pk for pk, op in last_op.items() if op == "upsert"]
                self._index.remove(np.asarray(deletes, dtype=np.int64))
                rows = self.repo.index_rows(upserts, self.embedder.name)
                found = {row.pk for row in rows}
                # An upsert followed by a delete in a later batch: the row is gone.
                self._index.remove(np.asarray([pk for pk in upserts if pk not in found]))
                if rows:
                    vectors = np.vstack(self._vectors_for(rows))
                    self._index.upsert([row.pk for row in rows], vectors)
                    self._payload.append([row.attributes for row in rows])
                self._watermark = changes[-1].seq
                applied += len(changes)
                touched = CatalogChange(tuple(upserts), tuple(deletes))
                for listener in self._change_listeners:
                    listener(touched)
            if applied:
                self._maybe_compact()
                if time.monotonic() - self._last_save > SAVE_EVERY_S:
                    self.save()
            return applied

    def _maybe_compact(self) -> None:
        assert self._index is not None
        index = self._index
        wanted = self._params(len(index)).kind
        too_many_tombstones = index.tombstones > COMPACT_TOMBSTONE_FRACTION * max(
            index.positions, 1
        )
        if wanted != index.kind or too_many_tombstones:
            self.rebuild()

    def save(self) -> None:
        with self._lock:
            if self._index is None:
                return
            self.files.save(self._index, self._watermark, self.embedder.name)
            self._saved_watermark = self._watermark
            self._last_save = time.monotonic()

    def flush(self) -> None:
        """Save if anything changed since the last save (called at shutdown and after ingest)."""
        with self._lock:
            if self._index is not None and self._watermark != self._saved_watermark:
                self.save()

    # -- queries ------------------------------------------------------------

    def mask(self, flt: AttributeFilter) -> np.ndarray:
        with self._lock:
            _ = self.index
            mask = self._payload.mask(flt).view(PositionMask)
            mask.generation = self._generation
            return mask

    def search(self, query: FloatArray, k: int, allowed: np.ndarray | None) -> Neighbours:
        with self._lock:
            index = self.index
            if allowed is not None:
                allowed = self._current(allowed, index.positions)
            started = time.perf_counter()
            found = index.search(query, k, allowed)
            observe_current("index_search", time.perf_counter() - started)
            return found

    def _current(self, allowed: np.ndarray, positions: int) -> np.ndarray:
        """`allowed` brought up to the index's size: items written since the mask was
        made (by another request, or the outbox follower) are left out of this query."""
        made_for = getattr(allowed, "generation", None)
        if (made_for is not None and made_for != self._generation) or (
            allowed.shape[0] > positions
        ):
            raise StaleMaskError("the index was rebuilt during this query; retry it")
        if allowed.shape[0] < positions:
            grown = np.zeros(positions, dtype=bool)
            grown[: allowed.shape[0]] = allowed
            return grown
        return np.asarray(allowed, dtype=bool)

    def popularity(self) -> np.ndarray:
        with self._lock:
            _ = self.index
            return self._payload.popularity().copy()

    def label_mask(self, field: str, values: tuple[str, ...]) -> np.ndarray:
        """Positions whose genre / platform / language is one of `values`."""
        with self._lock:
            _ = self.index
            return self._payload.label_mask(field, values)

    def facet_counts(self, flt: AttributeFilter, field: str) -> dict[str, int]:
        """Live items passing `flt` per value of `field` (type, genre, platform or
        language), zero counts left out: the numbers a filter form shows beside its
        options. One mask plus one column test per value, so it stays cheap."""
        with self._lock:
            index = self.index
            base = self._payload.mask(flt) & index.live_mask()
            counts: dict[str, int] = {}
            for value in self._payload.labels(field):
                if field == "type":
                    hits = self._payload.mask(replace(flt, types=(value,)))
                else:
                    hits = self._payload.label_mask(field, (value,))
                count = int(np.count_nonzero(base & hits))
                if count:
                    counts[value] = count
            return counts

    def positions_of(self, keys: list[int]) -> dict[int, int]:
        with self._lock:
            index = self.index
            found = {}
            for key in keys:
                pos = index.position_of(key)
                if pos is not None:
                    found[key] = pos
            return found

    def positions_array(self, keys: np.ndarray) -> np.ndarray:
        """Positions of keys as an array (-1 = not in the index)."""
        with self._lock:
            return self.index.positions_for(keys)

    def vectors_of(self, keys: list[int]) -> dict[int, FloatArray]:
        """Stored vectors of live keys (copies; unknown keys are skipped)."""
        with self._lock:
            index = self.index
            wanted = np.asarray(keys, dtype=np.int64)
            positions = index.positions_for(wanted)
            found = positions >= 0
            rows = index.vectors()[positions[found]]  # fancy indexing copies
            return dict(zip(wanted[found].tolist(), rows, strict=True))

    def keys_at(self, positions: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.index.key_at(positions)

    def similarities(self, query: FloatArray, keys: list[int]) -> dict[int, float]:
        with self._lock:
            index = self.index
            vectors = index.vectors()
            out = {}
            for key in keys:
                pos = index.position_of(key)
                if pos is not None:
                    out[key] = float(vectors[pos] @ query)
            return out

    # -- consistency --------------------------------------------------------

    def check(self) -> VectorIndexReport:
        """Compare the saved index file with the relational store (without repairing)."""
        loaded = self.files.load(self.settings.exact_filter_fraction)
        last = self.repo.last_change()
        if loaded is None:
            repo_keys = [
                row.pk for rows in self.repo.iter_index_rows(self.embedder.name) for row in rows
            ]
            return VectorIndexReport("absent", 0, missing=repo_keys, pending_changes=last)
        index = loaded.index
        in_index = {int(k) for k in index.live_keys()}
        report = VectorIndexReport(index.kind, len(index), pending_changes=last - loaded.watermark)
        vectors = index.vectors()
        seen: set[int] = set()
        for rows in self.repo.iter_index_rows(self.embedder.name):
            for row in rows:
                seen.add(row.pk)
                pos = index.position_of(row.pk)
                if pos is None:
                    report.missing.append(row.pk)
                elif row.vector is None or float(vectors[pos] @ row.vector) < 0.999:
                    report.stale.append(row.pk)
        report.orphaned = sorted(in_index - seen)
        return report
