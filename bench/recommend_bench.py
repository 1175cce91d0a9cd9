"""`python -m bench recommend [--quick]`: recommendation quality and feed latency.

One run answers the two questions the recommendation issue asks: does the
product's feed rank held-out MovieLens favourites better than standard
baselines on the very same split (NDCG@10 target: beat every baseline), and
is it fast enough online (feed p95 < 20 ms, one interaction p95 < 1 ms)?
A missed target is reported, never raised: this is measurement, not a test.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets import movielens_dir
from bench.rec_baselines import baselines, fit
from bench.rec_latency import LatencyResult, LatencySizes, run_latency
from bench.rec_metrics import (
    POSITIVE_RATING,
    Metrics,
    Split,
    evaluate,
    paired_difference,
    time_split,
    top_n,
)
from bench.rec_ours import ensure_catalog, run_ours, write_train_dir
from bench.report import fmt, header_lines, machine_info, write_json

QUICK_EVAL_USERS = 100
PROTOCOL = (
    "Per-user time-ordered split of MovieLens ml-latest-small: each user's ratings are sorted "
    "by timestamp (ties by movieId) and the last floor(20%) (at least 1) are held out. Every "
    "model is trained on the training rows only (binary: any rating counts as an interaction) "
    "and ranks all catalog items (movies.csv) the user has not rated in training. Held-out "
    f"ratings >= {POSITIVE_RATING} are the positives; users without one are skipped. "
    "NDCG@10 and HR@10 use binary relevance; Recall@20 = hits in top-20 / min(20, positives); "
    "coverage = distinct top-10 items over all users / catalog size; novelty = mean "
    "-log2((train count + 1) / (train interactions + items)) over every top-10 slot. "
    "OURS is `rt.recommend.feed(limit=20)` after ingesting the catalog with training-only "
    "ratings (tags on held-out (user, movie) pairs removed), importing the training ratings "
    "and `rt.train()`; its per-user ms is the whole feed call, the baselines' is in-process "
    "scoring + top-N on an already fitted model."
)


@dataclass
class ModelRow:
    name: str
    metrics: Metrics | None
    train_s: float
    per_user_ms: float
    notes: str = ""


@dataclass
class RecReport:
    command: str
    quick: bool
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    machine: dict[str, Any] = field(default_factory=machine_info)
    split: dict[str, Any] = field(default_factory=dict)
    models: list[ModelRow] = field(default_factory=list)
    ours: dict[str, Any] = field(default_factory=dict)
    latency: LatencyResult | None = None
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def _log(message: str) -> None:
    print(f"[recommend] {message}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    """Entry point for the `recommend` subcommand of `python -m bench`."""
    report = RecReport(command="python -m bench " + shlex.join(sys.argv[1:]), quick=args.quick)
    report.machine["load_avg_start"] = [round(x, 2) for x in os.getloadavg()]
    for module in ("scipy", "implicit", "onnxruntime"):
        try:
            report.machine["versions"][module] = str(__import__(module).__version__)
        except ImportError:
            report.machine["versions"][module] = "not installed"
    started = time.perf_counter()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rec-", dir=args.cache_dir))
    try:
        if not getattr(args, "latency_only", False):
            _section(report, "offline evaluation", lambda: _evaluate(report, args, work))
        sizes = LatencySizes.quick() if args.quick else LatencySizes()
        _section(report, "latency", lambda: _latency(report, args.cache_dir, work, sizes))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    report.machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    # A latency-only run writes its own files: it must not replace a full run's table.
    stem = "recommend-latency" if getattr(args, "latency_only", False) else "recommend"
    md_path, json_path = write(report, args.out, stem)
    print(md_path.read_text(encoding="utf-8"))
    print(f"wrote {md_path} and {json_path}", file=sys.stderr)
    return 0


def _section(report: RecReport, name: str, fn: Any) -> None:
    """A crashed section becomes an error line; the other still runs."""
    try:
        fn()
    except Exception as exc:
        traceback.print_exc()
        report.errors[name] = f"{type(exc).__name__}: {exc}"


def _latency(report: RecReport, cache_dir: Path, work: Path, sizes: LatencySizes) -> None:
    report.latency = run_latency(cache_dir, work, sizes)


def _evaluate(report: RecReport, args: argparse.Namespace, work: Path) -> None:
    split = time_split(movielens_dir())
    eligible = sorted(split.positives)
    users = sorted(random.Random(0).sample(eligible, QUICK_EVAL_USERS)) if args.quick else eligible
    report.split = {
        "users": len(split.users),
        "items": len(split.movies),
        "train_rows": len(split.train),
        "heldout_rows": len(split.heldout),
        "users_with_positive": len(eligible),
        "users_evaluated": len(users),
    }
    counts = split.train_counts()
    positives = {u: split.positives[u] for u in users}
    scorers, skipped = baselines()
    if skipped:
        report.models.append(ModelRow("implicit ALS", None, math.nan, math.nan, skipped))
    for scorer in scorers:
        _log(f"fitting {scorer.name}")
        fitted = fit(scorer, split.matrix)
        started = time.perf_counter()
        recs = {u: top_n(scorer.score(u), split.seen(u), 20) for u in users}
        per_user = (time.perf_counter() - started) * 1000 / len(users)
        metrics = evaluate(recs, positives, counts)
        report.models.append(ModelRow(scorer.name, metrics, fitted.seconds, per_user, scorer.notes))
        _log(f"{scorer.name}: NDCG@10 {metrics.ndcg_at_10:.4f}")
    _ours(report, split, users, positives, counts, work, args.cache_dir)


def _ours(
    report: RecReport,
    split: Split,
    users: list[int],
    positives: dict[int, set[int]],
    counts: np.ndarray,
    work: Path,
    cache_dir: Path,
) -> None:
    try:
        train_dir = work / "ml-train"
        written = write_train_dir(split, movielens_dir(), train_dir)
        cached, ingest = ensure_catalog(cache_dir, train_dir, written["key"])
        result = run_ours(split, users, train_dir, cached, work)
    except Exception as exc:
        traceback.print_exc()
        report.models.append(ModelRow("OURS", None, math.nan, math.nan, f"error: {exc}"))
        report.errors["OURS"] = f"{type(exc).__name__}: {exc}"
        return
    report.ours = {"train_dir": written, "ingest": ingest, **result.details}
    p50, p95 = (float(x) for x in np.percentile(result.feed_ms, [50, 95]))
    report.ours["feed_ms"] = {"mean": float(np.mean(result.feed_ms)), "p50": p50, "p95": p95}
    notes = "import + train()" if result.details["has_train"] else "import only (no train())"
    if result.details["leaks"]:
        notes += f"; {result.details['leaks']} training items returned"
    metrics = evaluate(result.recs, positives, counts)
    report.models.append(
        ModelRow("OURS", metrics, result.train_s, float(np.mean(result.feed_ms)), notes)
    )


# -- rendering ------------------------------------------------------------------


def render(report: RecReport) -> str:
    lines = [
        *header_lines(
            "recommendation",
            report.command,
            report.quick,
            report.started,
            report.seconds,
            report.machine,
        ),
        "",
        "## Offline evaluation (MovieLens ml-latest-small)",
        *(["", "Not run (--latency-only)."] if not report.models else []),
        "",
        f"Protocol: {PROTOCOL}",
        "",
    ]
    if report.split:
        s = report.split
        lines.append(
            f"Split: {s['users']} users, {s['items']} items, {s['train_rows']} training / "
            f"{s['heldout_rows']} held-out ratings; {s['users_with_positive']} users have a "
            f"held-out positive, **{s['users_evaluated']} evaluated**."
        )
        lines.append("")
    lines += [
        "| model | NDCG@10 | Recall@20 | HR@10 | coverage | novelty | train s | per-user ms "
        "| notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    scored = [r for r in report.models if r.metrics is not None]
    for row in report.models:
        if row.metrics is None:
            lines.append(f"| {row.name} | n/a | n/a | n/a | n/a | n/a | | | {row.notes} |")
            continue
        x = row.metrics
        name = f"**{row.name}**" if row.name == "OURS" else row.name
        lines.append(
            f"| {name} | {x.ndcg_at_10:.4f} | {x.recall_at_20:.4f} | {x.hr_at_10:.3f} "
            f"| {x.coverage:.3f} | {x.novelty:.2f} | {fmt(row.train_s)} | {fmt(row.per_user_ms)} "
            f"| {row.notes} |"
        )
    ours = next((r for r in scored if r.name == "OURS"), None)
    best = max(
        (r for r in scored if r.name != "OURS" and r.metrics is not None),
        key=lambda r: r.metrics.ndcg_at_10 if r.metrics is not None else -1.0,
        default=None,
    )
    if ours is not None and ours.metrics is not None and best is not None and best.metrics:
        won = ours.metrics.ndcg_at_10 > best.metrics.ndcg_at_10
        diff, low, high = paired_difference(ours.metrics.per_user_ndcg, best.metrics.per_user_ndcg)
        lines += [
            "",
            f"Target (OURS beats every baseline on NDCG@10): **{'met' if won else 'NOT met'}** "
            f"(OURS {ours.metrics.ndcg_at_10:.4f} vs best baseline {best.name} "
            f"{best.metrics.ndcg_at_10:.4f}; paired per-user difference {diff:+.4f}, "
            f"95% bootstrap interval [{low:+.4f}, {high:+.4f}]"
            + ("; the interval spans 0, so the gap is within noise)." if low < 0 < high else ")."),
        ]
    lines += _ours_notes(report.ours)
    lines += _latency_lines(report.latency)
    for name, error in report.errors.items():
        lines.append(f"\n**error in {name}**: {error}")
    return "\n".join(lines) + "\n"


def _ours_notes(ours: dict[str, Any]) -> list[str]:
    if not ours:
        return []
    ingest = ours["ingest"]
    origin = (
        f"reused from bench/.cache/ml-eval (measured {ingest.get('measured_at', '?')})"
        if ingest.get("reused")
        else "measured in this run"
    )
    feed = ours["feed_ms"]
    return [
        "",
        f"OURS details: embedding ingest of the catalog {fmt(ingest['seconds'])} s ({origin}, "
        f"not in train s); incremental re-ingest {fmt(ours['reingest_s'])} s; interaction "
        f"import {fmt(ours['import_s'])} s; train() {fmt(ours.get('train_s', math.nan))} s; "
        f"feed p50 {fmt(feed['p50'])} ms / p95 {fmt(feed['p95'])} ms; "
        f"{ours['train_dir']['tag_rows_dropped']} tag rows on held-out pairs removed; "
        f"{ours['short_lists']} users got fewer than 20 items; "
        f"{ours['leaks']} training items returned.",
    ]


def _latency_lines(result: LatencyResult | None) -> list[str]:
    if result is None:
        return []
    lines = [
        "",
        f"## Latency ({result.catalog}, {result.items} items)",
        "",
        "| operation | p50 ms | p95 ms | p99 ms | target | met? | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result.rows:
        s = row.summary
        target = "" if row.target_ms is None else f"{row.target_stat} < {fmt(row.target_ms)} ms"
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(
            f"| {row.name} | {fmt(s.p50)} | {fmt(s.p95)} | {fmt(s.p99)} | {target} | {met} "
            f"| {row.notes} |"
        )
    if result.train is not None:
        lines.append(f"\ntrain() on the synthetic latency users: {fmt(result.train['seconds'])} s.")
    lines += [f"\n{note}" for note in result.notes]
    return lines


def write(report: RecReport, out_dir: Path, stem: str = "recommend") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / f"{stem}.md", out_dir / f"{stem}.json"
    md_path.write_text(render(report), encoding="utf-8")
    write_json(json_path, asdict(report))
    return md_path, json_path
