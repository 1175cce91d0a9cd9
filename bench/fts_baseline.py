"""`python -m bench.fts_baseline`: the textbook keyword baseline on our validation sets.

Plain SQLite FTS5 BM25 over the raw Wikipedia rows (title, lead, cast,
genres; porter stemming; every column weight 1; an OR of every query word
without stopwords; no pruning), as the issue describes it. It is the floor
each of our modes is compared with in the per-change table. Writes
bench/results/fts-baseline.md and .json.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.datasets import KnownItemQuery, descriptive_queries, tomt_queries, wikipedia_dir
from bench.report import header_lines, machine_info, write_json
from metamedia.engine.lexical import STOPWORDS
from metamedia.formats.wikipedia import wikipedia_files

BENCH_DIR = Path(__file__).resolve().parent
OUT = BENCH_DIR / "results"
_WORD = re.compile(r"\w+")


def _build(path: Path) -> tuple[sqlite3.Connection, list[str]]:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE VIRTUAL TABLE f USING fts5(title, body, people, genres, "
        "tokenize='porter unicode61 remove_diacritics 2')"
    )
    ids: list[str] = []
    for file in wikipedia_files(wikipedia_dir()):
        for film in json.loads(file.read_text(encoding="utf-8")):
            if not film.get("href"):
                continue
            ids.append(film["href"])
            conn.execute(
                "INSERT INTO f(rowid, title, body, people, genres) VALUES (?, ?, ?, ?, ?)",
                (
                    len(ids),
                    film.get("title") or "",
                    film.get("extract") or "",
                    " ".join(film.get("cast") or []),
                    " ".join(film.get("genres") or []),
                ),
            )
    conn.commit()
    return conn, ids


def _match(query: str) -> str | None:
    words = [w.lower() for w in _WORD.findall(query)]
    terms = list(dict.fromkeys(w for w in words if w not in STOPWORDS))
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms) or None


def _scores(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        "queries": len(ranks),
        "mrr_at_10": sum(1.0 / r for r in ranks if r is not None and r <= 10) / n,
        "recall_at_10": sum(1 for r in ranks if r is not None and r <= 10) / n,
        "recall_at_100": sum(1 for r in ranks if r is not None) / n,
    }


def _pairs(queries: list[KnownItemQuery]) -> list[tuple[str, str]]:
    return [(q.query, q.gold) for q in queries]


def run() -> dict[str, Any]:
    sets = {
        "descriptive-dev": _pairs(descriptive_queries("descriptive-dev")),
        "descriptive-dev-seen": _pairs(descriptive_queries("descriptive-dev-seen")),
        "reddit-tomt-validation": _pairs(tomt_queries("validation", max_chars=None)),
    }
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        conn, ids = _build(Path(tmp) / "fts.sqlite3")
        for name, queries in sets.items():
            ranks: list[int | None] = []
            for query, gold in queries:
                match = _match(query)
                rows = (
                    conn.execute(
                        "SELECT rowid FROM f WHERE f MATCH ? ORDER BY bm25(f) LIMIT 100", (match,)
                    ).fetchall()
                    if match
                    else []
                )
                found = [ids[r[0] - 1] for r in rows]
                ranks.append(found.index(gold) + 1 if gold in found else None)
            out[name] = _scores(ranks)
        conn.close()
    return out


def main() -> int:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    raw = run()
    lines = [
        *header_lines(
            "plain FTS5 BM25 baseline",
            "python -m bench.fts_baseline",
            False,
            started,
            time.perf_counter() - clock,
            machine_info(),
        ),
        "",
        "| set | queries | MRR@10 | Recall@10 | Recall@100 |",
        "|---|---|---|---|---|",
    ]
    for name, s in raw.items():
        lines.append(
            f"| {name} | {s['queries']} | {s['mrr_at_10']:.3f} | {s['recall_at_10']:.3f} | "
            f"{s['recall_at_100']:.3f} |"
        )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fts-baseline.md").write_text("\n".join(lines) + "\n")
    write_json(OUT / "fts-baseline.json", raw)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
