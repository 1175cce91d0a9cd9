"""Each catalog format reads into our schema; unreadable rows become errors, not crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.datasets import movielens_dir, wikipedia_dir

from metamedia.errors import FormatError
from metamedia.formats.detect import detect_format, open_catalog
from metamedia.formats.movielens import split_title


def test_detects_formats(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("{}\n")
    (tmp_path / "b.csv").write_text("id,title\n")
    (tmp_path / "c.json").write_text("[]")
    assert detect_format(tmp_path / "a.jsonl") == "jsonl"
    assert detect_format(tmp_path / "b.csv") == "csv"
    assert detect_format(tmp_path / "c.json") == "wikipedia"
    assert detect_format(movielens_dir()) == "movielens"
    assert detect_format(wikipedia_dir()) == "wikipedia"
    with pytest.raises(FormatError, match="no such file"):
        detect_format(tmp_path / "missing.jsonl")
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(FormatError, match="--format"):
        detect_format(tmp_path / "d.txt")


def test_csv_lists_platforms_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "id,title,genres,year,platforms,rating\n"
        'x1,"Night, Train",crime|thriller,1994,netflix@US|max,4.2\n'
        "x2,Second,,,,\n",
        encoding="utf-8",
    )
    fmt, records = open_catalog(path)
    rows = list(records)
    assert fmt == "csv"
    assert rows[0].line == 2 and rows[1].line == 3
    assert rows[0].data == {
        "id": "x1",
        "title": "Night, Train",
        "genres": ["crime", "thriller"],
        "year": "1994",
        "platforms": [{"name": "netflix", "region": "US"}, {"name": "max", "region": None}],
        "rating": "4.2",
    }
    assert rows[1].data == {"id": "x2", "title": "Second"}


def test_jsonl_reports_broken_and_non_object_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "title": "A"}\n\n{oops\n[1, 2]\n', encoding="utf-8")
    rows = list(open_catalog(path)[1])
    assert [r.line for r in rows] == [1, 3, 4]
    assert rows[0].data == {"id": "a", "title": "A"}
    assert rows[1].error is not None and "broken JSON" in rows[1].error
    assert rows[2].error is not None and "expected a JSON object" in rows[2].error


def test_wikipedia_entries_map_to_items() -> None:
    _, records = open_catalog(wikipedia_dir() / "movies-1990s.json")
    first = next(iter(records))
    assert first.data is not None
    assert first.data["id"] == "The_Adventures_of_Ford_Fairlane"
    assert first.data["year"] == 1990 and first.data["type"] == "movie"
    assert first.data["description"].startswith("The Adventures of Ford Fairlane is a 1990")
    assert first.data["image_url"].startswith("https://")


def test_wikipedia_broken_file_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('[{"title": "A",', encoding="utf-8")
    rows = list(open_catalog(tmp_path / "x.json")[1])
    assert len(rows) == 1 and rows[0].error is not None and "broken JSON" in rows[0].error


def test_wikipedia_entries_before_a_break_are_kept(tmp_path: Path) -> None:
    """The array is decoded entry by entry: films before a syntax error still come
    through, then one error says where the file broke; other shapes are refused."""
    path = tmp_path / "x.json"
    path.write_text('[{"title": "A"},\n 3,\n {"title": "B"}\n {"title": "C"}]', encoding="utf-8")
    rows = list(open_catalog(path, "wikipedia")[1])
    assert [r.data["title"] for r in rows if r.data] == ["A", "B"]
    assert rows[1].error == "entry is a int, not an object"
    assert rows[3].error is not None and "broken JSON" in rows[3].error and rows[3].line == 4
    cases = {
        '\ufeff [ {"title": "A"} ] \n': ["A"],
        "[]": [],
        '[{"title": "A"}] trailing': ["A", "broken JSON file: Extra data"],
        '{"title": "A"}': ["expected a JSON array of films"],
        "": ["broken JSON file: Expecting value"],
    }
    for text, expected in cases.items():
        path.write_text(text, encoding="utf-8")
        got = [r.data["title"] if r.data else r.error for r in open_catalog(path, "wikipedia")[1]]
        assert got == expected, text


def test_movielens_directory_maps_titles_tags_and_ratings() -> None:
    _, records = open_catalog(movielens_dir())
    by_id = {r.data["id"]: r.data for r in records if r.data}
    assert len(by_id) == 9742
    toy = by_id["ml:1"]
    assert toy["title"] == "Toy Story" and toy["year"] == 1995
    assert "Animation" in toy["genres"]
    assert toy["rating_count"] > 200 and 3.5 < toy["rating"] < 4.5
    assert toy["tags"], "tags.csv should give Toy Story tags"
    assert toy["external_ids"] == {"movielens": "1", "imdb": "tt0114709", "tmdb": "862"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Matrix, The (1999)", ("The Matrix", 1999)),
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("Babylon 5", ("Babylon 5", None)),
        ("Misérables, Les (1995)", ("Les Misérables", 1995)),
    ],
)
def test_movielens_title_split(raw: str, expected: tuple[str, int | None]) -> None:
    assert split_title(raw) == expected


def test_csv_row_with_too_many_cells_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,title\na,A,extra\n", encoding="utf-8")
    rows = list(open_catalog(path)[1])
    assert rows[0].error is not None and "more cells" in rows[0].error
    assert json.dumps(rows[0].line) == "2"
