"""`python -m bench train-ranker`: fit the hybrid ranker on training queries only.

Training queries (never the sets we report):

- Reddit TOMT *train* split at full length (a seeded sample of `--tomt-train`);
- bench/data/descriptive-train*.jsonl (one-sentence descriptions we wrote; the
  later sets pick films without regard to whether their Wikipedia lead tells
  the story);
- exact-title queries generated from the catalog (a seeded sample of titles,
  as typed, lower-cased without punctuation, and as "Title (year)").

For each query the product's own candidate generation and features run
(`services.search_features.build_candidates`), so the model is fitted on
exactly what it will score. Queries whose answer is not among the candidates
teach nothing about ordering and are skipped (their count is reported).
The validation sets (TOMT validation, descriptive-dev, other title draws) are
scored with the fitted model before it is written, and the numbers go into
the model's provenance.
"""

from __future__ import annotations

import json
import random
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import ingest_bench
from bench.datasets import DESCRIPTIVE_TRAIN, descriptive_queries, tomt_queries
from metamedia.config import Settings
from metamedia.engine.payload import AttributeFilter
from metamedia.engine.ranker import FloatArray, LinearRanker, fit_listwise
from metamedia.services.ranker_model import default_model_path, save_ranker
from metamedia.services.runtime import Runtime
from metamedia.services.search_features import Candidates, build_candidates

BENCH_DIR = Path(__file__).resolve().parent
POOL = 200


@dataclass(frozen=True)
class Labelled:
    query: str
    gold: str
    kind: str


def _descriptive(name: str) -> list[Labelled]:
    return [Labelled(q.query, q.gold, "descriptive") for q in descriptive_queries(name)]


def _titles(runtime: Runtime, n: int, seed: int, exclude: set[str]) -> list[Labelled]:
    """Exact-title queries for films whose title is unique in the catalog."""
    with runtime.stores.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT external_id, title, year FROM media WHERE tenant = 'default'"
        ).all()
    counts: dict[str, int] = {}
    for _, title, _ in rows:
        counts[title.lower()] = counts.get(title.lower(), 0) + 1
    unique = [r for r in rows if counts[r[1].lower()] == 1 and r[0] not in exclude]
    picked = random.Random(seed).sample(unique, min(n, len(unique)))
    out = []
    for i, (media_id, title, year) in enumerate(picked):
        variant = i % 3
        if variant == 1:
            title = re.sub(r"[^\w\s]", "", title).lower()
        elif variant == 2 and year:
            title = f"{title} ({year})"
        out.append(Labelled(title, media_id, "title"))
    return out


def _tomt(split: str, n: int | None, seed: int) -> list[Labelled]:
    rows = [Labelled(q.query, q.gold, "tomt") for q in tomt_queries(split, max_chars=None)]
    if n is not None and n < len(rows):
        rows = random.Random(seed).sample(rows, n)
    return rows


def _groups(
    runtime: Runtime, queries: Iterable[Labelled]
) -> tuple[list[tuple[Candidates, int | None, Labelled]], float]:
    """Candidates (with features) per query and the gold row among them (None: absent)."""
    search = runtime.search
    indexes = runtime.indexes
    keys_of: dict[str, int] = {}
    with runtime.stores.engine.connect() as conn:
        for pk, ext in conn.exec_driver_sql("SELECT pk, external_id FROM media").all():
            keys_of[ext] = int(pk)
    mask = indexes.mask(AttributeFilter(tenant="default"))
    out = []
    started = time.perf_counter()
    for n, q in enumerate(queries, start=1):
        vectors = search.embed_query(q.query)
        cands = build_candidates(indexes, q.query, vectors, "default", POOL, mask)
        gold_key = keys_of.get(q.gold)
        found = np.flatnonzero(cands.keys == gold_key) if gold_key is not None else np.empty(0)
        out.append((cands, int(found[0]) if found.shape[0] else None, q))
        if n % 100 == 0:
            print(f"  {n} queries featurised", file=sys.stderr, flush=True)
    return out, time.perf_counter() - started


def _scores(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        "mrr_at_10": sum(1.0 / r for r in ranks if r is not None and r <= 10) / n,
        "recall_at_10": sum(1 for r in ranks if r is not None and r <= 10) / n,
        "recall_at_100": sum(1 for r in ranks if r is not None and r <= 100) / n,
        "queries": float(len(ranks)),
    }


def evaluate_ranker(
    ranker: LinearRanker | None, groups: list[tuple[Candidates, int | None, Labelled]]
) -> dict[str, dict[str, float]]:
    """MRR / recall per query kind when the candidates are ordered by `ranker`
    (None: reciprocal-rank fusion of the two lists, the textbook baseline)."""
    by_kind: dict[str, list[int | None]] = {}
    for cands, gold, q in groups:
        rank: int | None = None
        if gold is not None:
            score = ranker.score(cands.features) if ranker is not None else _rrf(cands)
            rank = int(np.sum(score > score[gold])) + 1
        by_kind.setdefault(q.kind, []).append(rank)
    return {kind: _scores(ranks) for kind, ranks in by_kind.items()}


def _rrf(cands: Candidates, k: float = 60.0) -> FloatArray:
    score = np.zeros(cands.keys.shape[0], dtype=np.float32)
    for ranks in (cands.keyword_rank, cands.dense_rank):
        present = ranks > 0
        score[present] += 1.0 / (k + ranks[present])
    return score


def run(
    data_dir: Path | None, out: Path, tomt_train: int, titles: int, seed: int
) -> dict[str, Any]:
    data = data_dir or ingest_bench.ensure_catalog(BENCH_DIR / ".cache", False).data_dir
    runtime = Runtime.open(Settings(data_dir=data))
    try:
        desc_dev = _descriptive("descriptive-dev")
        train = [
            *_tomt("train", tomt_train, seed),
            *(q for name in DESCRIPTIVE_TRAIN for q in _descriptive(name)),
            *_titles(runtime, titles, seed, {q.gold for q in desc_dev}),
        ]
        validation = [
            *_tomt("validation", None, seed),
            *desc_dev,
            *_titles(runtime, titles // 2, seed + 1, set()),
        ]
        print(f"featurising {len(train)} training queries", file=sys.stderr, flush=True)
        train_groups, train_s = _groups(runtime, train)
        print(f"featurising {len(validation)} validation queries", file=sys.stderr, flush=True)
        valid_groups, _ = _groups(runtime, validation)
    finally:
        runtime.close()
    usable = [(c, g, q) for c, g, q in train_groups if g is not None]
    fit_on = [(c.features, g) for c, g, _ in usable]
    per_kind = {k: sum(1 for *_, q in usable if q.kind == k) for k in {q.kind for *_, q in usable}}
    ranker = fit_listwise(fit_on, weights=[1.0 / per_kind[q.kind] for *_, q in usable])
    report = {
        "trained_on": {
            "queries": len(train),
            "with_gold_among_candidates": len(fit_on),
            "kinds": {
                k: sum(1 for q in train if q.kind == k) for k in ("tomt", "descriptive", "title")
            },
            "seed": seed,
            "pool": POOL,
            "featurise_s": round(train_s, 1),
        },
        "train": evaluate_ranker(ranker, train_groups),
        "validation": evaluate_ranker(ranker, valid_groups),
        "validation_rrf": evaluate_ranker(None, valid_groups),
        "weights": dict(zip(ranker.names, ranker.weights.round(4).tolist(), strict=True)),
    }
    save_ranker(ranker, out, {k: report[k] for k in ("trained_on", "validation")})
    return report


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench train-ranker")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=default_model_path())
    parser.add_argument("--tomt-train", type=int, default=1200)
    parser.add_argument("--titles", type=int, default=400)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    report = run(args.data_dir, args.out, args.tomt_train, args.titles, args.seed)
    print(json.dumps(report, indent=1))
    return 0
