"""The compressed index kind chosen by size, or by the operator, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from metamedia.cli import app
from metamedia.config import Settings
from metamedia.services.indexing import index_kind
from tests.conftest import DEMO_CATALOG

runner = CliRunner()


def _json(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_auto_picks_by_size_and_an_explicit_kind_wins() -> None:
    auto = Settings(hnsw_threshold=20_000, compressed_threshold=200_000)
    assert index_kind(auto, 19_999) == "flat"
    assert index_kind(auto, 20_000) == "hnsw_fp16"
    assert index_kind(auto, 199_999) == "hnsw_fp16"
    assert index_kind(auto, 200_000) == "hnsw_sq8"
    assert index_kind(auto, 1_000_000) == "hnsw_sq8"
    assert index_kind(Settings(compressed_threshold=0), 10**7) == "hnsw_fp16"
    for kind in ("flat", "hnsw", "hnsw_fp16", "hnsw_sq8"):
        forced = Settings(vector_index_kind=kind, compressed_threshold=10)
        assert index_kind(forced, 5) == kind and index_kind(forced, 10**6) == kind


def test_env_override_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAMEDIA_VECTOR_INDEX_KIND", "hnsw_sq8")
    monkeypatch.setenv("METAMEDIA_COMPRESSED_THRESHOLD", "1234")
    settings = Settings()
    assert settings.vector_index_kind == "hnsw_sq8" and settings.compressed_threshold == 1234
    monkeypatch.setenv("METAMEDIA_VECTOR_INDEX_KIND", "pq")
    with pytest.raises(ValueError):
        Settings()


def test_compressed_catalog_searches_saves_and_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METAMEDIA_COMPRESSED_THRESHOLD", "100")
    data = str(tmp_path / "data")
    _json("ingest", str(DEMO_CATALOG), "--data-dir", data)
    index_dir = tmp_path / "data" / "index"
    assert len(list(index_dir.glob("vectors.items.*.f32"))) == 1
    assert len(list(index_dir.glob("vectors.pas.*.f32"))) == 1
    stats = _json("stats", "--data-dir", data)["index"]
    assert stats["type"] == "hnsw_sq8" and stats["passage_type"] == "hnsw_sq8"
    assert stats["passage_vectors"] > stats["vectors"] == 170
    found = _json(
        "search", "haunted house", "--mode", "semantic", "--genre", "horror", "--data-dir", data
    )
    assert len(found["results"]) == 10 and all("horror" in r["genres"] for r in found["results"])
    assert _json("index", "check", "--data-dir", data)["healthy"] is True

    monkeypatch.setenv("METAMEDIA_VECTOR_INDEX_KIND", "hnsw")  # the override wins
    stats = _json("stats", "--data-dir", data)["index"]
    assert stats["type"] == "hnsw" and stats["passage_type"] == "hnsw"
    assert not list(index_dir.glob("vectors.*.f32"))  # the rebuild saved no sidecars
