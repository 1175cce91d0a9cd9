"""The Wikipedia movie-data JSON format: arrays of films, often one file per decade.

Fields: title, year, cast, genres, href (page slug, our stable id), extract
(plot lead), thumbnail. About 1,700 films have no (or an empty) `href`; they
are mapped without an id, and ingest gives them one derived from type, title
and year (`metamedia.domain.derived_id`) instead of rejecting a good film.
Several rows may share one `href` (a re-release has the original's page);
ingest merges them. A JSON array whose entries are already in our schema
(no Wikipedia-only field) is accepted as-is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metamedia.formats.records import RawRecord

# Fields only the Wikipedia export has; an entry with none of them is in our schema
# (title, year, cast and genres mean the same in both).
WIKIPEDIA_ONLY = frozenset(("href", "extract", "thumbnail", "thumbnail_width", "thumbnail_height"))


def map_film(entry: dict[str, Any]) -> dict[str, Any]:
    """Our schema from one film entry; no `id` key when the film has no page slug."""
    if not WIKIPEDIA_ONLY & entry.keys():
        return entry
    data: dict[str, Any] = {
        "type": "movie",
        "title": entry.get("title"),
        "year": entry.get("year"),
        "cast": entry.get("cast") or [],
        "genres": entry.get("genres") or [],
        "description": entry.get("extract") or "",
    }
    href = entry.get("href")
    if href:
        data["id"] = href
    if entry.get("thumbnail"):
        data["image_url"] = entry["thumbnail"]
    return data


def wikipedia_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.glob("*.json") if p.name != "genres.json")
    return [path]


def read_wikipedia(path: Path) -> Iterator[RawRecord]:
    for file in wikipedia_files(path):
        yield from _read_file(file)


def _read_file(file: Path) -> Iterator[RawRecord]:
    """The file's films, decoded one array entry at a time: a whole catalog in one
    file parsed at once held every film as Python objects for the entire ingest
    (~400 MB for 34k films). Entries before a syntax error are kept; the error is
    reported where it is and ends the file."""
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        yield RawRecord(source, 0, error=f"not valid UTF-8: {exc}")
        return
    # JSON arrays have no line numbers that survive parsing: report the 1-based entry.
    number = 0
    try:
        for entry in _array_entries(text):
            number += 1
            if not isinstance(entry, dict):
                yield RawRecord(
                    source, number, error=f"entry is a {type(entry).__name__}, not an object"
                )
                continue
            yield RawRecord(source, number, data=map_film(entry))
    except _NotAnArray:
        yield RawRecord(source, 1, error="expected a JSON array of films")
    except json.JSONDecodeError as exc:
        yield RawRecord(source, exc.lineno, error=f"broken JSON file: {exc.msg}")


class _NotAnArray(ValueError):
    pass


_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"\s*")


def _array_entries(text: str) -> Iterator[Any]:
    """The entries of the JSON array `text`, decoded one at a time."""
    at = _skip(text, 0)
    if text.startswith("\ufeff", at):
        at = _skip(text, at + 1)
    if not text.startswith("[", at):
        _DECODER.decode(text[at:])  # the decoder's own error for broken JSON
        raise _NotAnArray
    at = _skip(text, at + 1)
    if text.startswith("]", at):
        _trailing(text, at + 1)
        return
    while True:
        entry, at = _DECODER.raw_decode(text, at)
        yield entry
        at = _skip(text, at)
        if text.startswith(",", at):
            at = _skip(text, at + 1)
            continue
        if text.startswith("]", at):
            _trailing(text, at + 1)
            return
        raise json.JSONDecodeError("Expecting ',' delimiter", text, at)


def _skip(text: str, at: int) -> int:
    """The first position at or after `at` that is not whitespace."""
    return _SPACE.match(text, at).end()  # type: ignore[union-attr]  # \s* always matches


def _trailing(text: str, at: int) -> None:
    end = _skip(text, at)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
