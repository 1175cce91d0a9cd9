"""The `metamedia` command line, driven as a user would (in-process runner + one real server)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from metamedia.cli import app
from metamedia.config import DEFAULT_MODEL
from tests.conftest import DEMO_CATALOG, item, write_jsonl
from tests.live_server import free_port, wait_until_ready

runner = CliRunner()


def _run(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    return result


def _json(*args: str) -> Any:
    result = _run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_ingest_search_stats_and_index_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    report = _json("ingest", str(DEMO_CATALOG), "--data-dir", data)
    assert report["inserted"] == 170 and report["rejected"] == 0 and report["items_per_s"] > 0

    found = _json(
        "search",
        "heist movie with a twist ending",
        "--type",
        "movie",
        "--genre",
        "crime",
        "--year",
        "1990-1999",
        "--platform",
        "netflix",
        "--language",
        "en",
        "--min-rating",
        "3.5",
        "--limit",
        "10",
        "--data-dir",
        data,
    )
    assert found["results"][0]["id"] == "mm-0063"
    assert all(1990 <= r["year"] <= 1999 for r in found["results"])

    keyword = _json("search", "vault", "--mode", "keyword", "--data-dir", data)
    assert all(r["explanation"]["keyword_rank"] for r in keyword["results"])

    stats = _json("stats", "--data-dir", data)
    assert stats["items"] == 170 and stats["index"]["type"] == "flat"
    assert (
        stats["index"]["vectors"] == 170
        and stats["model"] == DEFAULT_MODEL == "all-MiniLM-L6-v2-tot"
    )
    assert stats["data_dir"] == data

    check = _json("index", "check", "--data-dir", data)
    assert check["healthy"] is True

    table = _run("search", "haunted house", "--data-dir", data)
    assert table.exit_code == 0 and "results in" in table.stdout


def test_index_check_finds_damage_and_rebuild_repairs_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _json("ingest", str(DEMO_CATALOG), "--data-dir", str(data))
    (data / "index" / "vectors.npz").unlink()
    broken = _run("index", "check", "--data-dir", str(data), "--json")
    assert broken.exit_code == 1
    report = json.loads(broken.stdout)
    assert report["healthy"] is False and len(report["vector"]["missing"]) == 170

    import sqlite3

    with sqlite3.connect(data / "catalog.sqlite3") as conn:
        conn.execute("DELETE FROM media_fts WHERE rowid IN (SELECT pk FROM media LIMIT 5)")
    damaged = json.loads(_run("index", "check", "--data-dir", str(data), "--json").stdout)
    assert len(damaged["keyword"]["missing"]) == 5

    rebuilt = _json("index", "rebuild", "--data-dir", str(data))
    assert rebuilt == {"keyword_rows": 170, "vectors": 170, "index_type": "flat"}
    assert _json("index", "check", "--data-dir", str(data))["healthy"] is True


def test_prune_vectors_keeps_the_space_in_use_and_deletes_the_rest(tmp_path: Path) -> None:
    """A data dir that was embedded by older weights keeps those vectors until pruned;
    the dry run lists without deleting, the real run leaves search intact."""
    import sqlite3

    data = str(tmp_path / "data")
    _json("ingest", str(DEMO_CATALOG), "--data-dir", data)
    with sqlite3.connect(tmp_path / "data" / "catalog.sqlite3") as conn:
        conn.execute(
            "INSERT INTO embeddings (model, content_hash, dim, vector) "
            "SELECT 'all-MiniLM-L6-v2-tot@0ld0ld00+passages-v1', content_hash, dim, vector "
            "FROM embeddings"
        )
    listed = _json("index", "prune-vectors", "--dry-run", "--data-dir", data)
    current = listed["current"]
    assert current.startswith(f"{DEFAULT_MODEL}@") and current.endswith("+passages-v1")
    stale = "all-MiniLM-L6-v2-tot@0ld0ld00+passages-v1"
    assert set(listed["spaces"]) == {current, stale} and listed["dropped"] == {}
    assert listed["spaces"][stale] == listed["spaces"][current] > 170  # passages too

    pruned = _json("index", "prune-vectors", "--data-dir", data)
    assert pruned["dropped"] == {stale: listed["spaces"][stale]}
    after = _json("index", "prune-vectors", "--dry-run", "--data-dir", data)
    assert after["spaces"] == {current: listed["spaces"][current]}
    assert _json("index", "check", "--data-dir", data)["healthy"] is True
    found = _json("search", "heist movie with a twist ending", "--data-dir", data)
    assert found["results"][0]["id"] == "mm-0063"
    assert "nothing to prune" in _run("index", "prune-vectors", "--data-dir", data).stdout


def test_hnsw_is_chosen_above_the_configured_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METAMEDIA_HNSW_THRESHOLD", "100")
    data = str(tmp_path / "data")
    _json("ingest", str(DEMO_CATALOG), "--data-dir", data)
    assert _json("stats", "--data-dir", data)["index"]["type"] == "hnsw_fp16"  # auto's graph
    found = _json(
        "search", "haunted house", "--mode", "semantic", "--genre", "horror", "--data-dir", data
    )
    assert len(found["results"]) == 10 and all("horror" in r["genres"] for r in found["results"])


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    missing = _run("ingest", str(tmp_path / "nope.jsonl"), "--data-dir", data)
    assert missing.exit_code == 2 and "no such file" in missing.output
    inverted = _run("search", "x", "--year", "2000-1990", "--data-dir", data)
    assert inverted.exit_code == 2 and "inverted" in inverted.output
    badyear = _run("search", "x", "--year", "nineties", "--data-dir", data)
    assert badyear.exit_code == 2 and "--year" in badyear.output
    badlimit = _run("search", "x", "--limit", "0", "--data-dir", data)
    assert badlimit.exit_code == 2 and "limit" in badlimit.output
    rows = write_jsonl(tmp_path / "c.jsonl", [item("a", "A"), "{broken"])
    mixed = _run("ingest", str(rows), "--data-dir", data)
    assert mixed.exit_code == 0 and "broken JSON" in mixed.output


@pytest.mark.slow
def test_serve_answers_over_real_http(demo_data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_data_dir, data)
    port = free_port()
    env = {**os.environ, "METAMEDIA_DATA_DIR": str(data)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "metamedia", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base, proc, 120)
        response = httpx.get(f"{base}/v1/search", params={"q": "haunted house", "limit": 3})
        assert response.status_code == 200 and len(response.json()["results"]) == 3
        assert httpx.get(f"{base}/docs").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
