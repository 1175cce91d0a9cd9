"""`metamedia demo` creates the demo users (idempotently) and the themes the web UI shows."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from metamedia.cli import app

runner = CliRunner()


def test_demo_loads_users_and_themes_once(tmp_path: Path) -> None:
    args = ["demo", "--no-serve", "--json", "--data-dir", str(tmp_path / "data")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["demo_users"]["users"] >= 3
    assert report["demo_users"]["recorded"] > 0 and report["demo_users"]["rejected"] == 0
    assert report["train"]["themes"]["trained"] is True
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["demo_users"]["recorded"] == 0
    assert again["demo_users"]["duplicates"] == report["demo_users"]["recorded"]
