"""JSON Lines: one media item object per line, in our own schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from metamedia.formats.records import MAX_LINE_BYTES, RawRecord


def read_jsonl(path: Path) -> Iterator[RawRecord]:
    source = str(path)
    with open(path, "rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            if len(raw_line) > MAX_LINE_BYTES:
                yield RawRecord(
                    source,
                    number,
                    error=f"line is {len(raw_line)} bytes, over the {MAX_LINE_BYTES}-byte limit",
                    raw=raw_line[:200].decode("utf-8", "replace"),
                )
                continue
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(source, number, error=f"not valid UTF-8: {exc}")
                continue
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RawRecord(
                    source, number, error=f"broken JSON: {exc.msg} at column {exc.colno}", raw=line
                )
                continue
            if not isinstance(data, dict):
                yield RawRecord(
                    source,
                    number,
                    error=f"expected a JSON object, got {type(data).__name__}",
                    raw=line,
                )
                continue
            yield RawRecord(source, number, data=data, raw=line)
