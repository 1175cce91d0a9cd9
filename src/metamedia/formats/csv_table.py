"""CSV with a header row naming our fields.

List fields (genres, cast, tags) are `|`-separated; `platforms` is either a
JSON array of objects or `name@REGION|name@REGION`. Empty cells mean "absent".
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metamedia.formats.records import MAX_LINE_BYTES, RawRecord

LIST_FIELDS = ("genres", "cast", "tags")
NUMBER_FIELDS = (
    "year",
    "runtime_minutes",
    "rating",
    "rating_count",
    "popularity",
    "season",
    "episode",
)


def parse_platforms(cell: str) -> list[dict[str, Any]] | Any:
    cell = cell.strip()
    if cell.startswith("["):
        return json.loads(cell)
    platforms = []
    for part in cell.split("|"):
        part = part.strip()
        if not part:
            continue
        name, _, region = part.partition("@")
        platforms.append({"name": name, "region": region or None})
    return platforms


def row_to_item(row: dict[str, str]) -> dict[str, Any]:
    """Map a CSV row (all strings) to our schema; type errors are left to validation."""
    data: dict[str, Any] = {}
    for key, value in row.items():
        if key is None:
            raise ValueError("row has more cells than the header")
        if value is None or value.strip() == "":
            continue
        value = value.strip()
        if key in LIST_FIELDS:
            data[key] = [v.strip() for v in value.split("|") if v.strip()]
        elif key == "platforms":
            data[key] = parse_platforms(value)
        else:
            data[key] = value
    # "id" may be called external_id in some exports.
    if "id" not in data and "external_id" in data:
        data["id"] = data.pop("external_id")
    return data


def read_csv(path: Path) -> Iterator[RawRecord]:
    source = str(path)
    csv.field_size_limit(min(sys.maxsize, MAX_LINE_BYTES))
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            return
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield RawRecord(source, reader.line_num, error=f"unreadable CSV row: {exc}")
                continue
            try:
                yield RawRecord(source, reader.line_num, data=row_to_item(row))
            except (ValueError, json.JSONDecodeError) as exc:
                yield RawRecord(source, reader.line_num, error=f"bad cell: {exc}")
