"""k=10 vector search: numpy brute force vs faiss flat vs HNSW, on real and 1M vectors.

Everything is timed single-threaded (faiss OpenMP and BLAS pinned to one
thread), query by query, through the product's `VectorIndex`, because that is
how a request is served. Recall@10 is measured against exact top-10 computed
in blocks with numpy, which is also cross-checked against numpy brute force.

The 1M set is built from the real MiniLM embeddings, never uniform random
(uniform vectors in 384 dimensions have no neighbourhood structure; no ANN
reaches useful recall on them). Each synthetic vector blends a real vector with
a second one (weight U(0, 0.5)), adds a little gaussian noise and is
unit-normalised: that keeps query similarities like the real catalog's (top-1
cosine ~0.55, top-10 ~0.5). Plain "real + N(0, 0.06^2) per dim" was tried and
rejected: in 384 dims that noise has norm ~1.2, larger than the signal, so the
set behaves like random data (HNSW recall 0.93 even at efSearch 256 on 200k).
Queries are real TOMT query embeddings, out-of-sample for both sets.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from bench.report import Metric, fmt
from bench.timing import Stopwatch, summarize
from metamedia.config import Settings
from metamedia.engine.embed import Embedder
from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.engine.vectors import FloatArray
from metamedia.services.runtime import Runtime

faiss: Any = _faiss  # faiss's SWIG stubs miss omp_set_num_threads and HNSW fields

IntArray = npt.NDArray[np.int64]
K = 10
RECALL_TARGET = 0.95
P95_TARGET_MS = 1.0


@dataclass
class AnnRow:
    """One (dataset, method, parameters) measurement."""

    dataset: str
    n: int
    method: str
    m: int | None = None
    ef_search: int | None = None
    recall: float = float("nan")
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    p99_ms: float = float("nan")
    cpu_p50_ms: float = float("nan")
    cpu_p95_ms: float = float("nan")
    queries: int = 0
    build_s: float | None = None


@dataclass(frozen=True)
class SyntheticRecipe:
    """How the large set is derived from real vectors (recorded with the results)."""

    sigma: float = 0.02
    mix: float = 0.5  # > 0: blend in a second real vector with weight U(0, mix)
    seed: int = 7

    def describe(self) -> str:
        base = "real vector"
        if self.mix > 0:
            base += f" blended with a 2nd at weight U(0, {self.mix})"
        return f"{base} + N(0, {self.sigma}^2) per dim, unit-normalised"


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Pin faiss OpenMP and BLAS to one thread for per-query timing."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy may then use several BLAS threads; noted in the report
        limiter: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    else:
        limiter = threadpool_limits(limits=1)
    try:
        with limiter:
            yield
    finally:
        faiss.omp_set_num_threads(previous)


def real_vectors(data_dir: Path) -> FloatArray:
    """Distinct stored vectors of the catalog (duplicated texts would tie in recall)."""
    runtime = Runtime.open(Settings(data_dir=data_dir))
    try:
        seen: dict[str, FloatArray] = {}
        for rows in runtime.repo.iter_index_rows(runtime.embedder.name):
            for row in rows:
                if row.vector is not None:
                    seen.setdefault(row.content_hash, row.vector)
    finally:
        runtime.close()
    return np.ascontiguousarray(np.vstack(list(seen.values())), dtype=np.float32)


def query_vectors(embedder: Embedder, texts: list[str]) -> FloatArray:
    return np.ascontiguousarray(embedder.encode(texts), dtype=np.float32)


def synthetic(base: FloatArray, n: int, recipe: SyntheticRecipe) -> FloatArray:
    """`n` unit vectors near the real manifold, generated in chunks (no float64 copy)."""
    rng = np.random.default_rng(recipe.seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    chunk = 50_000
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        block = base[rng.integers(0, base.shape[0], size)]
        if recipe.mix > 0:
            weight = rng.uniform(0.0, recipe.mix, size=(size, 1)).astype(np.float32)
            other = base[rng.integers(0, base.shape[0], size)]
            block = (1.0 - weight) * block + weight * other
        block += recipe.sigma * rng.standard_normal(block.shape, dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + size] = block
    return out


def exact_top_k(matrix: FloatArray, queries: FloatArray, k: int = K) -> IntArray:
    """Exact top-k row indices per query, by blocked GEMM (bounded memory, all cores)."""
    nq = queries.shape[0]
    best_s = np.full((nq, k), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, k), dtype=np.int64)
    block = 65_536
    for start in range(0, matrix.shape[0], block):
        scores = queries @ matrix[start : start + block].T
        kk = min(k, scores.shape[1])
        idx = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        all_s = np.concatenate([best_s, np.take_along_axis(scores, idx, 1)], axis=1)
        all_i = np.concatenate([best_i, idx + start], axis=1)
        order = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(all_s, order, 1)
        best_i = np.take_along_axis(all_i, order, 1)
    return best_i


def numpy_top_k(matrix: FloatArray, q: FloatArray, k: int = K) -> IntArray:
    """The brute-force baseline: one GEMV and an argpartition."""
    scores = matrix @ q
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part])].astype(np.int64)


def recall_at_k(found: IntArray, truth: IntArray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


@dataclass
class Timed:
    """Per-query wall and on-CPU time (ms) and the (nq, K) result ids."""

    wall_ms: list[float]
    cpu_ms: list[float]
    found: IntArray


def time_queries(
    search: Callable[[FloatArray], IntArray], queries: FloatArray, warmup: int = 20
) -> Timed:
    """Wall time is what a caller waits; this thread's CPU time excludes preemption.

    On a shared machine the wall-clock tail is mostly other processes; the CPU
    time shows what the search itself costs (single-threaded, so it runs on
    this thread).
    """
    for q in queries[:warmup]:
        search(q)
    found = np.full((queries.shape[0], K), -1, dtype=np.int64)
    wall: list[float] = []
    cpu: list[float] = []
    for i, q in enumerate(queries):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        ids = search(q)
        cpu.append((time.thread_time_ns() - start_cpu) / 1e6)
        wall.append((time.perf_counter_ns() - start) / 1e6)
        found[i, : ids.shape[0]] = ids[:K]
    return Timed(wall, cpu, found)


def _row(dataset: str, n: int, method: str, timed: Timed, truth: IntArray) -> AnnRow:
    s, c = summarize(timed.wall_ms), summarize(timed.cpu_ms)
    recall = recall_at_k(timed.found, truth[: timed.found.shape[0]])
    return AnnRow(
        dataset,
        n,
        method,
        recall=recall,
        p50_ms=s.p50,
        p95_ms=s.p95,
        p99_ms=s.p99,
        cpu_p50_ms=c.p50,
        cpu_p95_ms=c.p95,
        queries=s.n,
    )


def bench_dataset(
    dataset: str,
    make_vectors: Callable[[], FloatArray],
    queries: FloatArray,
    ms: list[int],
    efs: list[int],
    exact_reps: int = 5,
) -> list[AnnRow]:
    """All methods on one vector set.

    Takes a factory so that the only long-lived copy of a large set is the
    flat index's storage (which numpy brute force and the HNSW build then read).
    """
    vectors = make_vectors()
    n, dim = vectors.shape
    keys = np.arange(n, dtype=np.int64)
    rows: list[AnnRow] = []
    flat = VectorIndex(dim, IndexParams(kind="flat"))
    with Stopwatch() as sw:
        flat.upsert(keys, vectors)
    del vectors
    gc.collect()
    matrix = np.asarray(flat.vectors())  # a flat index: a zero-copy view of faiss storage
    truth = exact_top_k(matrix, queries)

    with single_thread():
        timed = time_queries(lambda q: numpy_top_k(matrix, q), queries)
        rows.append(_row(dataset, n, "numpy brute force", timed, truth))
        flat_row = _row(
            dataset, n, "flat VectorIndex.search", time_queries(_searcher(flat), queries), truth
        )
        flat_row.build_s = sw.seconds
        rows.append(flat_row)
        few = queries[:exact_reps]
        timed = time_queries(lambda q: flat.exact_search(q, K).keys, few, warmup=1)
        rows.append(_row(dataset, n, "VectorIndex.exact_search", timed, truth))

    for m in ms:
        hnsw = VectorIndex(dim, IndexParams(kind="hnsw", hnsw_m=m, ef_construction=80))
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # build on every core
        with Stopwatch() as build:
            hnsw.upsert(keys, matrix)
        with single_thread():
            for ef in efs:
                hnsw.params = replace(hnsw.params, ef_search=ef)
                timed = time_queries(_searcher(hnsw), queries)
                row = _row(dataset, n, "hnsw VectorIndex.search", timed, truth)
                row.m, row.ef_search, row.build_s = m, max(ef, 2 * K), build.seconds
                rows.append(row)
            good = [r for r in rows if r.m == m and r.recall >= RECALL_TARGET]
            ef_raw = min((r.ef_search or 0 for r in good), default=max(efs))
            rows.append(_raw_faiss_row(dataset, n, hnsw, m, ef_raw, queries, truth))
        del hnsw
        gc.collect()
    return rows  # the flat index (and the large set in it) is freed on return


def _searcher(index: VectorIndex) -> Callable[[FloatArray], IntArray]:
    def search(q: FloatArray) -> IntArray:
        return index.search(q, K).keys

    return search


def _raw_faiss_row(
    dataset: str, n: int, index: VectorIndex, m: int, ef: int, queries: FloatArray, truth: IntArray
) -> AnnRow:
    """The same HNSW graph searched through faiss directly: the wrapper's overhead."""
    raw = index._index  # the bench peeks on purpose, to separate faiss from wrapper cost
    params = faiss.SearchParametersHNSW()
    params.efSearch = ef

    def search(q: FloatArray) -> IntArray:
        _, ids = raw.search(q.reshape(1, -1), K, params=params)
        return np.asarray(ids[0], dtype=np.int64)

    row = _row(dataset, n, "hnsw raw faiss (same graph)", time_queries(search, queries), truth)
    row.m, row.ef_search = m, ef
    return row


def metrics(section: str, rows: list[AnnRow], targeted: bool, note: str) -> list[Metric]:
    """Table rows; the recall/p95 target applies only to the `targeted` (1M) set."""
    out: list[Metric] = []
    target = f"recall >= {RECALL_TARGET}, p95 < {fmt(P95_TARGET_MS)} ms" if targeted else ""
    for r in rows:
        name = r.method
        if r.m is not None:
            name += f" M={r.m} efSearch={r.ef_search}"
        display = f"recall {r.recall:.3f}; p50 {fmt(r.p50_ms)} / p95 {fmt(r.p95_ms)} ms"
        notes = f"{r.queries} queries; CPU p50 {fmt(r.cpu_p50_ms)} / p95 {fmt(r.cpu_p95_ms)} ms"
        if r.build_s is not None:
            notes += f"; build {r.build_s:.1f} s"
        met = None
        if targeted and r.method.startswith("hnsw"):
            met = r.recall >= RECALL_TARGET and r.p95_ms < P95_TARGET_MS
        row_target = target if met is not None else ""
        out.append(Metric(section, name, r.p95_ms, "ms", row_target, met, notes, display))
    hnsw = [r for r in rows if r.method == "hnsw VectorIndex.search"]
    ok = [r for r in hnsw if r.recall >= RECALL_TARGET and r.p95_ms < P95_TARGET_MS]
    if targeted and hnsw:
        best = min(ok, key=lambda r: r.p95_ms) if ok else max(hnsw, key=lambda r: r.recall)
        out.append(
            Metric(
                section,
                "HNSW: chosen efSearch" + (" (meets target)" if ok else " (best recall)"),
                float(best.ef_search or 0),
                display=f"M={best.m} efSearch={best.ef_search}: recall {best.recall:.3f}, "
                f"p95 {fmt(best.p95_ms)} ms",
                target=target,
                met=bool(ok),
                notes=note,
            )
        )
    return out


def rows_json(rows: list[AnnRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
