"""`metamedia migrate-store`: an embedded data directory moves into PostgreSQL intact,
and the same code then serves from the server database."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from metamedia.cli import app
from metamedia.domain import SearchRequest
from metamedia.services.runtime import Runtime
from metamedia.testing.postgres import free_port

runner = CliRunner()


def _prepare(demo_data_dir: Path, tmp_path: Path, make_runtime: Any) -> tuple[Path, str]:
    data_dir = tmp_path / "embedded"
    shutil.copytree(demo_data_dir, data_dir)
    rt: Runtime = make_runtime(data_dir)
    results = rt.users.record(
        "default", "ada", [{"item": "mm-0063", "type": "view"}], create_user=True
    )
    assert [r.status for r in results] == ["recorded"], results
    key = rt.keys.create("ops", ["read", "write"], tenant="default").secret
    rt.close()
    return data_dir, key


def test_migrate_store_copies_everything_and_the_copy_serves(
    demo_data_dir: Path, tmp_path: Path, make_runtime: Any, postgres_url: str
) -> None:
    data_dir, key = _prepare(demo_data_dir, tmp_path, make_runtime)
    result = runner.invoke(
        app, ["migrate-store", "--to", postgres_url, "--data-dir", str(data_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    # Two JSON documents: the copy's summary, then `index check` on the target.
    copy_json, check_json = result.stdout.split("\n}\n", 1)
    summary = json.loads(copy_json + "}")
    assert json.loads(check_json)["healthy"] is True
    assert summary["mismatched"] == {}
    assert summary["rows"]["media"] == 170
    assert summary["rows"]["interactions"] >= 1
    assert summary["keyword_rows"] == 170

    served: Runtime = make_runtime(data_dir, database_url=postgres_url)
    assert served.repo.count() == 170
    hits = served.search.search(SearchRequest(query="Ninth Vault, The", limit=3))
    assert hits.results[0].id == "mm-0063"
    assert served.keys.verify(key) is not None
    assert [e.item for e in served.users.history("default", "ada", 5, 0)] == ["mm-0063"]

    again = runner.invoke(app, ["migrate-store", "--to", postgres_url, "--data-dir", str(data_dir)])
    assert again.exit_code == 2
    assert "already holds 170 catalog items" in again.output


def test_unreachable_target_names_host_and_port_but_not_the_password(tmp_path: Path) -> None:
    port = free_port()
    url = f"postgresql://mm:s3cret-pw@127.0.0.1:{port}/db"
    result = runner.invoke(app, ["migrate-store", "--to", url, "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert f"127.0.0.1:{port}" in result.output
    assert "s3cret-pw" not in result.output
