"""Ingestion: summary counts, per-row rejects, idempotence, re-embedding, crash safety."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from metamedia.domain import MAX_DESCRIPTION_CHARS, SearchRequest
from metamedia.services.runtime import Runtime
from tests.conftest import item, write_jsonl

GOOD = [
    item(
        "g1",
        "The Quiet Vault",
        "A safecracker plans one last bank job.",
        genres=["crime"],
        year=1996,
    ),
    item(
        "g2", "Orbit of Ash", "Astronauts fight to keep a failing space station alive.", year=2015
    ),
    item("g3", "Paper Lanterns", "Two sisters reunite for a summer festival.", type="series"),
]
BAD = [
    item("b1", "", "missing title"),
    item("b2", "Bad Year", year=1200),
    item("b3", "Unknown Type", type="podcast"),
    item("b4", "Wrong Field Type", genres="crime"),
    "{not json at all",
    item("b6", "Oversize", "x" * (MAX_DESCRIPTION_CHARS + 1)),
]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_bad_rows_are_rejected_with_file_line_and_reason(tmp_path: Path, runtime: Runtime) -> None:
    path = write_jsonl(tmp_path / "mixed.jsonl", [GOOD[0], *BAD, GOOD[1], GOOD[2]])
    report = runtime.ingest.ingest_path(path)
    assert (report.read, report.inserted, report.rejected) == (9, 3, 6)
    reasons = {r.line: r.reason for r in report.rejects}
    assert "title" in reasons[2]
    assert "year" in reasons[3] and "1200" in reasons[3]
    assert "type" in reasons[4] and "podcast" in reasons[4]
    assert "genres" in reasons[5]
    assert "broken JSON" in reasons[6]
    assert "description" in reasons[7] and "20000" in reasons[7]
    assert all(r.source == str(path) for r in report.rejects)
    assert report.rejects_file is not None
    written = _lines(Path(report.rejects_file))
    assert [w["line"] for w in written] == [2, 3, 4, 5, 6, 7]
    assert written[4]["raw"].startswith("{not json")
    # the good rows after the bad ones were all kept and are searchable
    assert runtime.repo.count() == 3
    hits = runtime.search.search(SearchRequest(query="space station", mode="semantic"))
    assert hits.results[0].id == "g2"


def test_reingesting_the_same_file_changes_and_embeds_nothing(
    tmp_path: Path, runtime: Runtime
) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", GOOD)
    first = runtime.ingest.ingest_path(path)
    assert (first.inserted, first.embedded) == (3, 3)
    watermark = runtime.repo.last_change()
    second = runtime.ingest.ingest_path(path)
    assert (second.inserted, second.updated, second.unchanged, second.embedded) == (0, 0, 3, 0)
    assert runtime.repo.last_change() == watermark, "an unchanged row must not touch the outbox"
    assert second.rejects_file is None


def test_changed_row_is_updated_and_reembedded(tmp_path: Path, runtime: Runtime) -> None:
    runtime.ingest.ingest_path(write_jsonl(tmp_path / "v1.jsonl", GOOD))
    changed = [dict(GOOD[0], description="A chef runs a tiny noodle bar in Osaka."), GOOD[1]]
    changed.append(dict(GOOD[2], year=2001))  # metadata change only: no new embedding
    report = runtime.ingest.ingest_path(write_jsonl(tmp_path / "v2.jsonl", changed))
    assert (report.updated, report.unchanged, report.embedded) == (2, 1, 1)
    found = runtime.search.search(SearchRequest(query="noodle restaurant", mode="semantic"))
    assert found.results[0].id == "g1"
    assert runtime.catalog.get("g3").year == 2001
    assert len(runtime.indexes.index) == 3


def test_duplicate_ids_in_one_file_are_merged_not_overwritten(
    tmp_path: Path, runtime: Runtime
) -> None:
    rows = [GOOD[0], dict(GOOD[0], title="The Quiet Vault (Director's Cut)")]
    report = runtime.ingest.ingest_path(write_jsonl(tmp_path / "d.jsonl", rows))
    assert (report.inserted, report.merged) == (1, 1)
    stored = runtime.catalog.get("g1")
    assert stored.title == "The Quiet Vault"
    assert stored.alternate_titles == ["The Quiet Vault (Director's Cut)"]


def test_csv_catalog_with_a_wrong_type_cell(tmp_path: Path, runtime: Runtime) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "id,title,description,genres,year,rating,platforms\n"
        "c1,Harbor Lights,A lighthouse keeper finds a message.,drama|mystery,1987,4.0,mubi@GB\n"
        "c2,Broken,Year is words,drama,nineteen,3.0,\n",
        encoding="utf-8",
    )
    report = runtime.ingest.ingest_path(path)
    assert (report.inserted, report.rejected) == (1, 1)
    assert report.rejects[0].line == 3 and "year" in report.rejects[0].reason
    stored = runtime.catalog.get("c1")
    assert stored.platforms[0].name == "mubi" and stored.platforms[0].region == "GB"


def _generated_catalog(path: Path, n: int) -> Path:
    subjects = [
        "a lighthouse keeper",
        "two rival chefs",
        "a retired boxer",
        "a lost robot",
        "a jazz pianist",
        "a small-town sheriff",
        "twin detectives",
        "a dragon tamer",
    ]
    places = [
        "in Lisbon",
        "on Mars",
        "in a snowed-in hotel",
        "aboard a night train",
        "in 1920s Shanghai",
        "under the sea",
        "in a haunted library",
        "in the desert",
    ]
    rows = [
        item(
            f"gen-{i:05d}",
            f"Generated Story {i}",
            f"{subjects[i % 8]} {places[(i // 8) % 8]} faces challenge number {i}.",
            genres=[["drama", "comedy", "crime", "sci-fi"][i % 4]],
            year=1950 + i % 70,
        )
        for i in range(n)
    ]
    return write_jsonl(path, rows)


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM media").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_rows", [1, 600])
def test_ingest_survives_kill_9(tmp_path: Path, make_runtime: Any, kill_after_rows: int) -> None:
    total = 1200
    catalog = _generated_catalog(tmp_path / "big.jsonl", total)
    data_dir = tmp_path / "data"
    env = {**os.environ, "METAMEDIA_DATA_DIR": str(data_dir), "METAMEDIA_INGEST_BATCH_SIZE": "50"}
    command = [sys.executable, "-m", "metamedia", "ingest", str(catalog), "--json"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = data_dir / "catalog.sqlite3"
    deadline = time.monotonic() + 300
    while _count(db) < kill_after_rows and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    partial = _count(db)
    assert 0 < partial < total

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["inserted"] + report["unchanged"] == total
    assert report["unchanged"] >= partial - 50  # at most the batch in flight was lost

    with sqlite3.connect(db) as conn:
        ids = [r[0] for r in conn.execute("SELECT external_id FROM media")]
    assert len(ids) == total and len(set(ids)) == total
    runtime = make_runtime(data_dir)
    assert len(runtime.indexes.index) == total
    assert runtime.indexes.check().healthy
    found = runtime.search.search(SearchRequest(query="robot on Mars", mode="semantic", limit=3))
    assert "robot" in found.results[0].description


def test_movielens_directory_ingests_with_ml_ids(movielens_subset: Path, runtime: Runtime) -> None:
    """A 300-movie slice of the real MovieLens files, in the directory format."""
    report = runtime.ingest.ingest_path(movielens_subset)
    assert (report.format, report.inserted, report.rejected) == ("movielens", 300, 0)
    toy = runtime.catalog.get("ml:1")
    assert toy.title == "Toy Story" and toy.year == 1995 and toy.external_ids["imdb"] == "tt0114709"
    found = runtime.search.search(SearchRequest(query="Toy Story", limit=1))
    assert found.results[0].id == "ml:1"
