"""`python -m bench compressed [--n N]`: the compressed index kind at catalog scale.

A million vectors (issue 14) derived from the real ones: the cached full catalog's
item and passage vectors (MiniLM, 384-d) are split into a data pool and a held-out
pool; each data vector is a random pair of pool vectors mixed with a random weight,
plus small Gaussian noise, renormalised, so the set keeps the real vectors' uneven
shape (clusters, dominant dimensions) at any size. Queries are held-out vectors
perturbed the same way; ground truth is exact search (faiss `IndexFlatIP`).

Indexes over the same vectors, with the same HNSW M and efConstruction (32 and 80
unless `--m` / `--ef-construction` say otherwise), built with two threads, then
searched query by query on one thread over an efSearch curve:

- faiss `IndexHNSWFlat`: the float graph the "hnsw" kind uses (the peer);
- faiss `IndexHNSWSQ` (8-bit): the compressed graph alone, no re-scoring;
- hnswlib (float32) and usearch (its 8-bit `i8` vectors), from the `bench` extra
  (listed as skipped when not installed);
- ours: `VectorIndex` kind "hnsw_sq8" (the same compressed graph, its top
  max(4k, 40) candidates re-scored exactly), saved through `VectorFileStore` and
  loaded back, so its float rows are a read-only mapping of the sidecar file as
  in a serving process.

Memory is what each index holds in RAM (float storage or 8-bit codes, plus the
graph's links); for ours also the sidecar file and the part of its mapping the
queries made resident (`Rss` of the mapping in /proc/self/smaps).

Writes bench/results/compressed.md and compressed.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from bench import ingest_bench
from bench.peers import hnswlib_index, installed, usearch_index
from bench.report import add_output_args, header_lines, machine_info, write_results
from bench.timing import summarize
from bench.vector_bench import single_thread
from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.engine.vectors import normalize
from metamedia.storage.vector_files import VectorFileStore

faiss: Any = _faiss
BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "results"
K = 10
M = 32
EF_CONSTRUCTION = 80
BUILD_THREADS = 2
EF_SEARCHES = (32, 64, 128, 256)
NOISE = 0.1  # norm of the Gaussian noise added to each mix (before renormalising)
CHUNK = 100_000
Vector = npt.NDArray[np.float32]


def real_vectors(cache_dir: Path) -> Vector:
    """Live item vectors and passage vectors of the cached full catalog's saved index
    (built first when missing, like the other sections), without duplicates."""
    data_dir = ingest_bench.ensure_catalog(cache_dir, False).data_dir
    loaded = VectorFileStore(data_dir / "index").load(0.05, companions=("pas",))
    if loaded is None:
        raise SystemExit(f"no readable saved index under {data_dir}")
    parts = [np.asarray(loaded.index.vectors()[loaded.index.live_mask()], dtype=np.float32)]
    passages = loaded.companions.get("pas")
    if passages is not None and passages.positions:
        parts.append(np.asarray(passages.vectors()[passages.live_mask()], dtype=np.float32))
    return np.unique(np.vstack(parts), axis=0)


def mixes(pool: Vector, n: int, rng: np.random.Generator) -> Vector:
    """n unit vectors, each w * a + (1 - w) * b + noise over random pool pairs."""
    out = np.empty((n, pool.shape[1]), dtype=np.float32)
    sigma = NOISE / np.sqrt(pool.shape[1])
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        a = pool[rng.integers(0, pool.shape[0], size)]
        b = pool[rng.integers(0, pool.shape[0], size)]
        w = rng.uniform(0.0, 1.0, size=(size, 1)).astype(np.float32)
        noise = rng.normal(0.0, sigma, size=a.shape).astype(np.float32)
        out[start : start + size] = normalize(w * a + (1.0 - w) * b + noise)
    return out


def dataset(real: Vector, n: int, n_queries: int, seed: int) -> tuple[Vector, Vector]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(real.shape[0])
    held = max(2 * n_queries, real.shape[0] // 20)
    return mixes(real[order[held:]], n, rng), mixes(real[order[:held]], n_queries, rng)


def ground_truth(data: Vector, queries: Vector) -> npt.NDArray[np.int64]:
    def search() -> npt.NDArray[np.int64]:
        flat = faiss.IndexFlatIP(data.shape[1])
        flat.add(data)
        truth = np.empty((queries.shape[0], K), dtype=np.int64)
        for start in range(0, queries.shape[0], 256):
            truth[start : start + 256] = flat.search(queries[start : start + 256], K)[1]
        return truth

    return timed_build(search)[0]  # type: ignore[no-any-return]


def graph_bytes(index: Any) -> int:
    hnsw = index.hnsw
    return int(hnsw.neighbors.size() * 4 + hnsw.levels.size() * 4 + hnsw.offsets.size() * 8)


def storage_bytes(index: Any) -> int:
    storage = faiss.downcast_index(index.storage)
    return int(index.ntotal * storage.code_size)


def mapped_rss(path: Path) -> int:
    """Resident bytes of this process's mappings of `path` (0 when not mapped)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) >= 6 and fields[-1] == str(path)
        elif inside and fields[:1] == ["Rss:"]:
            total += int(fields[1]) * 1024
    return total


def timed_build(build: Callable[[], Any]) -> tuple[Any, float]:
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(BUILD_THREADS)
    try:
        started = time.perf_counter()
        built = build()
        return built, time.perf_counter() - started
    finally:
        faiss.omp_set_num_threads(previous)


def curve(
    search: Callable[[Vector, int], npt.NDArray[np.int64]],
    queries: Vector,
    truth: npt.NDArray[np.int64],
    efs: tuple[int, ...],
) -> list[dict[str, float]]:
    """recall@10 and single-thread p50/p95 ms per efSearch (a few warm-up queries first)."""
    points = []
    with single_thread():
        for ef in efs:
            for q in queries[:10]:
                search(q, ef)
            took, hits = [], 0
            for q, want in zip(queries, truth, strict=True):
                started = time.perf_counter()
                found = search(q, ef)
                took.append((time.perf_counter() - started) * 1000)
                hits += len(set(found.tolist()) & set(want.tolist()))
            s = summarize(took)
            points.append(
                {
                    "ef_search": ef,
                    "recall_at_10": round(hits / (K * queries.shape[0]), 4),
                    "p50_ms": round(s.p50, 3),
                    "p95_ms": round(s.p95, 3),
                }
            )
            print(f"[compressed]   ef {ef}: {points[-1]}", flush=True)
    return points


def faiss_searcher(index: Any) -> Callable[[Vector, int], npt.NDArray[np.int64]]:
    def search(q: Vector, ef: int) -> npt.NDArray[np.int64]:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        return np.asarray(index.search(q[None], K, params=params)[1][0], dtype=np.int64)

    return search


Searcher = Callable[[Vector, int], npt.NDArray[np.int64]]


def measure(
    name: str,
    build: Callable[[], Any],
    searcher: Callable[[Any], Searcher],
    memory: Callable[[Any], int],
    ctx: dict[str, Any],
) -> None:
    """Build one index (timed, two threads), then its curve and its RAM into ctx."""
    print(f"[compressed] building {name}", flush=True)
    index, seconds = timed_build(build)
    points = curve(searcher(index), ctx["queries"], ctx["truth"], ctx["efs"])
    ram = memory(index)
    ctx["methods"][name] = {"build_s": round(seconds, 1), "memory_bytes": ram, "curve": points}


def run_peer(name: str, build: Callable[[], Any], ctx: dict[str, Any]) -> None:
    measure(name, build, faiss_searcher, lambda i: storage_bytes(i) + graph_bytes(i), ctx)


def hnsw_flat(data: Vector, m: int, ef_construction: int) -> Any:
    index = faiss.IndexHNSWFlat(data.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(data)
    return index


def hnsw_sq(data: Vector, m: int, ef_construction: int) -> Any:
    index = faiss.IndexHNSWSQ(
        data.shape[1], faiss.ScalarQuantizer.QT_8bit, m, faiss.METRIC_INNER_PRODUCT
    )
    index.hnsw.efConstruction = ef_construction
    index.train(data[: min(data.shape[0], 100_000)])
    index.add(data)
    return index


def run_hnswlib(data: Vector, m: int, ef_construction: int, ctx: dict[str, Any]) -> None:
    """hnswlib (float32 HNSW in C++), when the `bench` extra installed it."""
    if not installed("hnswlib"):
        ctx["skipped"]["hnswlib"] = "not installed (pip install -e '.[bench]')"
        return

    def searcher(index: Any) -> Searcher:
        def search(q: Vector, ef: int) -> npt.NDArray[np.int64]:
            index.set_ef(ef)
            return np.asarray(index.knn_query(q, k=K, num_threads=1)[0][0], dtype=np.int64)

        return search

    # float rows plus level-0 links (2M per node) and the list headers, per element
    per_element = data.shape[1] * 4 + (2 * m + 1) * 4 + 8
    measure(
        "hnswlib (float32)",
        lambda: hnswlib_index(data, m, ef_construction, BUILD_THREADS),
        searcher,
        lambda _: data.shape[0] * per_element,
        ctx,
    )


def run_usearch(data: Vector, m: int, ef_construction: int, ctx: dict[str, Any]) -> None:
    """usearch with 8-bit integer vectors (its own quantisation), when installed."""
    if not installed("usearch"):
        ctx["skipped"]["usearch"] = "not installed (pip install -e '.[bench]')"
        return

    def searcher(index: Any) -> Searcher:
        def search(q: Vector, ef: int) -> npt.NDArray[np.int64]:
            index.expansion_search = ef
            return np.asarray(index.search(q, K, threads=1).keys, dtype=np.int64)

        return search

    measure(
        "usearch (i8)",
        lambda: usearch_index(data, m, ef_construction, BUILD_THREADS, dtype="i8"),
        searcher,
        lambda index: int(index.memory_usage),
        ctx,
    )


def run_ours(data: Vector, m: int, ef_construction: int, ctx: dict[str, Any], work: Path) -> None:
    name = "ours: VectorIndex hnsw_sq8 + exact re-scoring"
    print(f"[compressed] building {name}", flush=True)
    params = IndexParams(kind="hnsw_sq8", hnsw_m=m, ef_construction=ef_construction)

    def build() -> VectorIndex:
        index = VectorIndex(data.shape[1], params)
        index.upsert(np.arange(data.shape[0]), data)
        return index

    built, seconds = timed_build(build)
    store = VectorFileStore(work)
    started = time.perf_counter()
    store.save(built, 0, "bench")
    save_s = time.perf_counter() - started
    del built
    started = time.perf_counter()
    loaded = VectorFileStore(work).load(params.exact_fraction)
    load_s = time.perf_counter() - started
    if loaded is None:
        raise SystemExit("the saved compressed index did not load back")
    index = loaded.index
    (sidecar,) = work.glob("vectors.items.*.f32")
    rss_after_load = mapped_rss(sidecar)

    def search(q: Vector, ef: int) -> npt.NDArray[np.int64]:
        index.params = replace(index.params, ef_search=ef)
        return index.search(q, K).keys

    points = curve(search, ctx["queries"], ctx["truth"], ctx["efs"])
    for point in points:
        point["ef_used"] = max(
            int(point["ef_search"]), K * params.rescore_factor, params.rescore_min
        )
    ram = storage_bytes(index._index) + graph_bytes(index._index)
    ctx["methods"][name] = {
        "build_s": round(seconds, 1),
        "save_s": round(save_s, 1),
        "load_s": round(load_s, 1),
        "memory_bytes": ram,
        "float_file_bytes": sidecar.stat().st_size,
        "float_resident_after_load_bytes": rss_after_load,
        "float_resident_after_queries_bytes": mapped_rss(sidecar),
        "curve": points,
    }


METHODS = ("flat", "sq", "hnswlib", "usearch", "ours")


def run(
    cache_dir: Path,
    n: int,
    n_queries: int,
    efs: tuple[int, ...],
    seed: int,
    m: int = M,
    ef_construction: int = EF_CONSTRUCTION,
    methods: tuple[str, ...] = METHODS,
) -> dict[str, Any]:
    real = real_vectors(cache_dir)
    print(f"[compressed] {real.shape[0]} real vectors -> {n} derived", flush=True)
    started = time.perf_counter()
    data, queries = dataset(real, n, n_queries, seed)
    del real
    derive_s = time.perf_counter() - started
    started = time.perf_counter()
    truth = ground_truth(data, queries)
    truth_s = time.perf_counter() - started
    ctx: dict[str, Any] = {
        "queries": queries,
        "truth": truth,
        "efs": efs,
        "methods": {},
        "skipped": {},
    }
    if "flat" in methods:
        run_peer("faiss IndexHNSWFlat (peer)", lambda: hnsw_flat(data, m, ef_construction), ctx)
    if "sq" in methods:
        run_peer(
            "faiss IndexHNSWSQ 8-bit, no re-scoring",
            lambda: hnsw_sq(data, m, ef_construction),
            ctx,
        )
    if "hnswlib" in methods:
        run_hnswlib(data, m, ef_construction, ctx)
    if "usearch" in methods:
        run_usearch(data, m, ef_construction, ctx)
    if "ours" in methods:
        with tempfile.TemporaryDirectory(prefix="compressed-bench-", dir=cache_dir) as work:
            run_ours(data, m, ef_construction, ctx, Path(work))
    return {
        "vectors": n,
        "dim": int(data.shape[1]),
        "queries": int(queries.shape[0]),
        "seed": seed,
        "noise": NOISE,
        "hnsw_m": m,
        "ef_construction": ef_construction,
        "build_threads": BUILD_THREADS,
        "derive_s": round(derive_s, 1),
        "ground_truth_s": round(truth_s, 1),
        "float32_bytes": int(data.nbytes),
        "methods": ctx["methods"],
        "skipped": ctx["skipped"],
    }


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def curve_table(raw: dict[str, Any]) -> list[str]:
    """The set described in a sentence, then one row per index and efSearch (also what
    `python -m bench engine` shows for the 1M set)."""
    lines = [
        f"{raw['vectors']:,} unit vectors ({raw['dim']}-d) derived from the cached catalog's "
        f"item and passage vectors (random pairs mixed with random weights, noise norm "
        f"{raw['noise']}, renormalised; seed {raw['seed']}); {raw['queries']} held-out queries "
        f"derived the same way; ground truth by exact search. HNSW M={raw['hnsw_m']}, "
        f"efConstruction={raw['ef_construction']}, built with {raw['build_threads']} threads; "
        f"queries one at a time on one thread, k={K}. Float32 vectors alone: "
        f"{_mib(raw['float32_bytes'])}.",
        "",
        "| index | build s | RAM | efSearch | recall@10 | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, method in raw["methods"].items():
        for i, point in enumerate(method["curve"]):
            ef = str(point["ef_search"])
            if "ef_used" in point and point["ef_used"] != point["ef_search"]:
                ef += f" (walks {point['ef_used']})"
            head = (
                f"| {name} | {method['build_s']} | {_mib(method['memory_bytes'])} "
                if i == 0
                else "| | | "
            )
            lines.append(
                f"{head}| {ef} | {point['recall_at_10']:.3f} | {point['p50_ms']:.3f} "
                f"| {point['p95_ms']:.3f} |"
            )
    for name, why in raw.get("skipped", {}).items():
        lines.append(f"| {name} | skipped: {why} | | | | | |")
    return lines


def render(raw: dict[str, Any], command: str, started: str, seconds: float) -> str:
    lines = [
        *header_lines("compressed index", command, False, started, seconds, machine_info()),
        "",
        *curve_table(raw),
    ]
    ours = [m for name, m in raw["methods"].items() if name.startswith("ours")]
    if ours:
        o = ours[0]
        lines += [
            "",
            f"Ours keeps the float rows in a sidecar file of {_mib(o['float_file_bytes'])} "
            f"(saved in {o['save_s']} s, index loaded in {o['load_s']} s), mapped read-only "
            f"and advised random access: {_mib(o['float_resident_after_load_bytes'])} of the "
            f"mapping resident after the load, {_mib(o['float_resident_after_queries_bytes'])} "
            "after every query above. Those are clean file pages shared with the page cache "
            "(here still warm from the save, so a fault maps whole cached folios); they are "
            "not anonymous memory and the kernel can drop them. RAM above counts the 8-bit "
            "codes and graph links.",
        ]
    return "\n".join(lines) + "\n"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    section = commands.add_parser(
        "compressed",
        help="the compressed index kind (hnsw_sq8) at 1M derived vectors against faiss peers",
        description="Recall@10 / latency curves over efSearch, build time and memory of "
        "faiss HNSWFlat, faiss HNSWSQ and VectorIndex hnsw_sq8; writes compressed.md/.json.",
    )
    section.add_argument("--n", type=int, default=1_000_000, help="vectors (1,000,000)")
    section.add_argument("--queries", type=int, default=500, help="queries (500)")
    section.add_argument(
        "--ef", type=int, nargs="+", default=list(EF_SEARCHES), help="efSearch values"
    )
    section.add_argument("--seed", type=int, default=0, help="seed of the derivation")
    section.add_argument("--m", type=int, default=M, help=f"HNSW M of every index ({M})")
    section.add_argument(
        "--ef-construction",
        type=int,
        default=EF_CONSTRUCTION,
        help=f"efConstruction of every index ({EF_CONSTRUCTION})",
    )
    section.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        default=list(METHODS),
        help="indexes to build (all): faiss flat-storage HNSW, faiss 8-bit HNSW, hnswlib, "
        "usearch, ours",
    )
    add_output_args(section, OUT, BENCH_DIR / ".cache")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    raw = run(
        args.cache_dir,
        args.n,
        args.queries,
        tuple(args.ef),
        args.seed,
        args.m,
        args.ef_construction,
        tuple(args.methods),
    )
    md = render(raw, "python -m bench " + " ".join(argv), started, time.perf_counter() - clock)
    write_results(args.out, "compressed", md, raw)
    return 0
