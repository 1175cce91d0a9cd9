"""Loaders and joins for the real data sets in ../shared/data (never copied here).

Reddit "tip of my tongue" queries name their answer by IMDb id; the Wikipedia
film data names films by page slug. They join through MovieLens links.csv
(IMDb id -> movieId) and movies.csv (title "(year)" -> Wikipedia title + year,
allowing +-1 year), as ../shared/data/README.md describes.
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


def tomt_queries(split: str = "validation", max_chars: int = 1000) -> list[KnownItemQuery]:
    """Reddit TOMT movie queries whose answer is a Wikipedia film with a plot."""
    data = shared_data_dir()
    links = {}
    with open(data / "movielens-ml-latest-small" / "links.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            links[row["imdbId"].lstrip("0")] = row["movieId"]
    titles = {}
    with open(data / "movielens-ml-latest-small" / "movies.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            titles[row["movieId"]] = split_title(row["title"])
    by_title: dict[str, list[tuple[int, str]]] = {}
    for film in load_wikipedia_films():
        by_title.setdefault(film["title"].lower(), []).append((int(film["year"]), film["href"]))
    queries = []
    with open(data / "reddit-tomt-movies" / f"{split}.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            match = re.search(r"tt0*(\d+)", row.get("imdb_url") or "")
            movie = links.get(match.group(1)) if match else None
            if movie is None:
                continue
            title, year = titles[movie]
            candidates = [
                href
                for film_year, href in by_title.get(title.lower(), [])
                if year is not None and abs(film_year - year) <= 1
            ]
            if not candidates:
                continue
            body = _ANSWER_EDIT.sub("", row.get("text", ""))
            text = _TOMT_TAG.sub(" ", row.get("title", "")).strip() + ". " + body
            queries.append(KnownItemQuery(" ".join(text.split())[:max_chars], candidates[0]))
    return queries
