"""`metamedia keys create --tenant / --platform` and the anonymous mode `serve` / `demo`
announce, driven through the real CLI (the server start itself is replaced)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from metamedia.cli import app
from metamedia.config import Settings
from metamedia.services.runtime import Runtime

runner = CliRunner()


def _json(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_keys_are_made_for_one_tenant_or_for_the_platform(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path / "data")]
    bound = _json("keys", "create", "--name", "acme-ci", "--scope", "write", "--tenant", "acme",
                  "--json", *where)  # fmt: skip
    assert bound["tenant"] == "acme"
    default = _json("keys", "create", "--name", "ci", "--scope", "read", "--json", *where)
    assert default["tenant"] == "default"
    platform = _json("keys", "create", "--name", "ops", "--scope", "admin", "--platform",
                     "--json", *where)  # fmt: skip
    assert platform["tenant"] is None
    listed = _json("keys", "list", "--json", *where)
    assert [(k["name"], k["tenant"]) for k in listed] == [
        ("acme-ci", "acme"),
        ("ci", "default"),
        ("ops", None),
    ]
    both = runner.invoke(
        app, ["keys", "create", "--name", "x", "--scope", "read", "--tenant", "a", "--platform",
              *where],
    )  # fmt: skip
    assert both.exit_code != 0 and "not both" in both.output
    runtime = Runtime.open(Settings(data_dir=tmp_path / "data"))
    try:
        principal = runtime.keys.verify(bound["key"])
        assert principal is not None and principal.tenant == "acme"
    finally:
        runtime.close()


def test_serve_and_demo_say_what_anonymous_callers_may_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    where = ["--data-dir", str(tmp_path / "served")]
    served = runner.invoke(app, ["serve", *where])
    assert served.exit_code == 0, served.output
    assert "Anonymous access: read" in served.output
    off = runner.invoke(app, ["serve", "--anonymous", "off", *where])
    assert "Anonymous access: off" in off.output
    monkeypatch.setenv("METAMEDIA_PUBLIC_USER_WRITES", "true")
    legacy = runner.invoke(app, ["serve", *where])
    assert "METAMEDIA_PUBLIC_USER_WRITES is gone" in legacy.output
    monkeypatch.delenv("METAMEDIA_PUBLIC_USER_WRITES")
    bad = runner.invoke(app, ["serve", "--anonymous", "everyone", *where])
    assert bad.exit_code != 0 and "off, read or open" in bad.output
    demo = runner.invoke(app, ["demo", "--data-dir", str(tmp_path / "demo")])
    assert demo.exit_code == 0, demo.output
    assert "Open mode" in demo.output and "Anonymous access: OPEN" in demo.output
    closed = runner.invoke(app, ["demo", "--no-open", "--data-dir", str(tmp_path / "demo")])
    assert "Open mode" not in closed.output and "Anonymous access: read" in closed.output
    assert len(started) == 5
