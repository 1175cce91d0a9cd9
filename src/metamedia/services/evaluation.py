"""Search quality on a user's own catalog: MRR@10, Recall@10 and Recall@100 per mode.

A query file names, for each query, the one item that should be found: its id
(`gold`) or its `title` and `year`, resolved against the catalog. Problems are
per line (bad JSON, missing fields, a title+year matching no item or several)
and never stop the run: the good lines are still evaluated, so a user fixing a
large file sees every problem at once.

`evaluate` does nothing per query but build the request, run
`SearchService.search` and find the gold id in the results, so it is cheap
enough to call in a loop of relevance experiments. It clears the search-result
cache first: an experiment that changes the service's settings in place must
measure the new ranking, not the answer cached under the old one.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from metamedia.domain import SearchMode, SearchRequest
from metamedia.engine.titles import strict_title_key
from metamedia.errors import InvalidRequestError, MetaMediaError
from metamedia.services.runtime import Runtime
from metamedia.services.search import SearchService
from metamedia.services.validation import describe_validation_error

MODES: tuple[SearchMode, ...] = ("hybrid", "keyword", "semantic")
DEFAULT_LIMIT = 100
QUERY_PREVIEW_CHARS = 80

Progress = Callable[[int, int], None]
"""Called as progress(searches_done, searches_total) after every search."""


@dataclass(frozen=True)
class EvalQuery:
    """One line of a query file: the text, and the item that should be found.

    `gold` is the media id; when the file gave only `title` and `year`, it is
    None until `resolve_queries` fills it in from the catalog.
    """

    line: int
    query: str
    gold: str | None = None
    title: str | None = None
    year: int | None = None


@dataclass(frozen=True)
class EvalProblem:
    """A line that was not evaluated, and why (1-based line number)."""

    line: int
    reason: str
    query: str | None = None


@dataclass(frozen=True)
class ModeScores:
    """One mode's scores. Every evaluated query counts in the denominator, so a
    query the service refused (e.g. too long) counts as a miss and in `refused`."""

    mrr_at_10: float
    recall_at_10: float
    recall_at_100: float
    queries: int
    refused: int = 0
    p50_ms: float = 0.0


@dataclass(frozen=True)
class QueryRanks:
    """Where the gold item came in each mode (1-based; None: not in the results),
    the first result's id, the search's wall time and any refusal message."""

    line: int
    query: str
    gold: str
    rank: dict[str, int | None]
    first: dict[str, str | None] = field(default_factory=dict)
    ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalReport:
    modes: dict[str, ModeScores]
    ranks: list[QueryRanks]
    unresolved: list[EvalProblem]
    limit: int = DEFAULT_LIMIT
    tenant: str = "default"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (what `metamedia eval search --json` writes)."""
        return asdict(self)


# -- reading a query file ----------------------------------------------------------


def load_eval_queries(path: Path) -> tuple[list[EvalQuery], list[EvalProblem]]:
    """Parse a JSONL query file. Each bad line becomes a problem; the rest load.

    Fields: `query`, and either `gold` (a media id) or `title` + `year`. Other
    fields are ignored, so one file can serve several tools. Blank lines skip.
    """
    queries: list[EvalQuery] = []
    problems: list[EvalProblem] = []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            parsed = parse_eval_line(raw, number)
            if isinstance(parsed, EvalProblem):
                problems.append(parsed)
            else:
                queries.append(parsed)
    return queries, problems


def parse_eval_line(raw: str, line: int) -> EvalQuery | EvalProblem:
    """One JSONL line as a query, or the reason it cannot be one."""
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as exc:
        return EvalProblem(line, f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(row, dict):
        return EvalProblem(line, "not a JSON object")
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        return EvalProblem(line, "missing 'query' (a non-empty string)")
    query = query.strip()
    preview = _preview(query)
    gold = row.get("gold")
    if isinstance(gold, int) and not isinstance(gold, bool):
        gold = str(gold)
    if gold is not None and (not isinstance(gold, str) or not gold.strip()):
        return EvalProblem(line, "'gold' must be a media id (a non-empty string)", preview)
    title = row.get("title")
    if title is not None and (not isinstance(title, str) or not title.strip()):
        return EvalProblem(line, "'title' must be a non-empty string", preview)
    year = _year(row.get("year"))
    if row.get("year") is not None and year is None:
        return EvalProblem(line, f"'year' must be a whole number, not {row['year']!r}", preview)
    if gold is None and (title is None or year is None):
        return EvalProblem(line, "needs 'gold' (a media id) or both 'title' and 'year'", preview)
    return EvalQuery(line, query, gold.strip() if gold else None, title, year)


def _year(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _preview(query: str) -> str:
    if len(query) <= QUERY_PREVIEW_CHARS:
        return query
    return query[: QUERY_PREVIEW_CHARS - 1].rstrip() + "…"


# -- resolving gold items against the catalog --------------------------------------

# Gold titles are matched as written (case, accents, punctuation and "Matrix, The"
# aside): the key search's own exact-title lookup prefers.
normalise_title = strict_title_key


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    title: str
    year: int | None


def catalog_entries(service: SearchService | Runtime, tenant: str) -> list[CatalogEntry]:
    """Every public item of a tenant as (id, title, year)."""
    rows = _service(service).repo.catalog_titles(tenant)
    return [CatalogEntry(i, t, y) for i, t, y in rows]


def resolve_queries(
    queries: Sequence[EvalQuery],
    catalog: Iterable[CatalogEntry],
) -> tuple[list[EvalQuery], list[EvalProblem]]:
    """Fill in gold ids from title+year and check every gold id is in the catalog."""
    entries = list(catalog)
    ids = {entry.id for entry in entries}
    by_title: dict[str, list[CatalogEntry]] = {}
    if any(q.gold is None for q in queries):  # only then is the title index worth building
        for entry in entries:
            by_title.setdefault(normalise_title(entry.title), []).append(entry)
    resolved: list[EvalQuery] = []
    problems: list[EvalProblem] = []
    for q in queries:
        preview = _preview(q.query)
        if q.gold is not None:
            if q.gold in ids:
                resolved.append(q)
            else:
                problems.append(
                    EvalProblem(q.line, f"gold id {q.gold!r} is not in the catalog", preview)
                )
            continue
        title, year = q.title or "", q.year
        same_title = by_title.get(normalise_title(title), [])
        matches = [e for e in same_title if e.year == year]
        if len(matches) == 1:
            resolved.append(EvalQuery(q.line, q.query, matches[0].id, q.title, q.year))
            continue
        if matches:
            listed = ", ".join(e.id for e in matches[:5])
            reason = (
                f"{len(matches)} catalog items are titled {title!r} ({year}): {listed}; give 'gold'"
            )
        else:
            years = sorted({e.year for e in same_title if e.year is not None})
            hint = f" (it has {', '.join(map(str, years[:5]))})" if years else ""
            reason = f"no catalog item titled {title!r} ({year}){hint}"
        problems.append(EvalProblem(q.line, reason, preview))
    return resolved, problems


# -- running the searches ----------------------------------------------------------


def evaluate(
    service: SearchService | Runtime,
    queries: Sequence[EvalQuery],
    modes: Sequence[str] = MODES,
    limit: int = DEFAULT_LIMIT,
    tenant: str = "default",
    progress: Progress | None = None,
    problems: Sequence[EvalProblem] = (),
) -> EvalReport:
    """Search every query in every mode and score where the gold item lands.

    Queries without a gold id are resolved by title+year first (one catalog
    scan); those that do not resolve, and any gold id missing from the catalog,
    join `problems` (e.g. the loader's) in `report.unresolved`. Recall@100 is
    recall at `limit` when `limit` < 100.
    """
    search = _service(service)
    for mode in modes:
        if mode not in MODES:
            raise InvalidRequestError(f"unknown mode {mode!r}: use {', '.join(MODES)}")
    if not 1 <= limit <= 100:
        raise InvalidRequestError(f"limit must be 1-100, not {limit}")
    checked, unresolved = resolve_queries(queries, catalog_entries(search, tenant))
    search.caches.search.clear()
    if checked and any(mode != "keyword" for mode in modes):
        search.embedder.encode(["warm up"])  # model load stays out of the first latency
    total, done = len(checked) * len(modes), 0
    rows = [QueryRanks(q.line, _preview(q.query), q.gold or "", {}) for q in checked]
    for mode in modes:
        for q, row in zip(checked, rows, strict=True):
            try:
                request = SearchRequest.model_validate(
                    {"query": q.query, "mode": mode, "limit": limit, "tenant": tenant}
                )
                started = time.perf_counter()
                ids = [hit.id for hit in search.search(request).results]
                row.ms[mode] = (time.perf_counter() - started) * 1000
            except ValidationError as exc:
                ids, row.errors[mode] = [], describe_validation_error(exc)
            except MetaMediaError as exc:
                ids, row.errors[mode] = [], exc.message
            row.rank[mode] = ids.index(row.gold) + 1 if row.gold in ids else None
            row.first[mode] = ids[0] if ids else None
            done += 1
            if progress is not None:
                progress(done, total)
    scores = {mode: mode_scores(rows, mode) for mode in modes}
    problems_all = sorted([*problems, *unresolved], key=lambda p: p.line)
    return EvalReport(scores, rows, problems_all, limit, tenant)


def mode_scores(rows: Sequence[QueryRanks], mode: str) -> ModeScores:
    """One mode's scores over any subset of a report's rows (slice by length, source...)."""
    n = len(rows)
    latencies = [row.ms[mode] for row in rows if mode in row.ms]
    ranks = [row.rank.get(mode) for row in rows]
    found = [r for r in ranks if r is not None]
    denominator = max(n, 1)
    return ModeScores(
        mrr_at_10=sum(1.0 / r for r in found if r <= 10) / denominator,
        recall_at_10=sum(1 for r in found if r <= 10) / denominator,
        recall_at_100=sum(1 for r in found if r <= 100) / denominator,
        queries=n,
        refused=sum(1 for row in rows if mode in row.errors),
        p50_ms=statistics.median(latencies) if latencies else 0.0,
    )


def _service(service: SearchService | Runtime) -> SearchService:
    return service.search if isinstance(service, Runtime) else service
