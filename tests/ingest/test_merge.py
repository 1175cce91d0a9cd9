"""Rows sharing an id in one input are merged (earliest year wins), never overwritten;
rows without an id get a stable derived one."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from metamedia.domain import MediaItem, SearchRequest, derived_id, merge_items
from metamedia.formats.wikipedia import map_film
from metamedia.services.runtime import Runtime
from tests.conftest import item, write_jsonl
from tests.ingest.conftest import stored_items

ORIGINAL = item(
    "ship",
    "Iceberg Waltz",
    "A liner strikes an iceberg on its maiden voyage.",
    year=1997,
    genres=["romance"],
    cast=["Kate Quill"],
    image_url="https://img.example/iceberg.jpg",
)
RERELEASE = item(
    "ship", "Iceberg Waltz 3D", "", year=2012, genres=["drama", "romance"], cast=["Leo Bright"]
)
IMAX = item("ship", "Iceberg Waltz: The IMAX Experience", year=2017, tags=["imax"])
OTHERS = [
    item("hall", "Gallery of Echoes", "A curator hears paintings whisper.", year=1988),
    item("moon", "Moonbase Lullaby", "A lonely engineer sings to a lunar rover.", year=2005),
]


def _ingest(runtime: Runtime, path: Path) -> dict[str, Any]:
    return runtime.ingest.ingest_path(path).as_dict()


@pytest.mark.parametrize(
    "order",
    [
        [ORIGINAL, OTHERS[0], RERELEASE, OTHERS[1], IMAX],
        [IMAX, OTHERS[0], RERELEASE, OTHERS[1], ORIGINAL],
        [RERELEASE, IMAX, ORIGINAL, *OTHERS],
    ],
    ids=["original-first", "original-last", "original-middle"],
)
def test_earliest_year_wins_whatever_the_input_order(
    order: list[dict[str, Any]], tmp_path: Path, fast_runtime: Any
) -> None:
    runtime: Runtime = fast_runtime()
    report = _ingest(runtime, write_jsonl(tmp_path / "c.jsonl", order))
    assert (report["read"], report["merged"], report["inserted"]) == (5, 2, 3)
    assert (report["updated"], report["rejected"], report["ids_assigned"]) == (0, 0, 0)
    ship = runtime.catalog.get("ship")
    assert (ship.title, ship.year) == ("Iceberg Waltz", 1997)
    assert ship.description == ORIGINAL["description"]
    assert ship.image_url == ORIGINAL["image_url"]
    assert ship.alternate_titles == ["Iceberg Waltz 3D", "Iceberg Waltz: The IMAX Experience"]
    assert ship.release_years == [2012, 2017]
    # nothing lost: every label of every row is on the merged item
    assert ship.genres == ["romance", "drama"]
    assert ship.cast == ["Kate Quill", "Leo Bright"]
    assert ship.tags == ["imax"]
    assert runtime.repo.count() == 3


def test_merged_items_reingest_as_unchanged(tmp_path: Path, fast_runtime: Any) -> None:
    runtime: Runtime = fast_runtime()
    path = write_jsonl(tmp_path / "c.jsonl", [RERELEASE, ORIGINAL, *OTHERS])
    _ingest(runtime, path)
    watermark = runtime.repo.last_change()
    again = _ingest(runtime, path)
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert (again["merged"], again["embedded"]) == (1, 0)
    assert runtime.repo.last_change() == watermark


def test_alternate_titles_and_release_years_are_searched(tmp_path: Path, fast_runtime: Any) -> None:
    runtime: Runtime = fast_runtime()
    _ingest(runtime, write_jsonl(tmp_path / "c.jsonl", [ORIGINAL, RERELEASE, IMAX, *OTHERS]))
    found = runtime.search.search(SearchRequest(query="IMAX Experience", mode="keyword"))
    assert [hit.id for hit in found.results] == ["ship"]
    for mode in ("keyword", "semantic", "hybrid"):
        in_2012 = runtime.search.search(
            SearchRequest(query="iceberg", mode=mode, filters={"year_min": 2012, "year_max": 2012})
        )
        assert [hit.id for hit in in_2012.results] == ["ship"], mode
        after = runtime.search.search(
            SearchRequest(query="iceberg", mode=mode, filters={"year_min": 2018})
        )
        assert after.results == [], mode
    assert runtime.repo.check_keyword_index().stale == []


def test_a_bad_row_of_a_repeated_id_is_rejected_and_the_rest_still_written(
    tmp_path: Path, fast_runtime: Any
) -> None:
    runtime: Runtime = fast_runtime()
    bad = dict(RERELEASE, year=1200)  # the id's last row, and invalid
    report = _ingest(runtime, write_jsonl(tmp_path / "c.jsonl", [ORIGINAL, bad]))
    assert (report["inserted"], report["merged"], report["rejected"]) == (1, 0, 1)
    assert report["rejects"][0]["line"] == 2 and "year" in report["rejects"][0]["reason"]
    assert runtime.catalog.get("ship").alternate_titles == []


def test_rows_without_an_id_get_the_same_derived_id_everywhere(
    tmp_path: Path, fast_runtime: Any
) -> None:
    rows: list[Any] = [
        {"title": "Harbour of Glass", "year": 1961, "description": "A diver finds a city."},
        {"title": "Harbour of Glass", "year": 1999, "description": "A remake."},
        {"year": 1970, "description": "no title, no id"},
        {"id": "", "title": "Blank Id", "type": "series"},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    first, second = fast_runtime("a"), fast_runtime("b")
    report = _ingest(first, path)
    assert (report["inserted"], report["ids_assigned"], report["rejected"]) == (3, 3, 1)
    assert report["rejects"][0]["line"] == 3 and "title" in report["rejects"][0]["reason"]
    ids = {(i.title, i.year): i.id for i in stored_items(first)}
    assert ids[("Harbour of Glass", 1961)] == derived_id("movie", "Harbour of Glass", 1961)
    assert ids[("Harbour of Glass", 1961)].startswith("movie/harbour-of-glass-1961-")
    assert ids[("Blank Id", None)].startswith("series/blank-id-")
    _ingest(second, path)
    assert {(i.title, i.year): i.id for i in stored_items(second)} == ids
    again = _ingest(first, path)
    assert (again["unchanged"], again["ids_assigned"], again["inserted"]) == (3, 3, 0)


def test_derived_ids_are_stable_and_tell_titles_apart() -> None:
    titanic = derived_id("movie", "Titanic", 1997)
    assert titanic == derived_id("movie", "  titanic ", 1997)
    # pinned: an id must not change between releases of this code
    digest = hashlib.sha256(b"movie\ntitanic\n1997").hexdigest()[:6]
    assert titanic == f"movie/titanic-1997-{digest}"
    assert derived_id("movie", "Se7en", 1995) != derived_id("movie", "Se7en!", 1995)
    assert derived_id("movie", "東京物語", 1953).startswith("movie/untitled-1953-")
    assert derived_id("movie", "Amélie", 2001).startswith("movie/amelie-2001-")


def test_wikipedia_film_without_href_maps_without_id() -> None:
    entry = {"title": "Lost Reel", "year": 1901, "cast": [], "genres": [], "href": ""}
    entry["extract"] = "A short."
    assert "id" not in map_film(entry)
    assert map_film({"title": "Bare", "year": 1901, "cast": [], "genres": []})["title"] == "Bare"
    assert map_film({"id": "x", "title": "Ours", "description": "d"})["description"] == "d"


def test_stored_documents_from_before_still_load_and_hash_the_same() -> None:
    old_doc = {"id": "a", "title": "Old", "year": 2001, "genres": ["drama"]}
    loaded = MediaItem.model_validate_json(json.dumps(old_doc))
    assert (loaded.alternate_titles, loaded.release_years) == ([], [])
    before = loaded.model_dump(mode="json")
    del before["alternate_titles"], before["release_years"]
    old_hash = hashlib.sha256(
        json.dumps(before, sort_keys=True, ensure_ascii=False).encode("utf-8")
    ).hexdigest()
    assert loaded.row_hash() == old_hash


def test_merge_keeps_bounds_and_drops_the_primarys_own_title_and_year() -> None:
    rows = [MediaItem(id="x", title=f"Cut {n}", year=1900 + n) for n in range(40)]
    rows.append(MediaItem(id="x", title="cut 0", year=1900))
    merged = merge_items(rows)
    assert (merged.title, merged.year) == ("Cut 0", 1900)
    assert len(merged.alternate_titles) == 32 and "cut 0" not in merged.alternate_titles
    assert merged.release_years == list(range(1901, 1917))
    assert merged.row_hash() == merge_items(rows).row_hash()


def test_a_data_dir_from_before_release_years_gains_the_table_on_open(
    tmp_path: Path, fast_runtime: Any
) -> None:
    old = fast_runtime("old")
    _ingest(old, write_jsonl(tmp_path / "a.jsonl", OTHERS))
    old.close()
    database = old.settings.resolved_database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(database)) as conn:
        # As made before the table existed, which was also before migrations.
        conn.execute("DROP TABLE media_year")
        conn.execute("DROP TABLE alembic_version")
        conn.commit()
    reopened: Runtime = fast_runtime("old")
    report = _ingest(reopened, write_jsonl(tmp_path / "b.jsonl", [ORIGINAL, RERELEASE]))
    assert (report["inserted"], report["merged"]) == (1, 1)
    in_2012 = reopened.search.search(
        SearchRequest(query="iceberg", mode="keyword", filters={"year_min": 2012, "year_max": 2012})
    )
    assert [hit.id for hit in in_2012.results] == ["ship"]
