"""`metamedia eval search` and the evaluation service on the bundled demo catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from metamedia.cli import app
from metamedia.services.evaluation import (
    EvalQuery,
    evaluate,
    load_eval_queries,
    normalise_title,
)
from metamedia.services.runtime import Runtime
from tests.conftest import write_jsonl

runner = CliRunner()

# Good lines (1, 2, 7) must be evaluated whatever happens to the bad ones between them.
QUERY_LINES: list[Any] = [
    {"query": "haunted manor where the rooms rearrange themselves at night", "gold": "mm-0001"},
    {
        "query": "a mute drover drives longhorns across a drought",
        "title": "dust on the silver trail",
        "year": 1938,
    },
    "{broken",
    {"query": "a film nobody made", "title": "No Such Film", "year": 1999},
    {"query": "a vault heist", "gold": "mm-9999"},
    {"gold": "mm-0002"},
    {
        "query": "tap numbers save a failing Manhattan nightclub",
        "title": "Midnight at the Velvet Carousel",
        "year": 1937,
    },
    {"query": "tap numbers", "title": "Midnight at the Velvet Carousel", "year": 1800},
]


def _demo(demo_data_dir: Path, tmp_path: Path) -> str:
    data = tmp_path / "data"
    shutil.copytree(demo_data_dir, data)
    return str(data)


def test_eval_prints_the_per_mode_table_and_reports_bad_lines(
    demo_data_dir: Path, tmp_path: Path
) -> None:
    data = _demo(demo_data_dir, tmp_path)
    queries = write_jsonl(tmp_path / "q.jsonl", QUERY_LINES)
    result = runner.invoke(app, ["eval", "search", str(queries), "--data-dir", data])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("MRR@10", "Recall@10", "Recall@100"):
        assert header in out
    for mode in ("hybrid", "keyword", "semantic"):
        assert mode in out
    assert "3 queries" in out and "mm-0003" in out  # title+year resolved, shown per query
    problems = result.stderr
    assert "q.jsonl:3: not valid JSON" in problems
    assert "q.jsonl:4: no catalog item titled 'No Such Film' (1999)" in problems
    assert "q.jsonl:5: gold id 'mm-9999' is not in the catalog" in problems
    assert "q.jsonl:6: missing 'query'" in problems
    assert "q.jsonl:8:" in problems and "(it has 1937)" in problems


def test_eval_json_has_per_query_ranks_and_resolved_gold(
    demo_data_dir: Path, tmp_path: Path
) -> None:
    data = _demo(demo_data_dir, tmp_path)
    queries = write_jsonl(tmp_path / "q.jsonl", QUERY_LINES)
    out_file = tmp_path / "report.json"
    result = runner.invoke(
        app,
        ["eval", "search", str(queries), "--modes", "keyword,semantic", "--limit", "20",
         "--json", str(out_file), "--data-dir", data],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out_file.read_text(encoding="utf-8"))
    assert set(report["modes"]) == {"keyword", "semantic"} and report["limit"] == 20
    ranks = {row["line"]: row for row in report["ranks"]}
    assert set(ranks) == {1, 2, 7}
    assert ranks[2]["gold"] == "mm-0003" and ranks[7]["gold"] == "mm-0002"
    for row in ranks.values():
        assert set(row["rank"]) == set(row["first"]) == {"keyword", "semantic"}
        for mode, rank in row["rank"].items():
            assert rank is None or 1 <= rank <= 20
            assert (rank == 1) == (row["first"][mode] == row["gold"])
    assert [p["line"] for p in report["unresolved"]] == [3, 4, 5, 6, 8]
    for mode, scores in report["modes"].items():
        found = [r["rank"][mode] for r in report["ranks"] if r["rank"][mode] is not None]
        assert scores["queries"] == 3 and scores["refused"] == 0
        assert scores["mrr_at_10"] == sum(1 / r for r in found if r <= 10) / 3
        assert scores["recall_at_10"] == sum(1 for r in found if r <= 10) / 3
        assert scores["recall_at_100"] == len(found) / 3

    stdout = runner.invoke(
        app,
        ["eval", "search", str(queries), "--modes", "keyword", "--json", "-", "--data-dir", data],
    )
    assert stdout.exit_code == 0, stdout.output
    assert len(json.loads(stdout.stdout)["ranks"]) == 3


def test_eval_fails_cleanly_without_usable_queries(demo_data_dir: Path, tmp_path: Path) -> None:
    data = _demo(demo_data_dir, tmp_path)
    missing = runner.invoke(
        app, ["eval", "search", str(tmp_path / "none.jsonl"), "--data-dir", data]
    )
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    bad = write_jsonl(tmp_path / "bad.jsonl", ["{", {"query": "x"}])
    none = runner.invoke(app, ["eval", "search", str(bad), "--data-dir", data])
    assert none.exit_code == 2 and "no query could be evaluated" in none.stderr
    assert "bad.jsonl:2: needs 'gold'" in none.stderr
    ok = write_jsonl(tmp_path / "ok.jsonl", [QUERY_LINES[0]])
    mode = runner.invoke(app, ["eval", "search", str(ok), "--modes", "fuzzy", "--data-dir", data])
    assert mode.exit_code == 2 and "unknown mode 'fuzzy'" in mode.stderr


def test_evaluate_from_python_counts_refused_queries_as_misses(
    demo_runtime: Runtime, tmp_path: Path
) -> None:
    queries, problems = load_eval_queries(write_jsonl(tmp_path / "q.jsonl", QUERY_LINES))
    assert [q.line for q in queries] == [1, 2, 4, 5, 7, 8] and [p.line for p in problems] == [3, 6]
    too_long = EvalQuery(line=99, query="lost film " * 10_000, gold="mm-0001")
    calls: list[tuple[int, int]] = []
    report = evaluate(
        demo_runtime.search,
        [*queries, too_long],
        modes=["keyword"],
        progress=lambda done, total: calls.append((done, total)),
        problems=problems,
    )
    assert calls[-1] == (4, 4) and len(calls) == 4  # lines 1, 2, 7 and the long one
    scores = report.modes["keyword"]
    assert scores.queries == 4 and scores.refused == 1
    refused = next(row for row in report.ranks if row.line == 99)
    assert refused.rank["keyword"] is None and "keyword" in refused.errors
    found = sum(1 for row in report.ranks if row.rank["keyword"] is not None)
    assert scores.recall_at_100 == found / 4 <= 0.75  # the refused query counts as a miss
    assert [p.line for p in report.unresolved] == [3, 4, 5, 6, 8]


def test_titles_normalise_case_punctuation_and_articles() -> None:
    assert normalise_title("Matrix, The") == normalise_title("the matrix") == "the matrix"
    assert normalise_title("Thelma & Louise") == "thelma and louise"
    assert normalise_title("Ocean\u2019s Eleven") == normalise_title("oceans eleven")
    assert normalise_title("Se7en") == "se7en" and normalise_title("Amélie") == "amelie"
    assert normalise_title("Star Wars: Episode IV") == "star wars episode iv"
