"""Pick a reader for a path, by explicit format or by looking at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from metamedia.errors import FormatError
from metamedia.formats.csv_table import read_csv
from metamedia.formats.jsonl import read_jsonl
from metamedia.formats.movielens import read_movielens
from metamedia.formats.records import RawRecord
from metamedia.formats.wikipedia import read_wikipedia

CatalogFormat = Literal["auto", "jsonl", "csv", "wikipedia", "movielens"]
READERS: dict[str, Callable[[Path], Iterator[RawRecord]]] = {
    "jsonl": read_jsonl,
    "csv": read_csv,
    "wikipedia": read_wikipedia,
    "movielens": read_movielens,
}


def detect_format(path: Path) -> str:
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "movies.csv").exists():
            return "movielens"
        if any(path.glob("*.json")):
            return "wikipedia"
        raise FormatError(
            f"{path}: directory has neither movies.csv (MovieLens) nor *.json (Wikipedia)"
        )
    suffix = path.suffix.lower()
    if suffix in {".jsonl", ".ndjson"}:
        return "jsonl"
    if suffix in {".csv", ".tsv"}:
        return "csv"
    if suffix == ".json":
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096).lstrip()
        return "wikipedia" if head.startswith("[") else "jsonl"
    raise FormatError(
        f"{path}: cannot tell the format from the name; pass --format jsonl|csv|wikipedia|movielens"
    )


def open_catalog(path: Path, fmt: str = "auto") -> tuple[str, Iterator[RawRecord]]:
    resolved = detect_format(path) if fmt == "auto" else fmt
    reader = READERS.get(resolved)
    if reader is None:
        raise FormatError(f"unknown format {fmt!r}; use one of auto, {', '.join(READERS)}")
    if resolved == "movielens" and not (path / "movies.csv").exists():
        raise FormatError(f"{path}: a MovieLens directory needs movies.csv")
    if not path.exists():
        raise FormatError(f"{path}: no such file or directory")
    return resolved, reader(path)
