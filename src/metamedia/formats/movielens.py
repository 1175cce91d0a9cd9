"""The MovieLens directory format: movies.csv, links.csv, tags.csv (+ ratings.csv).

Ids become `ml:<movieId>`. Titles like "Matrix, The (1999)" become "The Matrix"
with year 1999. User tags become item tags (most frequent first); ratings, when
present, give the mean rating, rating count and popularity.
"""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metamedia.formats.records import RawRecord

_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
_ARTICLES = ("The", "A", "An", "Les", "La", "Le", "L'", "Il", "Das", "Der", "Die", "El")
MAX_TAGS = 20


def split_title(raw: str) -> tuple[str, int | None]:
    """'Matrix, The (1999)' -> ('The Matrix', 1999)."""
    raw = raw.strip()
    match = _TITLE_YEAR.match(raw)
    title, year = (match["title"], int(match["year"])) if match else (raw, None)
    for article in _ARTICLES:
        suffix = f", {article}"
        if title.endswith(suffix):
            sep = "" if article.endswith("'") else " "
            title = f"{article}{sep}{title[: -len(suffix)]}"
            break
    return title.strip(), year


def _links(directory: Path) -> dict[str, dict[str, str]]:
    path = directory / "links.csv"
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {row["movieId"]: row for row in csv.DictReader(handle)}


def _tags(directory: Path) -> dict[str, list[str]]:
    path = directory / "tags.csv"
    if not path.exists():
        return {}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            tag = (row.get("tag") or "").strip().lower()
            if tag:
                counts[row["movieId"]][tag] += 1
    return {movie: [t for t, _ in c.most_common(MAX_TAGS)] for movie, c in counts.items()}


def _ratings(directory: Path) -> dict[str, tuple[float, int]]:
    path = directory / "ratings.csv"
    if not path.exists():
        return {}
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            try:
                value = float(row["rating"])
            except (TypeError, ValueError):
                continue
            sums[row["movieId"]] += value
            counts[row["movieId"]] += 1
    return {m: (round(sums[m] / counts[m], 3), counts[m]) for m in counts}


def read_movielens(directory: Path) -> Iterator[RawRecord]:
    movies = directory / "movies.csv"
    links, tags, ratings = _links(directory), _tags(directory), _ratings(directory)
    with open(movies, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            line = reader.line_num
            movie_id = (row.get("movieId") or "").strip()
            if not movie_id:
                yield RawRecord(str(movies), line, error="missing movieId")
                continue
            title, year = split_title(row.get("title") or "")
            genres = [
                g for g in (row.get("genres") or "").split("|") if g and g != "(no genres listed)"
            ]
            data: dict[str, Any] = {
                "id": f"ml:{movie_id}",
                "type": "movie",
                "title": title,
                "year": year,
                "genres": genres,
                "tags": tags.get(movie_id, []),
            }
            link = links.get(movie_id) or {}
            ids = {"movielens": movie_id}
            if link.get("imdbId"):
                ids["imdb"] = f"tt{link['imdbId']}"
            if link.get("tmdbId"):
                ids["tmdb"] = link["tmdbId"]
            data["external_ids"] = ids
            if movie_id in ratings:
                mean, count = ratings[movie_id]
                data.update(rating=mean, rating_count=count, popularity=float(count))
            yield RawRecord(str(movies), line, data=data)
