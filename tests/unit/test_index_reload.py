"""A saved index reloads with every item's filter attributes, read a slice at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metamedia.domain import SearchRequest
from metamedia.services import indexing
from tests.conftest import item, write_jsonl

FILMS = [
    item(
        f"f{i}",
        f"Harbour Story {i}",
        "A lighthouse keeper guards a stormy harbour.",
        year=y,
        genres=g,
    )
    for i, (y, g) in enumerate(
        [
            (1951, ["drama"]),
            (1964, ["crime"]),
            (1977, ["drama"]),
            (1988, ["horror"]),
            (1993, ["crime"]),
            (2004, ["drama"]),
            (2011, ["comedy"]),
            (2019, ["crime"]),
        ]
    )
]


def _found(runtime: Any, **filters: Any) -> list[str]:
    request = SearchRequest(query="lighthouse harbour", limit=20, filters=filters)
    return sorted(hit.id for hit in runtime.search.search(request).results)


def test_reloaded_filters_match_the_catalog_when_read_in_slices(
    tmp_path: Path, make_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    first = make_runtime(data_dir)
    first.ingest.ingest_path(write_jsonl(tmp_path / "films.jsonl", FILMS), "auto")
    first.indexes.flush()
    expected = {
        "crime": _found(first, genres=["crime"]),
        "old": _found(first, year_max=1980),
    }
    assert expected["crime"] == ["f1", "f4", "f7"] and expected["old"] == ["f0", "f1", "f2"]
    first.close()
    # Three rows per read: eight films take three reads, the last one short.
    monkeypatch.setattr(indexing, "PAYLOAD_READ_ROWS", 3)
    reopened = make_runtime(data_dir)
    assert reopened.indexes.sync() == 0  # loaded from the saved files, not rebuilt
    assert _found(reopened, genres=["crime"]) == expected["crime"]
    assert _found(reopened, year_max=1980) == expected["old"]
    assert len(_found(reopened)) == len(FILMS)
