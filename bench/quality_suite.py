"""`python -m bench quality`: search quality on every query set we may look at.

All sets run through `metamedia.services.evaluation.evaluate`, the code behind
`metamedia eval search`, so the bench and a user's own evaluation can never
disagree on what MRR@10 means. The sets:

- tip-of-the-tongue requests at full length: Reddit TOMT validation and
  TREC-ToT 2023 train (answers joined to the catalog via MovieLens; the join
  counts are reported), scored separately and together;
- everyday one-sentence descriptions (bench/data/descriptive-dev.jsonl), and
  new descriptions of films the encoder was trained on (descriptive-dev-seen);
- exact titles: catalog titles drawn at random (seeded) used as the query.
  A draw passes "first" when the first result has that title (normalised
  case/punctuation) and "within n" when the drawn film is among the first n
  results, n = the number of catalog films with that title.

Targets are the issue's; a missed target is a row, not a failure.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.datasets import KnownItemQuery, tomt_queries, trec_tot_queries
from bench.report import header_lines, machine_info, write_json
from metamedia.config import Settings
from metamedia.services.evaluation import (
    CatalogEntry,
    EvalQuery,
    EvalReport,
    ModeScores,
    catalog_entries,
    evaluate,
    load_eval_queries,
    mode_scores,
    normalise_title,
)
from metamedia.services.runtime import Runtime

BENCH_DIR = Path(__file__).resolve().parent
DESCRIPTIVE_DEV = BENCH_DIR / "data" / "descriptive-dev.jsonl"
DESCRIPTIVE_SEEN = BENCH_DIR / "data" / "descriptive-dev-seen.jsonl"
EXACT_TITLE_SEED = 20261201


@dataclass(frozen=True)
class QualityOptions:
    command: str
    out: Path
    data_dir: Path | None = None
    cache_dir: Path = BENCH_DIR / ".cache"
    fresh: bool = False
    modes: tuple[str, ...] = ("hybrid", "keyword", "semantic")
    max_queries: int | None = None
    exact_titles: int = 1000
    seed: int = EXACT_TITLE_SEED
    descriptive: Path = DESCRIPTIVE_DEV


@dataclass
class SetResult:
    """One query set: scores per mode, the report behind them, and notes."""

    name: str
    scores: dict[str, ModeScores]
    report: EvalReport | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, dict[str, float]] = field(default_factory=dict)


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _progress(name: str) -> Callable[[int, int], None]:
    step = 0

    def tick(done: int, total: int) -> None:
        nonlocal step
        if done * 10 // max(total, 1) > step or done == total:
            step = done * 10 // max(total, 1)
            _log(f"  {name}: {done}/{total} searches")

    return tick


def _known_item(rows: list[KnownItemQuery]) -> list[EvalQuery]:
    return [EvalQuery(line=i, query=q.query, gold=q.gold) for i, q in enumerate(rows, start=1)]


def _evaluate(
    runtime: Runtime, name: str, queries: list[EvalQuery], opts: QualityOptions
) -> SetResult:
    report = evaluate(runtime, queries, opts.modes, progress=_progress(name))
    result = SetResult(name, report.modes, report)
    if report.unresolved:
        result.notes.append(f"{len(report.unresolved)} queries not evaluated (gold not in catalog)")
    return result


def _tot_sets(runtime: Runtime, opts: QualityOptions) -> list[SetResult]:
    reddit = _known_item(tomt_queries("validation", max_chars=None)[: opts.max_queries])
    trec = trec_tot_queries("2023-train", max_chars=None)
    trec_queries = _known_item(trec.queries[: opts.max_queries])
    a = _evaluate(runtime, "reddit-tomt-validation", reddit, opts)
    a.notes.append("Reddit validation split, full length, answers joined via MovieLens")
    b = _evaluate(runtime, "trec-tot-2023-train", trec_queries, opts)
    c = trec.counts
    b.notes.append(
        f"join: {c['queries']} queries, {c['with_imdb']} gold pages with an IMDb id, "
        f"{c['in_movielens']} in MovieLens, {c['joined']} joined to a Wikipedia film"
    )
    rows = [*(a.report.ranks if a.report else []), *(b.report.ranks if b.report else [])]
    both = SetResult("tot-all", {m: mode_scores(rows, m) for m in opts.modes})
    both.notes.append("the two sets above together: the issue's tip-of-the-tongue targets")
    return [a, b, both]


def _descriptive_set(
    runtime: Runtime, opts: QualityOptions, path: Path, name: str, note: str = ""
) -> SetResult:
    if not path.exists():
        result = SetResult(name, {})
        result.notes.append(f"{path} not found: skipped")
        return result
    queries, problems = load_eval_queries(path)
    queries = queries[: opts.max_queries]
    report = evaluate(runtime, queries, opts.modes, progress=_progress(name), problems=problems)
    result = SetResult(name, report.modes, report)
    if note:
        result.notes.append(note)
    if report.unresolved:
        first = report.unresolved[0]
        result.notes.append(
            f"{len(report.unresolved)} lines not evaluated "
            f"(first: line {first.line}: {first.reason})"
        )
    return result


def draw_titles(entries: list[CatalogEntry], n: int, seed: int) -> list[CatalogEntry]:
    """`n` catalog items drawn without replacement, reproducibly for a given catalog."""
    ordered = sorted((e for e in entries if normalise_title(e.title)), key=lambda e: e.id)
    return random.Random(seed).sample(ordered, min(n, len(ordered)))


def _exact_title_set(runtime: Runtime, opts: QualityOptions) -> SetResult:
    entries = catalog_entries(runtime, "default")
    count = (
        opts.exact_titles if opts.max_queries is None else min(opts.exact_titles, opts.max_queries)
    )
    drawn = draw_titles(entries, count, opts.seed)
    title_of = {e.id: normalise_title(e.title) for e in entries}
    same_title = Counter(title_of.values())
    queries = [EvalQuery(line=i, query=e.title, gold=e.id) for i, e in enumerate(drawn, start=1)]
    report = evaluate(runtime, queries, opts.modes, progress=_progress("exact titles"))
    result = SetResult("exact-titles", report.modes, report)
    for mode in opts.modes:
        first = within = 0
        for row in report.ranks:
            wanted = title_of[row.gold]
            top = row.first.get(mode)
            first += top is not None and title_of.get(top) == wanted
            rank = row.rank.get(mode)
            within += rank is not None and rank <= same_title[wanted]
        n = max(len(report.ranks), 1)
        result.extra[mode] = {"first_has_title": first / n, "within_n": within / n}
    shared = sum(1 for e in drawn if same_title[title_of[e.id]] > 1)
    result.notes.append(
        f"{len(drawn)} draws (seed {opts.seed}) from {len(entries)} items; "
        f"{shared} drawn titles are shared by several catalog films"
    )
    return result


@dataclass(frozen=True)
class Target:
    name: str
    measured: float | None
    goal: str
    met: bool | None


def targets(sets: dict[str, SetResult]) -> list[Target]:
    """The issue's targets, read off the measured sets (None: set not measured)."""
    out: list[Target] = []

    def score(set_name: str, mode: str, metric: str) -> float | None:
        s = sets.get(set_name)
        if s is None or mode not in s.scores or not s.scores[mode].queries:
            return None
        return float(getattr(s.scores[mode], metric))

    def at_least(name: str, value: float | None, floor: float, goal: str) -> None:
        out.append(Target(name, value, goal, None if value is None else value >= floor))

    at_least(
        "descriptive: hybrid MRR@10",
        score("descriptive-dev", "hybrid", "mrr_at_10"),
        0.80,
        ">= 0.80",
    )
    at_least(
        "descriptive: hybrid Recall@10",
        score("descriptive-dev", "hybrid", "recall_at_10"),
        0.90,
        ">= 0.90",
    )
    at_least(
        "tip-of-the-tongue: hybrid MRR@10",
        score("tot-all", "hybrid", "mrr_at_10"),
        0.076,
        ">= 0.076",
    )
    at_least(
        "tip-of-the-tongue: hybrid Recall@100",
        score("tot-all", "hybrid", "recall_at_100"),
        0.30,
        ">= 0.30",
    )
    for set_name, label in (("descriptive-dev", "descriptive"), ("tot-all", "tip-of-the-tongue")):
        hybrid = score(set_name, "hybrid", "mrr_at_10")
        singles = [score(set_name, m, "mrr_at_10") for m in ("keyword", "semantic")]
        best = max((v for v in singles if v is not None), default=None)
        ratio = None if hybrid is None or not best else hybrid / best
        at_least(f"{label}: hybrid / best single mode MRR@10", ratio, 1.10, ">= 1.10x")
    exact = sets.get("exact-titles")
    hybrid_exact = exact.extra.get("hybrid") if exact else None
    for key, label in (
        ("first_has_title", "first result has the title"),
        ("within_n", "drawn film within first n"),
    ):
        value = hybrid_exact[key] if hybrid_exact else None
        at_least(f"exact titles (hybrid): {label}", value, 0.99, ">= 99%")
    return out


def run(opts: QualityOptions) -> dict[str, Any]:
    """Measure every set; returns the raw results (what quality.json holds)."""
    started = time.perf_counter()
    work: Path | None = None
    if opts.data_dir is not None:
        data_dir = opts.data_dir
    else:
        from bench import ingest_bench

        catalog = ingest_bench.ensure_catalog(opts.cache_dir, opts.fresh)
        opts.cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="quality-", dir=opts.cache_dir))
        data_dir = ingest_bench.copy_catalog(catalog.data_dir, work / "catalog")
    machine = machine_info()
    machine["load_avg_start"] = [round(x, 2) for x in os.getloadavg()]
    runtime = Runtime.open(Settings(data_dir=data_dir))
    sets: dict[str, SetResult] = {}
    try:
        _log(f"catalog {data_dir}: {runtime.repo.count()} items")
        for result in [
            *_tot_sets(runtime, opts),
            _descriptive_set(runtime, opts, opts.descriptive, "descriptive-dev"),
            _descriptive_set(
                runtime,
                opts,
                DESCRIPTIVE_SEEN,
                "descriptive-dev-seen",
                "films the encoder was fine-tuned on, described in other words than their "
                "training query (most leads give credits only): not a target set",
            ),
            _exact_title_set(runtime, opts),
        ]:
            sets[result.name] = result
    finally:
        runtime.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "command": opts.command,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": time.perf_counter() - started,
        "data_dir": str(data_dir),
        "max_queries": opts.max_queries,
        "machine": {**machine, "load_avg_end": [round(x, 2) for x in os.getloadavg()]},
        "targets": [asdict(t) for t in targets(sets)],
        "sets": {
            name: {
                "scores": {m: asdict(s) for m, s in r.scores.items()},
                "exact_title": r.extra,
                "notes": r.notes,
                "report": r.report.to_dict() if r.report else None,
            }
            for name, r in sets.items()
        },
    }


def render_markdown(raw: dict[str, Any]) -> str:
    subset = raw["max_queries"] is not None
    lines = [
        *header_lines(
            "quality", raw["command"], subset, raw["started"], raw["seconds"], raw["machine"]
        ),
        f"- catalog: `{raw['data_dir']}`"
        + (f" (at most {raw['max_queries']} queries per set)" if subset else ""),
        "",
        "## Targets",
        "",
        "| target | measured | goal | met? |",
        "|---|---|---|---|",
    ]
    for t in raw["targets"]:
        value = "n/a" if t["measured"] is None else f"{t['measured']:.3f}"
        met = "" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['name']} | {value} | {t['goal']} | {met} |")
    for name, data in raw["sets"].items():
        lines += ["", f"## {name}", ""]
        lines += [f"- {note}" for note in data["notes"]]
        if not data["scores"]:
            continue
        exact = data["exact_title"]
        head = "| mode | queries | MRR@10 | Recall@10 | Recall@100 | refused | p50 ms |"
        rule = "|---|---|---|---|---|---|---|"
        if exact:
            head += " first has title | within n |"
            rule += "---|---|"
        lines += ["", head, rule]
        for mode, s in data["scores"].items():
            row = (
                f"| {mode} | {s['queries']} | {s['mrr_at_10']:.3f} | {s['recall_at_10']:.3f} "
                f"| {s['recall_at_100']:.3f} | {s['refused']} | {s['p50_ms']:.1f} |"
            )
            if exact:
                e = exact[mode]
                row += f" {e['first_has_title']:.3f} | {e['within_n']:.3f} |"
            lines.append(row)
    return "\n".join(lines) + "\n"


def write(raw: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / "quality.md", out_dir / "quality.json"
    md_path.write_text(render_markdown(raw), encoding="utf-8")
    write_json(json_path, raw)
    return md_path, json_path
