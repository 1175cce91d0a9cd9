"""`python -m bench quality`: its query sets join real data, and it writes its report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.datasets import tomt_queries, trec_tot_queries
from bench.quality_suite import QualityOptions, draw_titles, run, write

from metamedia.services.evaluation import CatalogEntry


def test_tip_of_the_tongue_sets_keep_full_length_queries() -> None:
    cut = tomt_queries("validation")
    full = tomt_queries("validation", max_chars=None)
    assert [q.gold for q in full] == [q.gold for q in cut]
    assert max(len(q.query) for q in cut) <= 1000 < max(len(q.query) for q in full)
    trec = trec_tot_queries("2023-train")
    counts = trec.counts
    assert counts["queries"] == 150 and counts["joined"] == len(trec.queries) > 0
    assert counts["queries"] >= counts["with_imdb"] >= counts["in_movielens"] >= counts["joined"]
    assert all(q.gold and q.query for q in trec.queries)


def test_title_draw_is_seeded_and_without_replacement() -> None:
    entries = [CatalogEntry(f"id-{i}", f"Film {i % 7}", 2000 + i) for i in range(50)]
    first = draw_titles(entries, 20, seed=3)
    assert first == draw_titles(list(reversed(entries)), 20, seed=3)
    assert len({e.id for e in first}) == 20 and first != draw_titles(entries, 20, seed=4)
    assert len(draw_titles(entries, 500, seed=3)) == 50


def test_quality_bench_writes_its_report_on_a_small_catalog(
    demo_data_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_data_dir, data)
    opts = QualityOptions(
        command="python -m bench quality --max-queries 5",
        out=tmp_path / "out",
        data_dir=data,
        modes=("keyword",),
        max_queries=5,
        exact_titles=5,
    )
    md_path, json_path = write(run(opts), opts.out)
    raw = json.loads(json_path.read_text(encoding="utf-8"))
    assert set(raw["sets"]) == {
        "reddit-tomt-validation",
        "trec-tot-2023-train",
        "tot-all",
        "descriptive-dev",
        "descriptive-dev-seen",
        "exact-titles",
    }
    exact = raw["sets"]["exact-titles"]
    assert exact["scores"]["keyword"]["queries"] == 5
    assert set(exact["exact_title"]["keyword"]) == {"first_has_title", "within_n"}
    # The demo catalog holds none of the real films: those sets report, not crash.
    assert raw["sets"]["reddit-tomt-validation"]["scores"]["keyword"]["queries"] == 0
    text = md_path.read_text(encoding="utf-8")
    assert "## exact-titles" in text and "at most 5 queries per set" in text
    assert "exact titles (hybrid): first result has the title" in text
