"""Check the hand-written descriptive query sets in bench/data against the catalog.

Run: `python -m bench.check_queries [FILE ...]` (default: the dev and train files).

For every line of each JSON Lines file it verifies that
- the record has a string `query`, `title`, `gold` and an int `year`;
- `gold` is an href of the Wikipedia catalog whose row has exactly that title and year;
- the query is one sentence of 8-30 words;
- no title word (lower-cased, punctuation stripped, stopwords excepted; a plural
  or singular form counts as the same word) appears in the query; a title made
  only of stopwords ("Up", "Her", "It") is checked word for word instead;
- no cast member's or director's full name appears in the query (directors as
  named by "directed by ..." in the catalog extract);
- no film (gold) and no query text appears twice, within or across files.
A cast member's or director's surname alone in a query is reported as a warning only.
Prints a summary per file and exits 1 on any violation.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.datasets import wikipedia_dir
from metamedia.formats.wikipedia import wikipedia_files

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_FILES = (DATA_DIR / "descriptive-dev.jsonl", DATA_DIR / "descriptive-train.jsonl")
MIN_WORDS = 8
MAX_WORDS = 30

STOPWORDS = frozenset(
    """
    a an the of and or but nor in on at to for with from by as into onto upon over under
    about out up off is are was be it its i me my we us our you your he him his she her
    they them their this that these those who whom what which how why when where
    not no so if then than too very can will do does did has have had
    """.split()
)

_TOKEN = re.compile(r"[a-z0-9]+")
_SENTENCE_BREAK = re.compile(r"[.!?;]\s+\S")
# "directed by Billy Wilder", "written and directed by Joel and Ethan Coen": names in the lead.
_NAME_WORD = r"[A-Z](?:\.|[\w'-]+)"
_DIRECTOR = re.compile(
    rf"directed(?: and [a-z-]+)? by ({_NAME_WORD}(?: (?:and )?{_NAME_WORD}){{1,4}})"
)


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens with possessives and punctuation removed."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"'s\b", "", text).replace("'", "")
    return _TOKEN.findall(text)


def stem(word: str) -> str:
    """Crude singular form so that "car" matches a title word "cars"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def title_words(title: str) -> set[str]:
    words = [w for w in tokens(title) if len(w) > 1 or w.isdigit()]
    content = {w for w in words if w not in STOPWORDS}
    return content or set(words)


@dataclass
class FileReport:
    path: Path
    lines: int = 0
    violations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    decades: Counter[int] = field(default_factory=Counter)


def load_catalog() -> dict[str, dict[str, Any]]:
    """href -> catalog row, for every row that has an href."""
    rows: dict[str, dict[str, Any]] = {}
    for file in wikipedia_files(wikipedia_dir()):
        for entry in json.loads(file.read_text(encoding="utf-8")):
            href = entry.get("href")
            if href:
                rows.setdefault(href, entry)
    return rows


def check_record(
    record: dict[str, Any], catalog: dict[str, dict[str, Any]], report: FileReport, where: str
) -> None:
    query, title, year, gold = (record.get(k) for k in ("query", "title", "year", "gold"))
    if not (isinstance(query, str) and isinstance(title, str) and isinstance(gold, str)):
        report.violations.append(f"{where}: query, title and gold must be strings")
        return
    if not isinstance(year, int) or isinstance(year, bool):
        report.violations.append(f"{where}: year must be an int")
        return
    row = catalog.get(gold)
    if row is None:
        report.violations.append(f"{where}: gold {gold!r} is not an href in the catalog")
    elif row.get("title") != title or row.get("year") != year:
        report.violations.append(
            f"{where}: gold {gold!r} is {row.get('title')!r} ({row.get('year')}),"
            f" not {title!r} ({year})"
        )
    report.decades[year // 10 * 10] += 1

    words = query.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        report.violations.append(f"{where}: {len(words)} words, want {MIN_WORDS}-{MAX_WORDS}")
    if _SENTENCE_BREAK.search(query.strip()):
        report.violations.append(f"{where}: more than one sentence: {query!r}")

    query_tokens = tokens(query)
    query_stems = {stem(w) for w in query_tokens}
    leaked = sorted(w for w in title_words(title) if w in query_tokens or stem(w) in query_stems)
    if leaked:
        report.violations.append(f"{where}: title word(s) {leaked} in {query!r}")

    lowered = " ".join(query_tokens)
    people = list((row or {}).get("cast") or [])
    for match in _DIRECTOR.findall((row or {}).get("extract") or ""):
        people += match.split(" and ")
    for name in people:
        name_tokens = tokens(name)
        if not name_tokens:
            continue
        if len(name_tokens) > 1 and f" {' '.join(name_tokens)} " in f" {lowered} ":
            report.violations.append(f"{where}: cast/director name {name!r} in {query!r}")
        elif len(name_tokens[-1]) > 3 and name_tokens[-1] in query_tokens:
            report.warnings.append(f"{where}: surname of {name!r} in {query!r}")


def check_files(paths: list[Path]) -> list[FileReport]:
    catalog = load_catalog()
    seen_gold: dict[str, str] = {}
    seen_query: dict[str, str] = {}
    reports = []
    for path in paths:
        report = FileReport(path)
        reports.append(report)
        if not path.is_file():
            report.violations.append(f"{path}: missing")
            continue
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path.name}:{number}"
                report.lines += 1
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    report.violations.append(f"{where}: invalid JSON ({error})")
                    continue
                if not isinstance(record, dict):
                    report.violations.append(f"{where}: not a JSON object")
                    continue
                check_record(record, catalog, report, where)
                gold = record.get("gold")
                if isinstance(gold, str):
                    if gold in seen_gold:
                        first = seen_gold[gold]
                        report.violations.append(f"{where}: film {gold!r} already at {first}")
                    else:
                        seen_gold[gold] = where
                query = record.get("query")
                if isinstance(query, str):
                    key = " ".join(tokens(query))
                    if key in seen_query:
                        report.violations.append(f"{where}: same query as {seen_query[key]}")
                    else:
                        seen_query[key] = where
    return reports


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] or list(DEFAULT_FILES)
    reports = check_files(paths)
    failed = False
    for report in reports:
        decades = ", ".join(f"{d}s:{n}" for d, n in sorted(report.decades.items()))
        status = "ok" if not report.violations else f"{len(report.violations)} violation(s)"
        print(f"{report.path.name}: {report.lines} queries, {status}; decades {decades}")
        for message in report.violations:
            print(f"  VIOLATION {message}")
        for message in report.warnings:
            print(f"  warning {message}")
        failed = failed or bool(report.violations)
    total = sum(r.lines for r in reports)
    verdict = "FAILED" if failed else "all checks passed"
    print(f"total: {total} queries in {len(reports)} file(s); {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
