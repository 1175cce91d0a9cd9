"""Loaders and joins for the real data sets in ../shared/data (never copied here).

Reddit "tip of my tongue" queries name their answer by IMDb id, TREC-ToT
queries by Wikipedia page id (mapped to IMDb ids by wikipedia-pageid-to-imdb);
the Wikipedia film data names films by page slug. They join through MovieLens
links.csv (IMDb id -> movieId) and movies.csv (title "(year)" -> Wikipedia
title + year, allowing +-1 year), as ../shared/data/README.md describes.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metamedia.formats.movielens import split_title
from metamedia.formats.wikipedia import wikipedia_files

_TOMT_TAG = re.compile(r"\[[^\]]*\]")
# Posters often append the answer once found ("Edit: it's Total Recall"); drop it.
_ANSWER_EDIT = re.compile(r"(?is)\b(edit|update|solved|found it)\b\s*[:\-!].*$")


BENCH_DATA = Path(__file__).resolve().parent / "data"
# The descriptive training sets (bench/data/README.md); descriptive-dev is validation.
DESCRIPTIVE_TRAIN = (
    "descriptive-train",
    "descriptive-train-2",
    "descriptive-train-3",
    "descriptive-train-4",
)


def shared_data_dir() -> Path:
    """`../shared/data` beside the checkout, or $METAMEDIA_SHARED_DATA."""
    override = os.environ.get("METAMEDIA_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def wikipedia_dir() -> Path:
    return shared_data_dir() / "wikipedia-movie-data"


def movielens_dir() -> Path:
    return shared_data_dir() / "movielens-ml-latest-small"


def load_wikipedia_films(with_plot_only: bool = True) -> list[dict[str, Any]]:
    films: list[dict[str, Any]] = []
    for file in wikipedia_files(wikipedia_dir()):
        for entry in json.loads(file.read_text(encoding="utf-8")):
            if "href" not in entry or (with_plot_only and not entry.get("extract")):
                continue
            films.append(entry)
    return films


@dataclass(frozen=True)
class KnownItemQuery:
    """A real vague description and the Wikipedia slug of the film it means."""

    query: str
    gold: str


class MovieLensJoin:
    """IMDb id -> Wikipedia film slug, through MovieLens links.csv and movies.csv.

    A film joins when MovieLens knows its IMDb id and the Wikipedia data has a
    film with the MovieLens title within a year of its MovieLens year.
    """

    def __init__(self) -> None:
        data = movielens_dir()
        self.links: dict[str, str] = {}
        with open(data / "links.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                self.links[row["imdbId"].lstrip("0")] = row["movieId"]
        self.titles: dict[str, tuple[str, int | None]] = {}
        with open(data / "movies.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                self.titles[row["movieId"]] = split_title(row["title"])
        self.by_title: dict[str, list[tuple[int, str]]] = {}
        for film in load_wikipedia_films():
            entry = (int(film["year"]), film["href"])
            self.by_title.setdefault(film["title"].lower(), []).append(entry)

    def movie_id(self, imdb: str) -> str | None:
        """MovieLens movieId of an IMDb id ("tt0133093", "133093" or an IMDb URL)."""
        match = re.search(r"(?:tt)?0*(\d+)", imdb)
        return self.links.get(match.group(1)) if match else None

    def slug(self, movie_id: str) -> str | None:
        title, year = self.titles[movie_id]
        candidates = [
            href
            for film_year, href in self.by_title.get(title.lower(), [])
            if year is not None and abs(film_year - year) <= 1
        ]
        return candidates[0] if candidates else None


def descriptive_queries(name: str) -> list[KnownItemQuery]:
    """One of our written sets in bench/data (`name` without `.jsonl`)."""
    lines = (BENCH_DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [KnownItemQuery(r["query"], r["gold"]) for r in map(json.loads, filter(None, lines))]


def tomt_queries(split: str = "validation", max_chars: int | None = 1000) -> list[KnownItemQuery]:
    """Reddit TOMT movie queries whose answer is a Wikipedia film with a plot.

    Queries are cut at `max_chars` (None: full length, as `python -m bench quality` uses).
    """
    join = MovieLensJoin()
    queries = []
    with open(shared_data_dir() / "reddit-tomt-movies" / f"{split}.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            match = re.search(r"tt0*(\d+)", row.get("imdb_url") or "")
            movie = join.links.get(match.group(1)) if match else None
            href = join.slug(movie) if movie is not None else None
            if href is None:
                continue
            body = _ANSWER_EDIT.sub("", row.get("text", ""))
            text = _TOMT_TAG.sub(" ", row.get("title", "")).strip() + ". " + body
            queries.append(KnownItemQuery(" ".join(text.split())[:max_chars], href))
    return queries


@dataclass(frozen=True)
class JoinedQueries:
    """Queries whose answer joined to the catalog, and how many fell out at each step."""

    queries: list[KnownItemQuery]
    counts: dict[str, int]


def trec_tot_queries(split: str = "2023-train", max_chars: int | None = None) -> JoinedQueries:
    """TREC Tip-of-the-Tongue movie queries whose gold page joins to a Wikipedia film.

    The qrels name a Wikipedia page id; wikipedia-pageid-to-imdb maps it to
    IMDb ids, and MovieLens (`MovieLensJoin`) maps those to the film's slug.
    """
    data = shared_data_dir()
    folder = data / f"trec-tot-{split}"
    gold_page: dict[str, str] = {}
    with open(folder / f"{split}-qrel.txt") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) == 4 and parts[3] != "0":
                gold_page[parts[0]] = parts[2]
    imdb_of = json.loads(
        (data / "wikipedia-pageid-to-imdb" / "wikipage_id_to_imdb.json").read_text("utf-8")
    )
    join = MovieLensJoin()
    counts = {"queries": 0, "with_qrel": 0, "with_imdb": 0, "in_movielens": 0, "joined": 0}
    queries = []
    with open(folder / f"{split}-queries.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            counts["queries"] += 1
            page = gold_page.get(str(row["query_id"]))
            if page is None:
                continue
            counts["with_qrel"] += 1
            imdbs = [i for i in imdb_of.get(page, []) if i.startswith("tt")]
            if not imdbs:
                continue
            counts["with_imdb"] += 1
            movies = [m for m in (join.movie_id(i) for i in imdbs) if m is not None]
            if not movies:
                continue
            counts["in_movielens"] += 1
            href = next((h for h in (join.slug(m) for m in movies) if h), None)
            if href is None:
                continue
            counts["joined"] += 1
            text = " ".join(str(row["query"]).split())
            queries.append(KnownItemQuery(text[:max_chars], href))
    return JoinedQueries(queries, counts)
