"""Interaction files: MovieLens `ratings.csv` and JSON Lines events.

MovieLens rows (userId, movieId, rating, timestamp) become `rate` events of
user `<userId>` on item `ml:<movieId>`; JSONL rows are
`{"user", "item", "type", "value", "ts"}`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from metamedia.errors import FormatError
from metamedia.formats.jsonl import read_jsonl
from metamedia.formats.records import RawRecord


def read_movielens_ratings(path: Path) -> Iterator[RawRecord]:
    if path.is_dir():
        path = path / "ratings.csv"
    source = str(path)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"userId", "movieId", "rating"} - set(reader.fieldnames or [])
        if missing:
            raise FormatError(f"{path}: not a MovieLens ratings file (missing {sorted(missing)})")
        for row in reader:
            line = reader.line_num
            try:
                value = float(row["rating"])
                ts = float(row["timestamp"]) if row.get("timestamp") else None
            except (TypeError, ValueError):
                yield RawRecord(source, line, error=f"rating/timestamp not numbers: {row}")
                continue
            if not row.get("userId") or not row.get("movieId"):
                yield RawRecord(source, line, error="missing userId or movieId")
                continue
            yield RawRecord(
                source,
                line,
                data={
                    "user": row["userId"].strip(),
                    "item": f"ml:{row['movieId'].strip()}",
                    "type": "rate",
                    "value": value,
                    "ts": ts,
                },
            )


def open_interactions(path: Path, fmt: str = "auto") -> Iterator[RawRecord]:
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    if fmt == "auto":
        fmt = "movielens" if path.is_dir() or path.suffix.lower() == ".csv" else "jsonl"
    if fmt == "movielens":
        return read_movielens_ratings(path)
    if fmt == "jsonl":
        return read_jsonl(path)
    raise FormatError(f"unknown interactions format {fmt!r}; use movielens or jsonl")
