"""`python -m bench engine`: filtered vector search by selectivity, planner vs peers.

The product's `VectorIndex` (the kind the product builds at this size, the
settings' M / efConstruction / efSearch)
is built over the cached full catalog's item vectors, its plan costs are
calibrated on this machine (`VectorIndex.calibrate`, the constants saved with
every index the product builds), and each query runs under masks passing 0.1%
to 100% of the items. Peers run on the same vectors, queries and masks, in the
same run. Each method runs its queries back to back, as ann-benchmarks does, in
`ROUNDS` rounds of a slice of the queries each, the methods' order rotating
from round to round, so that whatever else the machine is doing lands on all of
them alike. (Until 2026-12-02 each query went through every method before the
next: then every method ran just after hnswlib and usearch had walked tens of
megabytes, and each numpy call of a 30 µs search paid ~10 µs of cache misses.)

- faiss `IndexFlatIP` with the mask as an `IDSelectorBitmap` (exact);
- faiss HNSW (the same graph) with the bitmap and efSearch scaled by 1 / the
  fraction allowed: the product's filtered path before the planner;
- faiss HNSW with the bitmap at a fixed efSearch of 64;
- numpy inner products over the allowed rows (exact);
- hnswlib with its filter callback, and usearch (no filter in its Python API:
  it over-fetches 2k / fraction and keeps the allowed hits), both efSearch 64
  and the same M / efConstruction, from the `bench` extra (left out when not
  installed).

A second row of ours, the same index over float32 rows (`vector_index_kind =
hnsw`), shows what the half-precision default costs in speed; it is not a peer.

Everything is single-threaded (faiss OpenMP and BLAS pinned to one thread).
Queries are real tip-of-the-tongue requests (first 300 characters) embedded by
the product's encoder. Masks are uniform random subsets (seeded); recall@10 is
against exact search over the allowed rows. The target (issue 14): at every
selectivity, our p95 within 1.5x of the best peer reaching recall@10 >= 0.95.

Writes bench/results/engine.md and engine.json.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np
import numpy.typing as npt

from bench import ingest_bench
from bench.datasets import tomt_queries
from bench.peers import hnswlib_index, usearch_index
from bench.report import add_output_args, header_lines, machine_info, write_results
from bench.timing import summarize
from bench.vector_bench import single_thread
from metamedia.config import Settings
from metamedia.engine.embed import OnnxEmbedder
from metamedia.engine.index import IndexParams, VectorIndex
from metamedia.services.indexing import index_kind
from metamedia.storage.model_files import load_npz

faiss: Any = _faiss
BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "results"
K = 10
SELECTIVITIES = (0.001, 0.01, 0.05, 0.091, 0.2, 0.3, 0.5, 1.0)
MIN_RECALL = 0.95
WITHIN = 1.5
ROUNDS = 5
WARM_UP = 3  # untimed queries before each block
FLOAT32_ROW = "ours, float32 rows (vector_index_kind hnsw)"
Vector = npt.NDArray[np.float32]
Search = Callable[[Vector, npt.NDArray[np.bool_]], npt.NDArray[np.int64]]


def catalog_vectors(cache_dir: Path) -> Vector:
    """The live item vectors of the cached full catalog's saved index."""
    data_dir = ingest_bench.ensure_catalog(cache_dir, False).data_dir
    state = load_npz(data_dir / "index" / "vectors.npz")
    if state is None:
        raise SystemExit(f"no saved index under {data_dir}: run `python -m bench search` first")
    saved = VectorIndex.from_state({k: state[k] for k in ("faiss", "keys", "live", "params")})
    return np.ascontiguousarray(saved.vectors()[saved.live_mask()], dtype=np.float32)


def queries(n: int) -> Vector:
    texts = [q.query[:300] for q in tomt_queries("train", max_chars=None)][:n]
    return np.ascontiguousarray(OnnxEmbedder().encode(texts), dtype=np.float32)


def _bitmap_params(mask: npt.NDArray[np.bool_], hnsw_ef: int | None) -> tuple[Any, Any]:
    bitmap = np.packbits(mask, bitorder="little")
    params = faiss.SearchParametersHNSW() if hnsw_ef is not None else faiss.SearchParameters()
    if hnsw_ef is not None:
        params.efSearch = hnsw_ef
    if not mask.all():
        params.sel = faiss.IDSelectorBitmap(mask.shape[0], faiss.swig_ptr(bitmap))
    return params, bitmap


def _numpy_exact(vectors: Vector) -> Search:
    def search(q: Vector, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        allowed = np.flatnonzero(mask)
        sims = vectors[allowed] @ q
        top = np.argpartition(-sims, min(K, sims.shape[0] - 1))[:K]
        return allowed[top[np.argsort(-sims[top], kind="stable")]]

    return search


def _hnswlib_peer(vectors: Vector, m: int, ef_construction: int) -> Search | None:
    """hnswlib (the `bench` extra) with its filter callback, efSearch 64 (None: absent)."""
    index = hnswlib_index(vectors, m, ef_construction, threads=1)
    if index is None:
        return None
    index.set_ef(64)

    def search(q: Vector, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        allowed = None if mask.all() else (lambda label: bool(mask[label]))
        k = min(K, int(mask.sum()))
        labels, _ = index.knn_query(q, k=k, num_threads=1, filter=allowed)
        return np.asarray(labels[0], dtype=np.int64)

    return search


def _usearch_peer(vectors: Vector, m: int, ef_construction: int) -> Search | None:
    """usearch (the `bench` extra). Its Python API has no filter, so a filtered search
    over-fetches k / fraction (x2) and keeps the allowed hits: what a user would do."""
    index = usearch_index(vectors, m, ef_construction, threads=1)
    if index is None:
        return None
    index.expansion_search = 64

    def search(q: Vector, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        fraction = float(mask.mean())
        fetch = K if fraction >= 1.0 else min(vectors.shape[0], int(2 * K / max(fraction, 1e-6)))
        keys = np.asarray(index.search(q, fetch, threads=1).keys, dtype=np.int64)
        return keys[mask[keys]][:K]

    return search


def methods(
    index: VectorIndex, float32: VectorIndex, flat: Any, vectors: Vector
) -> dict[str, Search]:
    graph = index._index  # the same HNSW graph the product searches

    def ours(q: Vector, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        return index.search(q, K, None if mask.all() else mask).keys

    def ours_float32(q: Vector, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        return float32.search(q, K, None if mask.all() else mask).keys

    def exact(q: Vector, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        params, _bitmap = _bitmap_params(mask, None)
        return np.asarray(flat.search(q[None], K, params=params)[1][0], dtype=np.int64)

    def hnsw_scaled(q: Vector, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        fraction = float(mask.mean())
        ef = int(min(index.params.max_ef_search, index.params.ef_search / max(fraction, 1e-6)))
        params, _bitmap = _bitmap_params(mask, max(ef, K))
        return np.asarray(graph.search(q[None], K, params=params)[1][0], dtype=np.int64)

    def hnsw_64(q: Vector, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        params, _bitmap = _bitmap_params(mask, 64)
        return np.asarray(graph.search(q[None], K, params=params)[1][0], dtype=np.int64)

    found: dict[str, Search] = {
        "ours (VectorIndex, cost planner)": ours,
        FLOAT32_ROW: ours_float32,
        "numpy over the allowed rows (exact)": _numpy_exact(vectors),
        "faiss flat + bitmap (exact)": exact,
        "faiss HNSW + bitmap, ef scaled by 1/fraction": hnsw_scaled,
        "faiss HNSW + bitmap, ef 64": hnsw_64,
    }
    m, efc = index.params.hnsw_m, index.params.ef_construction
    for name, peer in (
        ("hnswlib + filter callback, ef 64", _hnswlib_peer(vectors, m, efc)),
        ("usearch, over-fetch then filter, ef 64", _usearch_peer(vectors, m, efc)),
    ):
        if peer is not None:  # the `bench` extra is not installed: the row is left out
            found[name] = peer
    return found


def run(cache_dir: Path, n_queries: int) -> dict[str, Any]:
    vectors = catalog_vectors(cache_dir)
    qs = queries(n_queries)
    s = Settings()
    params = IndexParams(
        kind=index_kind(s, vectors.shape[0]),  # what the product builds at this size
        hnsw_m=s.hnsw_m,
        ef_construction=s.hnsw_ef_construction,
        ef_search=s.hnsw_ef_search,
        exact_fraction=s.exact_filter_fraction,
    )
    started = time.perf_counter()
    index = VectorIndex(vectors.shape[1], params)
    index.upsert(np.arange(vectors.shape[0]), vectors)
    build_s = time.perf_counter() - started
    float32 = VectorIndex(vectors.shape[1], replace(params, kind="hnsw"))
    float32.upsert(np.arange(vectors.shape[0]), vectors)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    out: dict[str, Any] = {
        "vectors": int(vectors.shape[0]),
        "queries": int(qs.shape[0]),
        "index": asdict(params),
        "build_s": round(build_s, 1),
        "selectivities": {},
    }
    rng = np.random.default_rng(7)
    with single_thread():
        started = time.perf_counter()
        costs = index.calibrate()
        out["calibration_s"] = round(time.perf_counter() - started, 2)
        out["plan_costs"] = asdict(costs)
        float32.calibrate()
        runners = methods(index, float32, flat, vectors)
        for fraction in SELECTIVITIES:
            mask: npt.NDArray[np.bool_] = np.asarray(
                rng.random(vectors.shape[0]) < fraction, dtype=np.bool_
            )
            allowed = np.flatnonzero(mask)
            truths = []
            for q in qs:
                sims = vectors[allowed] @ q
                truths.append(set(allowed[np.argsort(-sims, kind="stable")[:K]].tolist()))
            took, recall = _timed_blocks(runners, qs, mask, truths)
            plan, ef = index.plan(int(mask.sum()), K)
            section: dict[str, Any] = {
                "allowed": int(mask.sum()),
                "plan": plan,
                "ef": ef,
                "plan_float32": float32.plan(int(mask.sum()), K)[0],
                "methods": {
                    name: {
                        **{
                            k: round(v, 3)
                            for k, v in summarize(took[name]).as_dict().items()
                            if k in ("p50", "p95")
                        },
                        "recall_at_10": round(float(np.mean(recall[name])), 3),
                    }
                    for name in runners
                },
            }
            section["verdict"] = _verdict(section["methods"])
            out["selectivities"][str(fraction)] = section
            print(f"[engine] {fraction:.3f}: {section['verdict']}", flush=True)
    return out


def _timed_blocks(
    runners: dict[str, Search],
    qs: Vector,
    mask: npt.NDArray[np.bool_],
    truths: list[set[int]],
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Milliseconds and recall@10 per query of each method, run in rotating blocks."""
    took: dict[str, list[float]] = {name: [] for name in runners}
    recall: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    slices = np.array_split(np.arange(qs.shape[0]), ROUNDS)
    for round_no, picked in enumerate(slices):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        for name in order:
            search = runners[name]
            for i in picked[:WARM_UP]:
                search(qs[i], mask)
            for i in picked.tolist():
                t0 = time.perf_counter()
                found = search(qs[i], mask)
                took[name].append((time.perf_counter() - t0) * 1000)
                got = {int(k) for k in found.tolist() if k >= 0}
                recall[name].append(len(got & truths[i]) / min(K, len(truths[i])))
    return took, recall


def _verdict(results: dict[str, dict[str, float]]) -> dict[str, Any]:
    ours_name = next(iter(results))
    ours = results[ours_name]
    peers = {
        name: r
        for name, r in results.items()
        if not name.startswith("ours") and r["recall_at_10"] >= MIN_RECALL
    }
    best_name = min(peers, key=lambda name: peers[name]["p95"]) if peers else None
    best = peers[best_name]["p95"] if best_name else None
    ratio = ours["p95"] / best if best else None
    met = ours["recall_at_10"] >= MIN_RECALL and (ratio is None or ratio <= WITHIN)
    return {"best_peer": best_name, "best_peer_p95": best, "ratio": ratio, "met": met}


def render(raw: dict[str, Any], command: str, started: str, seconds: float) -> str:
    lines = [
        *header_lines("engine", command, False, started, seconds, machine_info()),
        "",
        f"{raw['vectors']} item vectors of the full catalog, {raw['queries']} real TOMT "
        f"queries, k={K}, one thread. Index: {raw['index']['kind']} M={raw['index']['hnsw_m']}, "
        f"efConstruction={raw['index']['ef_construction']}, efSearch="
        f"{raw['index']['ef_search']} (build {raw['build_s']} s). Masks: uniform random "
        "subsets.",
        "",
        f"Plan costs calibrated on this machine in {raw['calibration_s']} s (µs): "
        + ", ".join(f"{k} {v:.4g}" for k, v in raw["plan_costs"].items())
        + ".",
        "",
        "## Filtered search by selectivity",
        "",
        "| passing | allowed | method | p50 ms | p95 ms | recall@10 |",
        "|---|---|---|---|---|---|",
    ]
    for fraction, section in raw["selectivities"].items():
        for name, r in section["methods"].items():
            plan = section.get("plan_float32") if name == FLOAT32_ROW else section["plan"]
            label = f"{name}: {plan}" if name.startswith("ours") else name
            lines.append(
                f"| {float(fraction):.1%} | {section['allowed']} | {label} | {r['p50']:.3f} | "
                f"{r['p95']:.3f} | {r['recall_at_10']:.3f} |"
            )
    lines += [
        "",
        f"## Target: p95 within {WITHIN}x of the best peer with recall@10 >= {MIN_RECALL}",
        "",
        "| passing | our plan (ef) | best peer | ours / best p95 | met? |",
        "|---|---|---|---|---|",
    ]
    for fraction, section in raw["selectivities"].items():
        v = section["verdict"]
        ratio = f"{v['ratio']:.2f}x" if v["ratio"] is not None else "-"
        lines.append(
            f"| {float(fraction):.1%} | {section['plan']} ({section['ef']}) | "
            f"{v['best_peer']} | {ratio} | {'yes' if v['met'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    engine = commands.add_parser(
        "engine",
        help="filtered vector search by selectivity: the cost planner against faiss peers",
        description="Measure filtered k=10 search at 0.1%%..100%% selectivity; "
        "writes engine.md/.json.",
    )
    engine.add_argument("--queries", type=int, default=300, help="TOMT queries (300)")
    add_output_args(engine, OUT, BENCH_DIR / ".cache")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    raw = run(args.cache_dir, args.queries)
    md = render(raw, "python -m bench " + " ".join(argv), started, time.perf_counter() - clock)
    md += million_section(args.out / "compressed.json")
    write_results(args.out, "engine", md, raw)
    return 0


def million_section(path: Path) -> str:
    """The 1M-vector curve of the last `python -m bench compressed` run, so the engine's
    numbers stay in one file; that run takes ~16 min and its own file says when it ran."""
    from bench.compressed_bench import curve_table

    if not path.exists():
        return (
            "\n## 1M vectors\n\nNo `python -m bench compressed` result yet "
            f"({path.name} missing): run it for the 1M curve.\n"
        )
    lines = [
        "",
        "## 1M vectors (from the last `python -m bench compressed` run, "
        "`bench/results/compressed.md`)",
        "",
        *curve_table(json.loads(path.read_text(encoding="utf-8"))),
    ]
    return "\n".join(lines) + "\n"
