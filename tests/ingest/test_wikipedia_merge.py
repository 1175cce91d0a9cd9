"""The real Wikipedia decade files: re-releases that share the original's page are
merged into it, films without a page get stable ids, and the counts match an
independent count over the JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench.datasets import wikipedia_dir

from metamedia.domain import SearchRequest, derived_id
from metamedia.services.runtime import Runtime
from tests.ingest.conftest import HashingEmbedder, stored_items

# Every decade holding one of the films below or its re-release (2010s).
DECADES = ("1930s", "1980s", "1990s", "2000s", "2010s")
# page slug: (original title, year, re-release title, re-release year)
FILMS = {
    "Titanic_(1997_film)": ("Titanic", 1997, "Titanic 3D", 2012),
    "Jurassic_Park_(film)": ("Jurassic Park", 1993, "Jurassic Park 3D", 2013),
    "Finding_Nemo": ("Finding Nemo", 2003, "Finding Nemo 3D", 2012),
    "Avatar_(2009_film)": ("Avatar", 2009, "Avatar: Special Edition", 2010),
    "The_Lion_King": ("The Lion King", 1994, "The Lion King in 3D", 2011),
    "The_Wizard_of_Oz_(1939_film)": ("The Wizard of Oz", 1939, "The Wizard of Oz 3D", 2013),
    "Raiders_of_the_Lost_Ark": (
        "Raiders of the Lost Ark",
        1981,
        "Raiders of the Lost Ark: The IMAX Experience",
        2012,
    ),
}


def _independent_counts(files: list[Path]) -> dict[str, int]:
    """Counted from the JSON alone: rows per page slug, or per (title, year) without one."""
    keys: Counter[tuple[Any, ...]] = Counter()
    without_page = 0
    for file in files:
        for entry in json.loads(file.read_text(encoding="utf-8")):
            if entry.get("href"):
                keys[("page", entry["href"])] += 1
            else:
                without_page += 1
                keys[("film", " ".join(entry["title"].casefold().split()), entry["year"])] += 1
    rows = sum(keys.values())
    return {"read": rows, "items": len(keys), "merged": rows - len(keys), "no_page": without_page}


@pytest.fixture(scope="module")
def decades(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = wikipedia_dir()
    if not source.exists():
        pytest.fail(f"real data missing: {source} (CI lays ../shared beside the clone)")
    directory = tmp_path_factory.mktemp("decades")
    for decade in DECADES:
        (directory / f"movies-{decade}.json").symlink_to(source / f"movies-{decade}.json")
    return directory


@pytest.fixture(scope="module")
def ingested(decades: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from metamedia.config import Settings

    data_dir = tmp_path_factory.mktemp("wiki-merge") / "data"
    runtime = Runtime.open(Settings(data_dir=data_dir), embedder=HashingEmbedder())
    first = runtime.ingest.ingest_path(decades, "wikipedia")
    second = runtime.ingest.ingest_path(decades, "wikipedia")
    yield runtime, first, second
    runtime.close()


pytestmark = pytest.mark.slow


def test_counts_match_an_independent_count_of_the_files(ingested: Any, decades: Path) -> None:
    runtime, first, _ = ingested
    expected = _independent_counts(sorted(decades.glob("*.json")))
    assert first.rejected == 0, first.rejects[:5]
    assert first.read == expected["read"]
    assert first.merged == expected["merged"]
    assert first.ids_assigned == expected["no_page"]
    assert (first.inserted, first.updated) == (expected["items"], 0)
    assert runtime.repo.count() == expected["items"]


def test_reingest_is_all_unchanged(ingested: Any) -> None:
    _, first, second = ingested
    assert (second.inserted, second.updated, second.embedded) == (0, 0, 0)
    assert second.unchanged == first.inserted
    assert (second.merged, second.ids_assigned) == (first.merged, first.ids_assigned)


@pytest.mark.parametrize("page", FILMS)
def test_originals_keep_title_and_year_and_rereleases_find_them(ingested: Any, page: str) -> None:
    runtime, _, _ = ingested
    title, year, rerelease, rerelease_year = FILMS[page]
    film = runtime.catalog.get(page)
    assert (film.title, film.year) == (title, year)
    assert rerelease in film.alternate_titles
    assert rerelease_year in film.release_years
    hits = runtime.search.search(SearchRequest(query=rerelease, mode="keyword", limit=10))
    assert page in [hit.id for hit in hits.results], [hit.title for hit in hits.results]
    only_then = {"year_min": rerelease_year, "year_max": rerelease_year}
    dated = runtime.search.search(
        SearchRequest(query=title, mode="keyword", limit=100, filters=only_then)
    )
    assert page in [hit.id for hit in dated.results]


def test_year_filter_2012_finds_titanic_in_every_mode(ingested: Any) -> None:
    runtime, _, _ = ingested
    titanic = runtime.repo.get("default", "Titanic_(1997_film)")
    assert titanic is not None
    # The hashing embedder knows words, not meaning: the dense side is asked with a
    # sentence of the film's own lead, so what is tested is the filter, in every mode.
    lead = titanic.item.description.split(". ")[0]
    for mode, query in (("keyword", "Titanic"), ("semantic", lead), ("hybrid", "Titanic")):
        found = runtime.search.search(
            SearchRequest(
                query=query, mode=mode, limit=100, filters={"year_min": 2012, "year_max": 2012}
            )
        )
        assert "Titanic_(1997_film)" in [hit.id for hit in found.results], mode


def test_films_without_a_page_are_stored_under_their_derived_ids(
    ingested: Any, decades: Path
) -> None:
    runtime, _, _ = ingested
    expected = set()
    for file in sorted(decades.glob("*.json")):
        for entry in json.loads(file.read_text(encoding="utf-8")):
            if not entry.get("href"):
                expected.add(derived_id("movie", entry["title"], entry["year"]))
    stored = {item.id for item in stored_items(runtime)}
    assert expected and expected <= stored
    example = next(iter(sorted(expected)))
    assert runtime.catalog.get(example) is not None
