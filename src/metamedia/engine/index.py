"""Approximate and exact nearest-neighbour search behind one interface.

Vectors live in a faiss index addressed by *position* (append-only). Keys (the
relational store's integer primary keys) map to positions; an update appends
a new position and tombstones the old one, because faiss HNSW cannot delete.
Tombstones and caller filters become one boolean mask that is applied inside
retrieval, by one of three plans, chosen per query by estimated cost
(`PlanCosts`, measured on this machine by `VectorIndex.calibrate` and saved
with the index):

- "exact": inner products over just the allowed rows. Its cost grows with the
  number of allowed rows;
- "graph": the HNSW walk at the index's `efSearch`, for an unfiltered search;
- "graph_wide": the HNSW walk with an `IDSelectorBitmap`, with `efSearch` raised
  by 1 / sqrt(fraction allowed). The walk still steps through rejected nodes,
  but the candidates that pass lie among near neighbours of the ones it keeps,
  so on the 36k catalog recall@10 at a fixed efSearch fell far slower than the
  fraction: efSearch for recall 0.95 was ~190 at 50-70% of the rows, ~250 at
  20-30% and ~380 at 10% (perturbed catalog vectors as queries), which
  1 / sqrt(fraction) times 128 tracks; 1 / fraction (the rule until 2026-12)
  walked 2-3x further for the same recall. Its cost grows with 1 / sqrt(fraction).

So under a 9% filter the exact plan (a few thousand rows) wins, unfiltered the
graph does, and the crossover sits wherever this machine's constants put it. If
a graph walk still returns fewer than `k` hits while more than `k` positions are
allowed, the search falls back to exact over the allowed rows, so a selective
filter fills `k` whenever `k` items pass it. A flat index is always exact.

The "hnsw_sq8" kind is for large catalogs: the graph walks over 8-bit scalar-
quantised codes (a quarter of the float bytes), and its top `rescore_factor * k`
candidates (at least `rescore_min`) are re-scored exactly from the float32 rows,
which the index keeps beside the graph in a `FloatRows` (for a loaded index, a
read-only mapping of the storage layer's sidecar file plus an in-RAM tail). The
exact plan and the fallbacks read those float rows too, so every score returned is
an exact inner product.

The "hnsw_fp16" kind halves the float bytes without re-scoring: faiss stores each
vector as float16 (relative error ~1e-3, far below the gaps that order results), and
the graph walk, the exact plan and `vectors()` all read those codes; `vectors()` is a
`FloatRows` over a zero-copy float16 view of them that hands out float32 rows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Literal

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from metamedia.engine.float_rows import FloatRows
from metamedia.engine.vectors import FloatArray, as_matrix, as_query, top_k

# faiss's bundled SWIG stubs miss most of its API (selectors, HNSW parameters).
faiss: Any = _faiss

IndexKind = Literal["flat", "hnsw", "hnsw_sq8", "hnsw_fp16"]
KIND_FLAGS: dict[IndexKind, int] = {"flat": 0, "hnsw": 1, "hnsw_sq8": 2, "hnsw_fp16": 3}
SearchPlan = Literal["exact", "graph", "graph_wide"]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


# The 8-bit quantiser's per-dimension range: the training sample's min..max widened by
# this share of it on each side, so later vectors slightly outside still encode
# (values beyond it are clamped, which only blurs the walk: scores are re-scored).
# Fewer training rows than SQ_MIN_TRAIN_ROWS: the whole [-1, 1] range of unit vectors.
SQ_RANGE_MARGIN = 0.2
SQ_MIN_TRAIN_ROWS = 1_000
SQ_MAX_TRAIN_ROWS = 100_000


@dataclass(frozen=True)
class IndexParams:
    kind: IndexKind = "flat"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 96
    exact_fraction: float = 0.05
    max_ef_search: int = 2048
    search_threads: int = 1
    rescore_factor: int = 4  # hnsw_sq8: candidates re-scored exactly per result wanted
    rescore_min: int = 40  # hnsw_sq8: at least this many candidates re-scored


# Indexes saved before the scan costs existed hold the first five fields.
LEGACY_COST_FIELDS = 5


@dataclass(frozen=True)
class PlanCosts:
    """Microseconds per unit of work of each plan, on the machine that measured them.

    The defaults were measured on the 2-core machine of `python -m bench engine`
    (36k MiniLM vectors, 384-d, HNSW M=32, one thread); `VectorIndex.calibrate`
    measures them again for the machine and index at hand.
    """

    exact_fixed_us: float = 5.0  # set-up and top-k selection
    exact_per_row_us: float = 0.13  # gather one allowed row and take its inner product
    mask_per_position_us: float = 0.0004  # find the allowed rows in the mask
    graph_fixed_us: float = 80.0
    graph_per_ef_us: float = 1.5  # the HNSW walk, per unit of efSearch
    # The other exact way: faiss scans its flat storage in place with the mask as a
    # bitmap, testing every position and scoring the allowed ones. No copy, so it
    # wins over gathering once many rows pass. (Files from before these two fields
    # read the defaults.)
    scan_per_position_us: float = 0.002
    scan_per_row_us: float = 0.05

    def as_array(self) -> npt.NDArray[np.float64]:
        return np.array([getattr(self, f.name) for f in fields(self)], dtype=np.float64)

    @classmethod
    def from_array(cls, values: npt.NDArray[np.generic]) -> PlanCosts:
        names = [f.name for f in fields(cls)]
        floats = [float(v) for v in np.asarray(values, dtype=np.float64).tolist()]
        if len(floats) not in (LEGACY_COST_FIELDS, len(names)) or not all(v >= 0 for v in floats):
            raise ValueError(f"plan costs need {len(names)} non-negative numbers")
        return cls(**dict(zip(names, floats, strict=False)))


@dataclass(frozen=True)
class Neighbours:
    """Search result: keys (relational ids), their similarities, best first, and the
    plan that found them."""

    keys: IntArray
    scores: FloatArray
    exact: bool
    plan: SearchPlan = "exact"


class VectorIndex:
    """Inner-product index over unit vectors with keyed upsert and masked search."""

    def __init__(self, dim: int, params: IndexParams | None = None) -> None:
        self.dim = dim
        self.params = params or IndexParams()
        self._index = self._new_faiss_index()
        self._keys: IntArray = np.empty(0, dtype=np.int64)
        self._live: BoolArray = np.empty(0, dtype=np.bool_)
        self._position: dict[int, int] = {}
        self._sorted: tuple[IntArray, IntArray] | None = None
        # hnsw_sq8 only: the exact rows beside the quantised graph.
        self._floats: FloatRows | None = FloatRows(dim) if self.kind == "hnsw_sq8" else None
        # The view `vectors()` hands out, made once per size (an add may move faiss's
        # storage, so `upsert` drops it). Making it costs a chain of SWIG calls, a
        # sizeable share of a 0.1% filter's exact search.
        self._view: FloatArray | FloatRows | None = None
        self.costs = PlanCosts()

    # -- construction -------------------------------------------------------

    def _new_faiss_index(self) -> faiss.Index:
        if self.params.kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        if self.params.kind in ("hnsw_sq8", "hnsw_fp16"):
            # float16 codes need no training (faiss marks the index trained).
            quantiser = (
                faiss.ScalarQuantizer.QT_8bit
                if self.params.kind == "hnsw_sq8"
                else faiss.ScalarQuantizer.QT_fp16
            )
            index = faiss.IndexHNSWSQ(
                self.dim, quantiser, self.params.hnsw_m, faiss.METRIC_INNER_PRODUCT
            )
        else:
            index = faiss.IndexHNSWFlat(self.dim, self.params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.params.ef_construction
        index.hnsw.efSearch = self.params.ef_search
        return index

    def _train(self, matrix: FloatArray) -> None:
        """Fit the 8-bit quantiser's per-dimension range (hnsw_sq8, before the first add).

        On a sample of the first rows, widened by `SQ_RANGE_MARGIN`; too few rows to
        trust a sample take the whole range unit vectors can span.
        """
        storage = faiss.downcast_index(self._index.storage)
        if matrix.shape[0] < SQ_MIN_TRAIN_ROWS:
            bounds = np.concatenate([np.full(self.dim, -1.0), np.full(self.dim, 2.0)]).astype(
                np.float32
            )
            faiss.copy_array_to_vector(bounds, storage.sq.trained)
            storage.is_trained = True
            self._index.is_trained = True
            return
        sample = matrix
        if matrix.shape[0] > SQ_MAX_TRAIN_ROWS:
            rng = np.random.default_rng(0)
            picked = np.sort(rng.choice(matrix.shape[0], SQ_MAX_TRAIN_ROWS, replace=False))
            sample = np.ascontiguousarray(matrix[picked])
        storage.sq.rangestat = faiss.ScalarQuantizer.RS_minmax
        storage.sq.rangestat_arg = SQ_RANGE_MARGIN
        self._index.train(sample)

    @property
    def kind(self) -> IndexKind:
        return self.params.kind

    def __len__(self) -> int:
        """Number of live (searchable) vectors."""
        return len(self._position)

    @property
    def positions(self) -> int:
        """Allocated positions, live or tombstoned."""
        return int(self._keys.shape[0])

    @property
    def tombstones(self) -> int:
        return self.positions - len(self)

    def live_keys(self) -> IntArray:
        """Live keys in position order."""
        return self._keys[self._live]

    def live_mask(self) -> BoolArray:
        """A copy of the live flags by position: masks over positions also cover tombstones."""
        return self._live.copy()

    def contains(self, key: int) -> bool:
        return int(key) in self._position

    def position_of(self, key: int) -> int | None:
        return self._position.get(int(key))

    def positions_for(self, keys: npt.ArrayLike) -> IntArray:
        """Vectorised key -> position lookup; -1 where a key is not live."""
        if self._sorted is None:
            live = np.flatnonzero(self._live)
            order = np.argsort(self._keys[live], kind="stable")
            self._sorted = (self._keys[live][order], live[order].astype(np.int64))
        sorted_keys, sorted_pos = self._sorted
        wanted = np.asarray(keys, dtype=np.int64).reshape(-1)
        if sorted_keys.shape[0] == 0:
            return np.full(wanted.shape[0], -1, dtype=np.int64)
        idx = np.clip(np.searchsorted(sorted_keys, wanted), 0, sorted_keys.shape[0] - 1)
        return np.where(sorted_keys[idx] == wanted, sorted_pos[idx], -1).astype(np.int64)

    def key_at(self, positions: IntArray) -> IntArray:
        return self._keys[positions]

    def upsert(self, keys: npt.ArrayLike, vectors: npt.ArrayLike) -> IntArray:
        """Add or replace vectors; returns the new positions (one per key)."""
        key_arr = np.asarray(keys, dtype=np.int64).reshape(-1)
        matrix = as_matrix(vectors, self.dim)
        if matrix.shape[0] != key_arr.shape[0]:
            raise ValueError(f"{key_arr.shape[0]} keys but {matrix.shape[0]} vectors")
        if len(set(key_arr.tolist())) != key_arr.shape[0]:
            raise ValueError("duplicate keys in one upsert")
        self.remove(key_arr)
        self._sorted = None
        start = self.positions
        if self._floats is not None and not self._index.is_trained:
            self._train(matrix)
        self._index.add(matrix)
        self._view = None
        if self._floats is not None:
            self._floats.append(matrix)
        new_positions = np.arange(start, start + key_arr.shape[0], dtype=np.int64)
        self._keys = np.concatenate([self._keys, key_arr])
        self._live = np.concatenate([self._live, np.ones(key_arr.shape[0], dtype=np.bool_)])
        for key, pos in zip(key_arr.tolist(), new_positions.tolist(), strict=True):
            self._position[key] = pos
        return new_positions

    def remove(self, keys: npt.ArrayLike) -> int:
        """Tombstone keys; unknown keys are ignored. Returns how many were removed."""
        removed = 0
        for key in np.asarray(keys, dtype=np.int64).reshape(-1).tolist():
            pos = self._position.pop(key, None)
            if pos is not None:
                self._live[pos] = False
                removed += 1
        if removed:
            self._sorted = None
        return removed

    def vectors(self) -> FloatArray | FloatRows:
        """Every stored vector, by position (live or not): a zero-copy view of faiss's
        storage, for hnsw_sq8 the float rows beside the graph, for hnsw_fp16 a
        `FloatRows` over a float16 view of faiss's codes (index it like an array:
        `vectors()[positions]` copies just those rows, as float32). An add may move
        faiss's storage, so do not keep the view across upserts."""
        if self._floats is not None:
            return self._floats
        if self._view is None:  # dropped by every upsert
            self._view = self._storage_view()
        return self._view

    def _storage_view(self) -> FloatArray | FloatRows:
        n = self.positions
        if n == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        if self.kind == "hnsw_fp16":
            codes = faiss.downcast_index(self._index.storage).codes
            raw = np.asarray(faiss.rev_swig_ptr(codes.data(), n * self.dim * 2), dtype=np.uint8)
            halves = raw.view(np.float16).reshape(n, self.dim)
            halves.flags.writeable = False
            return FloatRows(self.dim, halves)
        flat = self._index if self.kind == "flat" else faiss.downcast_index(self._index.storage)
        view = faiss.rev_swig_ptr(flat.get_xb(), n * self.dim)
        return np.asarray(view, dtype=np.float32).reshape(n, self.dim)

    def vector_of(self, key: int) -> FloatArray | None:
        pos = self.position_of(key)
        return None if pos is None else np.array(self.vectors()[pos], dtype=np.float32)

    @property
    def float_rows(self) -> FloatRows | None:
        """The exact rows kept beside a compressed graph (hnsw_sq8), else None: faiss's
        own storage holds them and `state()` carries them."""
        return self._floats

    # -- search -------------------------------------------------------------

    def search(self, query: npt.ArrayLike, k: int, allowed: BoolArray | None = None) -> Neighbours:
        """Top-k live vectors by inner product, restricted to `allowed` positions.

        `allowed` is a boolean mask over positions (length `self.positions`);
        None means every live vector.
        """
        vec = as_query(query, self.dim)
        n = self.positions
        if k <= 0 or n == 0:
            return _empty()
        if allowed is not None and allowed.shape[0] != n:
            raise ValueError(f"mask has {allowed.shape[0]} entries for {n} positions")
        # Without tombstones the caller's mask is the mask (no copy); count_nonzero is
        # several times cheaper than sum on booleans. A 0.1% filter's whole search is
        # tens of microseconds, so these are a large share of it.
        live_only = self.tombstones == 0
        mask = self._live if allowed is None else (allowed if live_only else self._live & allowed)
        n_allowed = int(np.count_nonzero(mask)) if (allowed is not None or not live_only) else n
        if n_allowed == 0:
            return _empty()
        k = min(k, n_allowed)
        plan, ef = self.plan(n_allowed, k)
        if plan == "exact":
            return self._exact_subset(vec, k, mask, n_allowed)
        everything = n_allowed == n
        result = self._faiss_search(vec[None], k, None if everything else mask, ef, plan)
        if result.keys.shape[0] < k:
            return self._exact_subset(vec, k, mask, n_allowed)
        return result

    def plan(self, n_allowed: int, k: int) -> tuple[SearchPlan, int]:
        """The cheapest plan for a search passing `n_allowed` of the positions, by the
        index's measured costs, and the efSearch a graph plan would use.

        A flat index, or a filter passing at most `exact_fraction` of the positions
        (or 4k rows), is always exact: an operator's floor under the estimate.
        """
        n = max(self.positions, 1)
        fraction = n_allowed / n
        ef = self._ef_for(k, fraction)
        if self.kind == "flat" or n_allowed <= max(4 * k, self.params.exact_fraction * n):
            return "exact", ef
        c = self.costs
        exact = min(self._exact_costs(n_allowed))
        graph = c.graph_fixed_us + c.graph_per_ef_us * ef
        if n_allowed < n:
            graph += c.mask_per_position_us * n  # the bitmap is packed from the mask
        if exact <= graph:
            return "exact", ef
        return ("graph" if n_allowed == n else "graph_wide"), ef

    def _exact_costs(self, n_allowed: int) -> tuple[float, float]:
        """Estimated microseconds of the two exact ways, gathering the allowed rows
        and scanning faiss's storage in place (infinite where there is no such scan:
        a compressed index's float rows live outside faiss)."""
        c, n = self.costs, self.positions
        gather = c.exact_fixed_us + c.mask_per_position_us * n + c.exact_per_row_us * n_allowed
        if self._floats is not None:
            return gather, float("inf")
        scan = c.exact_fixed_us + c.scan_per_position_us * n + c.scan_per_row_us * n_allowed
        return gather, scan

    def _ef_for(self, k: int, fraction: float) -> int:
        # A deep list (hybrid search asks the passage index for 600) needs k plus a
        # margin, not 2k: its tail is re-scored exactly by the ranker anyway, and
        # efSearch 2k doubled the walk of every search for it.
        ef = max(self.params.ef_search, min(2 * k, k + self.params.ef_search))
        if fraction < 1.0:
            ef = int(min(self.params.max_ef_search, ef / math.sqrt(max(fraction, 1e-6))))
        return max(ef, k)

    def calibrate(self, samples: int = 24, seed: int = 0) -> PlanCosts:
        """Measure this machine's plan costs on this index's own vectors and keep them.

        Queries are stored vectors. Each way of searching is timed at two sizes and
        its cost is the slope and intercept through the medians: the gathering exact
        plan over ~0.2% and ~5% of the rows, faiss's in-place scan over 1% and 20%,
        and the graph walk at two efSearch values. Takes ~0.1-0.5 s on 36k vectors.
        Too small an index to measure keeps the defaults.
        """
        n = self.positions
        if self.kind == "flat" or len(self) < 1_000:
            return self.costs
        rng = np.random.default_rng(seed)
        queries = np.array(self.vectors()[rng.choice(n, size=samples, replace=n < samples)])

        def median_us(run: Any) -> float:
            times = []
            for q in queries:
                started = time.perf_counter()
                run(q)
                times.append(time.perf_counter() - started)
            return float(np.median(times)) * 1e6

        def masked(rows: int) -> BoolArray:
            mask = np.zeros(n, dtype=np.bool_)
            mask[rng.choice(n, size=min(rows, n), replace=False)] = True
            return mask

        def slope(sizes: tuple[int, int], run: Any, floor: float) -> tuple[float, float]:
            """(per unit, intercept) of `run(q, size)` through its two sizes."""
            timed = [median_us(lambda q, s=size: run(q, s)) for size in sizes]
            per = max((timed[1] - timed[0]) / (sizes[1] - sizes[0]), floor)
            return per, max(timed[0] - per * sizes[0], 0.0)

        full = np.ones(n, dtype=np.bool_)
        mask_per_position = median_us(lambda q: np.flatnonzero(full)) / n
        masks = {rows: masked(rows) for rows in (max(n // 500, 20), max(n // 20, 200))}
        per_row, gather_fixed = slope(
            (min(masks), max(masks)),
            lambda q, rows: self._gather_exact(q, 10, np.flatnonzero(masks[rows])),
            1e-4,
        )
        scan_masks = {rows: masked(rows) for rows in (max(n // 100, 50), max(n // 5, 500))}
        scan_per_row, scan_fixed = slope(
            (min(scan_masks), max(scan_masks)),
            lambda q, rows: self._scan_exact(q, 10, scan_masks[rows]),
            1e-4,
        )
        base = max(self.params.ef_search, 20)
        per_ef, graph_fixed = slope(
            (base, 4 * base),
            lambda q, ef: self._faiss_search(q[None], 10, None, ef, "graph"),
            1e-3,
        )
        exact_fixed = max(gather_fixed - mask_per_position * n, 0.0)
        self.costs = PlanCosts(
            exact_fixed_us=exact_fixed,
            exact_per_row_us=per_row,
            mask_per_position_us=mask_per_position,
            graph_fixed_us=graph_fixed,
            graph_per_ef_us=per_ef,
            scan_per_position_us=max(scan_fixed - exact_fixed, 0.0) / n,
            scan_per_row_us=scan_per_row,
        )
        return self.costs

    def _faiss_search(
        self, q: FloatArray, k: int, mask: BoolArray | None, ef: int, plan: SearchPlan
    ) -> Neighbours:
        params: faiss.SearchParameters | None = None
        if self._floats is not None:
            return self._rescored_search(q, k, mask, ef, plan, self._floats)
        if self.kind != "flat":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(ef, k)
        return self._run_faiss(self._index, q, k, mask, params, plan)

    def _rescored_search(
        self,
        q: FloatArray,
        k: int,
        mask: BoolArray | None,
        ef: int,
        plan: SearchPlan,
        floats: FloatRows,
    ) -> Neighbours:
        """The quantised walk's top candidates, re-scored exactly from the float rows."""
        wanted = max(k * self.params.rescore_factor, self.params.rescore_min, k)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(ef, wanted)
        bitmap: npt.NDArray[np.uint8] | None = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(mask.shape[0], faiss.swig_ptr(bitmap))
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(self.params.search_threads)
        try:
            _, positions = self._index.search(q, wanted, params=params)
        finally:
            faiss.omp_set_num_threads(previous)
        del bitmap
        found = positions[0][positions[0] >= 0].astype(np.int64)
        sims = (floats.take(found) @ q[0]).astype(np.float32)
        best = top_k(sims, k)
        return Neighbours(self._keys[found[best]], sims[best], False, plan)

    def _run_faiss(
        self,
        index: faiss.Index,
        q: FloatArray,
        k: int,
        mask: BoolArray | None,
        params: faiss.SearchParameters | None,
        plan: SearchPlan,
    ) -> Neighbours:
        bitmap: npt.NDArray[np.uint8] | None = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            params = params if params is not None else faiss.SearchParameters()
            params.sel = faiss.IDSelectorBitmap(mask.shape[0], faiss.swig_ptr(bitmap))
        # One thread per query: a single-query search is too small to split, and
        # OpenMP threads spinning against concurrent requests cost more than they save.
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(self.params.search_threads)
        try:
            scores, positions = index.search(q, k, params=params)
        finally:
            faiss.omp_set_num_threads(previous)
        del bitmap  # the selector reads it during search only
        valid = positions[0] >= 0
        pos = positions[0][valid].astype(np.int64)
        flat = self.kind == "flat" or plan == "exact"
        return Neighbours(
            self._keys[pos], scores[0][valid].astype(np.float32), flat, "exact" if flat else plan
        )

    def _exact_subset(
        self, query: FloatArray, k: int, mask: BoolArray, n_allowed: int | None = None
    ) -> Neighbours:
        """Exact top-k over the allowed rows, the cheaper of two ways by the measured
        costs: gather the allowed rows and multiply in numpy (cheap for few rows), or
        let faiss scan its flat storage in place with the mask as a bitmap, which
        tests every position but copies no row (gathering 3,000 rows copied 4.6 MB
        per query)."""
        allowed = int(np.count_nonzero(mask)) if n_allowed is None else n_allowed
        gather, scan = self._exact_costs(allowed)
        if scan < gather:
            return self._scan_exact(query, k, None if allowed == mask.shape[0] else mask)
        return self._gather_exact(query, k, np.flatnonzero(mask))

    def _gather_exact(self, query: FloatArray, k: int, positions: IntArray) -> Neighbours:
        if self._floats is not None:
            q32 = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
            found, sims = self._floats.dot_top(q32, k, positions)
            return Neighbours(self._keys[found], sims, True)
        rows = self.vectors()
        sims = (
            rows.dot(positions, query) if isinstance(rows, FloatRows) else rows[positions] @ query
        )
        best = top_k(sims, k)
        return Neighbours(self._keys[positions[best]], sims[best], True)

    def _scan_exact(self, query: FloatArray, k: int, mask: BoolArray | None) -> Neighbours:
        """faiss's flat storage scanned in place; `mask` None scores every position."""
        storage = self._index if self.kind == "flat" else self._index.storage
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        return self._run_faiss(storage, q, k, mask, None, "exact")

    def exact_search(
        self, query: npt.ArrayLike, k: int, allowed: BoolArray | None = None
    ) -> Neighbours:
        """Brute-force ground truth over live (and allowed) vectors."""
        mask = self._live if allowed is None else (self._live & allowed)
        if k <= 0 or not mask.any():
            return _empty()
        return self._exact_subset(as_query(query, self.dim), k, mask)

    # -- state for persistence (the storage layer writes it) ----------------

    def state(self, *, graph: bool = True) -> dict[str, npt.NDArray[np.generic]]:
        """Arrays that rebuild the index, except an hnsw_sq8 index's float rows: the
        storage layer keeps those in a file of their own (`float_rows`) and hands them
        back to `from_state`. `graph=False` leaves out the serialised faiss index
        ("faiss"), for a caller that streams it with `write_graph` instead."""
        arrays = {
            "keys": self._keys,
            "live": self._live,
            "params": np.array(
                [
                    KIND_FLAGS[self.kind],
                    self.params.hnsw_m,
                    self.params.ef_construction,
                    self.params.ef_search,
                    self.dim,
                ],
                dtype=np.int64,
            ),
            "plan_costs": self.costs.as_array(),
            "rescore": np.array(
                [self.params.rescore_factor, self.params.rescore_min], dtype=np.int64
            ),
        }
        if graph:
            arrays["faiss"] = faiss.serialize_index(self._index)
        return arrays

    def write_graph(self, sink: Callable[[bytes], object]) -> None:
        """The serialised faiss index (what `state()["faiss"]` holds), handed to
        `sink` a chunk at a time instead of built in memory."""
        writer = faiss.PyCallbackIOWriter(sink)
        try:
            faiss.write_index(self._index, writer)
        finally:
            del writer  # flushes its last chunk

    def graph_bytes(self) -> int:
        """The length of `write_graph`'s output (one pass that only counts)."""
        total = 0

        def count(chunk: bytes) -> None:
            nonlocal total
            total += len(chunk)

        self.write_graph(count)
        return total

    @classmethod
    def from_state(
        cls,
        state: dict[str, npt.NDArray[np.generic]],
        exact_fraction: float = 0.05,
        floats: FloatRows | npt.NDArray[np.float32] | None = None,
    ) -> VectorIndex:
        """The index `state()` described. An hnsw_sq8 index needs its float rows as
        `floats`: a `FloatRows`, or any (n, dim) float32 array (e.g. a read-only file
        mapping), used in place as the base of one."""
        kind_flag, m, efc, efs, dim = (int(x) for x in state["params"].tolist())
        kinds = {flag: kind for kind, flag in KIND_FLAGS.items()}
        if kind_flag not in kinds:
            raise ValueError(f"unknown index kind flag {kind_flag}")
        rescore = [int(x) for x in state["rescore"].tolist()] if "rescore" in state else [4, 40]
        params = IndexParams(
            kind=kinds[kind_flag],
            hnsw_m=m,
            ef_construction=efc,
            ef_search=efs,
            exact_fraction=exact_fraction,
            rescore_factor=rescore[0],
            rescore_min=rescore[1],
        )
        index = cls(dim, params)
        index._index = faiss.deserialize_index(np.asarray(state["faiss"], dtype=np.uint8))
        if params.kind == "hnsw_sq8":
            if floats is None or floats.shape != (index._index.ntotal, dim):
                got = None if floats is None else floats.shape
                raise ValueError(f"hnsw_sq8 index of {index._index.ntotal} rows given floats {got}")
            index._floats = floats if isinstance(floats, FloatRows) else FloatRows(dim, floats)
        index._keys = np.asarray(state["keys"], dtype=np.int64).copy()
        index._live = np.asarray(state["live"], dtype=np.bool_).copy()
        if index._index.ntotal != index._keys.shape[0]:
            raise ValueError(
                f"index holds {index._index.ntotal} vectors but {index._keys.shape[0]} keys"
            )
        index._position = {
            int(k): int(p) for p, k in enumerate(index._keys.tolist()) if index._live[p]
        }
        if "plan_costs" in state:  # files written before the planner keep the defaults
            index.costs = PlanCosts.from_array(state["plan_costs"])
        return index


def _empty() -> Neighbours:
    return Neighbours(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32), True)
