"""Keeps the in-memory indexes in step with the relational store.

Three indexes share one position space: the item vectors (recommendations,
"more like this"), the keyword index (BM25 and exact titles) and the filter
columns are appended row for row; the passage vectors each name the position
of the item they belong to. One filter mask over item positions therefore
restricts all of them, and retiring an item's position retires its passages.

The index follows the outbox: every process (API server, CLI) applies the
changes after its watermark before it searches, so writes made by another
process are visible on the next request. The saved file is only a start-up
shortcut; losing it costs a rebuild, never data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace

import numpy as np

from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.engine.index import (
    IndexKind,
    IndexParams,
    Neighbours,
    SearchPlan,
    VectorIndex,
)
from metamedia.engine.lexical import LexicalIndex
from metamedia.engine.passages import text_hash
from metamedia.engine.payload import AttributeFilter, ItemAttributes, PayloadColumns
from metamedia.engine.vectors import FloatArray
from metamedia.errors import StaleMaskError
from metamedia.observability.metrics import count_vector_plan_current, observe_current
from metamedia.services.caching import Caches
from metamedia.services.heap import release_free_heap
from metamedia.services.item_vectors import ItemEncoder, ItemText
from metamedia.storage.records import IndexRow
from metamedia.storage.roles import CatalogStore, VectorStore
from metamedia.storage.vector_files import LoadedIndex, VectorFileStore

_GONE = ItemAttributes(type="", tenant="\x00removed")
SAVE_EVERY_S = 30.0
PASSAGES_PER_ITEM = 3  # passages fetched per wanted item: items average ~2.5 passages
COMPACT_TOMBSTONE_FRACTION = 0.3
PAYLOAD_READ_ROWS = 2_000  # catalog rows read at a time when a loaded index gets its filters


def index_kind(settings: Settings, size: int) -> IndexKind:
    """The vector index kind for an index of `size` vectors: the configured one, or with
    "auto", exact below `hnsw_threshold`, HNSW over float16 rows from it (half the bytes
    of float32; recall@10 on the 36k-film catalog equal to float HNSW's), and the
    compressed graph with exact re-scoring (float rows memory-mapped) from
    `compressed_threshold`."""
    if settings.vector_index_kind != "auto":
        return settings.vector_index_kind
    if settings.compressed_threshold > 0 and size >= settings.compressed_threshold:
        return "hnsw_sq8"
    if settings.hnsw_threshold > 0 and size >= settings.hnsw_threshold:
        return "hnsw_fp16"
    return "flat"


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


@dataclass
class _RowBlocks:
    """What a rebuild reads from the store: keys, attributes and keyword documents by
    item, and the vectors as blocks (one per batch read) in the same order."""

    keys: list[int] = field(default_factory=list)
    attrs: list[ItemAttributes] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)  # passage -> item ordinal
    lexical: LexicalIndex = field(default_factory=LexicalIndex)
    item_blocks: list[FloatArray] = field(default_factory=list)
    passage_blocks: list[FloatArray] = field(default_factory=list)


def _index_from_blocks(
    keys: np.ndarray, blocks: list[FloatArray], dim: int, params: IndexParams
) -> VectorIndex:
    """A fresh index over `blocks` (consumed: each is dropped once the index holds it)."""
    index = VectorIndex(dim, params)
    start = 0
    blocks.reverse()  # pop from the end, in the original order
    while blocks:
        block = blocks.pop()
        index.upsert(keys[start : start + block.shape[0]], block)
        start += block.shape[0]
        del block
    if start != keys.shape[0]:
        raise RuntimeError(f"{keys.shape[0]} keys but {start} vectors read")
    return index


class IndexManager:
    """Owns the live `VectorIndex` and its filter columns for one process."""

    def __init__(
        self,
        repo: CatalogStore,
        files: VectorFileStore,
        embedder: Embedder,
        settings: Settings,
        caches: Caches,
        vector_store: VectorStore | None = None,
    ) -> None:
        self.repo = repo
        # Item-level nearest neighbours in the database (pgvector) rather than in the
        # in-memory index; None: the in-memory index answers them too.
        self.vector_store = vector_store
        self.files = files
        self.embedder = embedder
        self.settings = settings
        self.encoder = ItemEncoder(repo, embedder, caches)
        self._lock = threading.RLock()
        self._index: VectorIndex | None = None
        self._lexical = LexicalIndex()
        self._passages: VectorIndex | None = None
        self._owner: np.ndarray = np.empty(0, dtype=np.int64)
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
            kind=index_kind(s, size),
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
    def passages(self) -> VectorIndex | None:
        """The passage index beside the item index (loaded or built with it)."""
        with self._lock:
            _ = self.index
            return self._passages

    @property
    def watermark(self) -> int:
        return self._watermark

    def _load(self) -> None:
        loaded = self.files.load(self.settings.exact_filter_fraction, companions=("pas",))
        companions = self._companions_from(loaded) if loaded is not None else None
        stale_kind = loaded is not None and (
            loaded.index.kind != self._params(len(loaded.index)).kind
            or (
                companions is not None
                and companions[1].kind != self._params(companions[1].positions).kind
            )
        )
        if loaded is None or loaded.model != self.space or stale_kind or companions is None:
            # Missing, for another model or recipe, or the configured index type changed.
            self.rebuild()
            return
        self._index = loaded.index
        self._lexical, self._passages, self._owner = companions
        self._generation += 1
        self._watermark = self._saved_watermark = loaded.watermark
        self._payload = self._payload_for(loaded.index)
        self.sync()
        release_free_heap()  # the deserialisation buffers

    @property
    def space(self) -> str:
        return self.encoder.space

    def _companions_from(
        self, loaded: LoadedIndex
    ) -> tuple[LexicalIndex, VectorIndex, np.ndarray] | None:
        """The keyword and passage indexes saved beside the vectors (None: rebuild)."""
        extra = loaded.extra
        lexical = {k[4:]: v for k, v in extra.items() if k.startswith("lex_")}
        passages = loaded.companions.get("pas")
        if not lexical or passages is None or "owner" not in extra:
            return None
        try:
            return (
                LexicalIndex.from_state(lexical),
                passages,
                np.asarray(extra["owner"], dtype=np.int64).copy(),
            )
        except (ValueError, KeyError):
            return None

    def _payload_for(self, index: VectorIndex) -> PayloadColumns:
        keys = index.key_at(np.arange(index.positions, dtype=np.int64))
        live = [int(k) for k in index.live_keys()]
        attrs: dict[int, ItemAttributes] = {}
        # A slice at a time: the rows carry vectors and texts besides the attributes,
        # and the whole catalog's at once (~110 MB for 36k films) left the heap that
        # much larger for good after they were freed.
        for start in range(0, len(live), PAYLOAD_READ_ROWS):
            rows = self.repo.index_rows(live[start : start + PAYLOAD_READ_ROWS], self.space)
            attrs.update((row.pk, row.attributes) for row in rows)
        gone = [k for k in live if k not in attrs]
        index.remove(np.asarray(gone, dtype=np.int64))
        payload = PayloadColumns(capacity=index.positions)
        payload.append(
            [attrs.get(int(k), _GONE) if index.contains(int(k)) else _GONE for k in keys]
        )
        return payload

    def rebuild(self) -> int:
        """Build every in-memory index from the relational store and save them.

        Rows stream in from the store a batch at a time, and each batch's vectors are
        stacked into one block at once (no per-row arrays kept); each index is then
        filled block by block, each block dropped as soon as the index holds it. A
        full catalog's rebuild once held every vector three times (the per-row
        arrays, the stacked matrix and the index), and it was the peak of an ingest.
        """
        with self._lock:
            watermark = self.repo.last_change()
            rows = self._read_blocks()
            dim = self.embedder.dim
            index = _index_from_blocks(
                np.asarray(rows.keys, dtype=np.int64),
                rows.item_blocks,
                dim,
                self._params(len(rows.keys)),
            )
            passages = _index_from_blocks(
                np.arange(len(rows.owner), dtype=np.int64),
                rows.passage_blocks,
                dim,
                self._params(len(rows.owner)),
            )
            # Each index's plan costs, measured here once per build and saved with it:
            # what the query planner (VectorIndex.plan) weighs exact against HNSW with.
            index.calibrate()
            passages.calibrate()
            payload = PayloadColumns(capacity=len(rows.attrs))
            payload.append(rows.attrs)
            self._index, self._payload, self._watermark = index, payload, watermark
            self._lexical, self._passages = rows.lexical, passages
            self._owner = np.asarray(rows.owner, dtype=np.int64)
            self._generation += 1
            self.save()
            self.sync()
            return len(rows.keys)

    def _read_blocks(self) -> _RowBlocks:
        """Every index row of the store, as one block of item vectors and one of
        passage vectors per batch read, and the keyword and filter columns."""
        out = _RowBlocks()
        for rows in self.repo.iter_index_rows(self.space):
            item_vectors, row_passages = self._vectors_for(rows)
            out.lexical.append([row.lexical for row in rows])
            out.item_blocks.append(np.vstack(item_vectors).astype(np.float32, copy=False))
            flat = [v for pvs in row_passages for v in pvs]
            if flat:
                out.passage_blocks.append(np.vstack(flat).astype(np.float32, copy=False))
            for row, pvs in zip(rows, row_passages, strict=True):
                out.owner.extend([len(out.keys)] * len(pvs))
                out.keys.append(row.pk)
                out.attrs.append(row.attributes)
        return out

    def _vectors_for(self, rows: list[IndexRow]) -> tuple[list[FloatArray], list[list[FloatArray]]]:
        """Item vectors and passage vectors of rows, computing (and storing) any missing."""
        texts = [
            ItemText(row.content_hash, row.passages, row.title_text)
            for row in rows
            if row.vector is None
        ]
        fresh: dict[str, FloatArray] = {}
        known: dict[str, FloatArray] = {}
        if texts:
            encoded = self.encoder.encode(texts)
            self.repo.store_embeddings(self.space, encoded.fresh)
            fresh, known = encoded.items, encoded.passages
        # Rows whose item vector was stored: read their passages (the rest were just read).
        wanted = [p for row in rows for p in row.passages if text_hash(p) not in known]
        known.update(self.encoder.passage_vectors(wanted))
        items = [row.vector if row.vector is not None else fresh[row.content_hash] for row in rows]
        passages = [[known[text_hash(p)] for p in row.passages] for row in rows]
        return items, passages

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
                self._retire([*deletes, *upserts])
                self._index.remove(np.asarray(deletes, dtype=np.int64))
                rows = self.repo.index_rows(upserts, self.space)
                found = {row.pk for row in rows}
                # An upsert followed by a delete in a later batch: the row is gone.
                self._index.remove(np.asarray([pk for pk in upserts if pk not in found]))
                if rows:
                    self._append(rows)
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

    def _retire(self, keys: list[int]) -> None:
        """Retire the keyword entries of items about to be replaced or deleted (their
        passages retire with their item position, see `_passage_mask`)."""
        assert self._index is not None
        positions = self._index.positions_for(np.asarray(keys, dtype=np.int64))
        self._lexical.remove([int(p) for p in positions if p >= 0])

    def _append(self, rows: list[IndexRow]) -> None:
        """Append rows to every index at the same new positions."""
        assert self._index is not None and self._passages is not None
        item_vectors, passage_vectors = self._vectors_for(rows)
        positions = self._index.upsert([row.pk for row in rows], np.vstack(item_vectors))
        self._payload.append([row.attributes for row in rows])
        self._lexical.append([row.lexical for row in rows])
        owners = [int(p) for p, pvs in zip(positions, passage_vectors, strict=True) for _ in pvs]
        flat = [v for pvs in passage_vectors for v in pvs]
        if flat:
            start = self._passages.positions
            self._passages.upsert(np.arange(start, start + len(flat)), np.vstack(flat))
            self._owner = np.concatenate([self._owner, np.asarray(owners, dtype=np.int64)])

    def _maybe_compact(self) -> None:
        assert self._index is not None
        index = self._index
        wanted = self._params(len(index)).kind
        too_many_tombstones = index.tombstones > COMPACT_TOMBSTONE_FRACTION * max(
            index.positions, 1
        )
        dead_passages = (
            self._owner.shape[0] > 0
            and float(np.mean(~index.live_mask()[self._owner])) > COMPACT_TOMBSTONE_FRACTION
        )
        passages = self._passages
        passages_kind = passages is not None and (
            passages.kind != self._params(passages.positions).kind
        )
        if wanted != index.kind or passages_kind or too_many_tombstones or dead_passages:
            self.rebuild()

    def save(self) -> None:
        with self._lock:
            if self._index is None:
                return
            extra: dict[str, np.ndarray] = {"owner": self._owner}
            extra.update({f"lex_{k}": v for k, v in self._lexical.state().items()})
            companions = {"pas": self._passages} if self._passages is not None else {}
            self.files.save(self._index, self._watermark, self.space, extra, companions)
            self._saved_watermark = self._watermark
            self._last_save = time.monotonic()
        release_free_heap()  # the serialised copies were freed, but glibc keeps them

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
            count_vector_plan_current("items", found.plan)
            return found

    def nearest(
        self, query: FloatArray, k: int, flt: AttributeFilter, exclude: Collection[int] = ()
    ) -> list[tuple[int, float]]:
        """The `k` items nearest `query` inside the filter, leaving out `exclude`, best
        first: through the vector store when one is configured, else the index here."""
        if self.vector_store is not None:
            found = self.vector_store.search(query, k + len(exclude), flt)
            return [(pk, score) for pk, score in found if pk not in exclude][:k]
        allowed = self.mask(flt)
        if exclude:
            positions = self.positions_array(np.fromiter(exclude, dtype=np.int64))
            allowed[positions[(positions >= 0) & (positions < allowed.shape[0])]] = False
        hits = self.search(query, k, allowed)
        return list(zip(hits.keys.tolist(), hits.scores.tolist(), strict=True))

    def visible(self, flt: AttributeFilter, keys: list[int]) -> set[int]:
        """Those of `keys` the filter passes, read from the in-memory filter columns
        (microseconds, where asking the store costs a query per call)."""
        if not keys:
            return set()
        with self._lock:
            allowed = np.asarray(self.mask(flt), dtype=bool)
            positions = self.positions_array(np.asarray(keys, dtype=np.int64))
        inside = (positions >= 0) & (positions < allowed.shape[0])
        passing = np.zeros(len(keys), dtype=bool)
        passing[inside] = allowed[positions[inside]]
        return {key for key, ok in zip(keys, passing.tolist(), strict=True) if ok}

    def shares_private(self, flt: AttributeFilter) -> bool:
        """Whether any private item passes `flt` for its viewer (owned or shared with them)."""
        if flt.viewer is None:
            return False
        with self._lock:
            mine = np.asarray(self.mask(flt), dtype=bool)
            public = np.asarray(self.mask(replace(flt, viewer=None)), dtype=bool)
        return bool((mine & ~public).any())

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

    def keyword_search(
        self, query: str, tenant: str, k: int, allowed: np.ndarray | None
    ) -> np.ndarray:
        """Item keys of the top-k allowed positions by BM25."""
        with self._lock:
            index = self.index
            mask = index.live_mask()
            if allowed is not None:
                mask &= self._current(allowed, index.positions)
            started = time.perf_counter()
            hits = self._lexical.search(query, tenant, k, mask)
            observe_current("keyword_search", time.perf_counter() - started)
            return index.key_at(hits.positions)

    def keyword_features(
        self, query: str, tenant: str, keys: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Title BM25, body BM25 and query coverage of given items (0 where none)."""
        with self._lock:
            positions = self.index.positions_for(np.asarray(keys, dtype=np.int64))
            return self._lexical.scores_at(query, tenant, positions)

    def body_lengths(self, tenant: str, keys: list[int]) -> np.ndarray:
        """Log body length of given items relative to the tenant's mean (a prior on
        how well known each is; see `LexicalIndex.body_length_at`)."""
        with self._lock:
            positions = self.index.positions_for(np.asarray(keys, dtype=np.int64))
            return self._lexical.body_length_at(tenant, positions)

    def title_matches(self, title: str, allowed: np.ndarray | None) -> np.ndarray:
        """Item keys whose (alternate) title is `title` (see `LexicalIndex.title_positions`),
        among allowed items."""
        with self._lock:
            index = self.index
            positions = self._lexical.title_positions(title)
            live = index.live_mask()
            if allowed is not None:
                live &= self._current(allowed, index.positions)
            positions = positions[live[positions]] if positions.shape[0] else positions
            return index.key_at(positions)

    def passage_search(
        self, queries: FloatArray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, SearchPlan | None]:
        """Items ranked by their best passage's similarity to any of the query vectors
        (one per query chunk): keys and max-sims, best first, at most k items, and the
        plan the passage index searched by (None: nothing was searched)."""
        with self._lock:
            index = self.index
            passages = self._passages
            if passages is None or passages.positions == 0 or k <= 0:
                return np.empty(0, np.int64), np.empty(0, np.float32), None
            live = index.live_mask()
            if allowed is not None:
                live &= self._current(allowed, index.positions)
            pmask = live[self._owner]
            started = time.perf_counter()
            best: dict[int, float] = {}
            plan: SearchPlan | None = None
            windows = np.atleast_2d(queries)
            # Each window of a long request brings its own best passages; together
            # they need not each fill the whole list (the walk's cost grows with it).
            wanted = max(PASSAGES_PER_ITEM * k // windows.shape[0], k)
            for query in windows:
                found = passages.search(query, wanted, pmask)
                plan = found.plan
                count_vector_plan_current("passages", found.plan)
                for pos, sim in zip(
                    self._owner[found.keys].tolist(), found.scores.tolist(), strict=True
                ):
                    if sim > best.get(pos, -2.0):
                        best[pos] = sim
            observe_current("index_search", time.perf_counter() - started)
            if not best:
                return np.empty(0, np.int64), np.empty(0, np.float32), plan
            pos_arr = np.fromiter(best, dtype=np.int64, count=len(best))
            sims = np.fromiter(best.values(), dtype=np.float32, count=len(best))
            order = np.argsort(-sims, kind="stable")[:k]
            return index.key_at(pos_arr[order]), sims[order], plan

    def passage_similarities(
        self, queries: FloatArray, keys: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per given item, exact: its best passage similarity to any query vector (one
        per query window), and the mean over the windows of its best passage for each
        (how much of a long request the item answers, not just its best part); 0 for
        items not in the index. Vectorised: one gather over the passage owners."""
        with self._lock:
            index = self.index
            windows = np.atleast_2d(queries)
            best = np.zeros(len(keys), dtype=np.float32)
            if self._passages is None or not keys:
                return best, best.copy()
            positions = index.positions_for(np.asarray(keys, dtype=np.int64))
            slot = np.full(index.positions, -1, dtype=np.int64)
            known = positions >= 0
            slot[positions[known]] = np.flatnonzero(known)
            owners = slot[self._owner]
            rows = np.flatnonzero(owners >= 0)
            if rows.shape[0] == 0:
                return best, best.copy()
            sims = (self._passages.vectors()[rows] @ windows.T).astype(np.float32)
        per_window = np.full((len(keys), windows.shape[0]), -2.0, dtype=np.float32)
        np.maximum.at(per_window, owners[rows], sims)
        found = per_window[:, 0] > -2.0
        best = np.where(found, per_window.max(axis=1), 0.0).astype(np.float32)
        covered = np.where(found, per_window.mean(axis=1), 0.0).astype(np.float32)
        return best, covered

    def item_similarities(self, query: FloatArray, keys: list[int]) -> np.ndarray:
        """Cosine of each given item's vector with `query` (0 for unknown items)."""
        with self._lock:
            index = self.index
            positions = index.positions_for(np.asarray(keys, dtype=np.int64))
            out = np.zeros(len(keys), dtype=np.float32)
            known = positions >= 0
            if known.any():
                out[known] = index.vectors()[positions[known]] @ query
            return out

    def ranking_attributes(
        self, keys: list[int], genres: tuple[str, ...]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Years (with release years), share of genres among `genres`, and popularity of
        live items, read from the filter columns (no hydration)."""
        with self._lock:
            positions = self.index.positions_for(np.asarray(keys, dtype=np.int64))
            positions = np.where(positions >= 0, positions, 0)
            return (
                self._payload.years_at(positions),
                self._payload.genre_share_at(positions, genres),
                self._payload.popularity()[positions],
            )

    def genre_labels(self) -> list[str]:
        with self._lock:
            _ = self.index
            return self._payload.labels("genre")

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
        found, matrix = self.vector_matrix(keys)
        return dict(zip(found, matrix, strict=True))

    def vector_matrix(self, keys: list[int]) -> tuple[list[int], FloatArray]:
        """The live ones of `keys` (in the order given) and their stored vectors as the
        rows of one matrix: `vectors_of` without a dict of rows to stack again."""
        with self._lock:
            index = self.index
            wanted = np.asarray(keys, dtype=np.int64)
            positions = index.positions_for(wanted)
            found = positions >= 0
            matrix = index.vectors()[positions[found]]  # fancy indexing copies
            return wanted[found].tolist(), matrix

    def keys_at(self, positions: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.index.key_at(positions)

    # -- consistency --------------------------------------------------------

    def check(self) -> VectorIndexReport:
        """Compare the saved index file with the relational store (without repairing)."""
        loaded = self.files.load(self.settings.exact_filter_fraction)
        last = self.repo.last_change()
        if loaded is None:
            repo_keys = [row.pk for rows in self.repo.iter_index_rows(self.space) for row in rows]
            return VectorIndexReport("absent", 0, missing=repo_keys, pending_changes=last)
        index = loaded.index
        in_index = {int(k) for k in index.live_keys()}
        report = VectorIndexReport(index.kind, len(index), pending_changes=last - loaded.watermark)
        vectors = index.vectors()
        seen: set[int] = set()
        for rows in self.repo.iter_index_rows(self.space):
            for row in rows:
                seen.add(row.pk)
                pos = index.position_of(row.pk)
                if pos is None:
                    report.missing.append(row.pk)
                elif row.vector is None or float(vectors[pos] @ row.vector) < 0.999:
                    report.stale.append(row.pk)
        report.orphaned = sorted(in_index - seen)
        return report
