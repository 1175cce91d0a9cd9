"""The embedded default loads no server driver: psycopg and redis come in only when a
URL names PostgreSQL or Redis (resident memory a single-machine service never uses).
Nor does reopening an up-to-date database load Alembic: only a migration needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from pathlib import Path
import metamedia.api.app
from metamedia.config import Settings
from metamedia.services.runtime import Runtime
runtime = Runtime.open(Settings(data_dir=Path(sys.argv[1])))
runtime.close()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _modules_after_open(data_dir: Path) -> set[str]:
    """Top-level modules a fresh interpreter holds after opening `data_dir`."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_embedded_runtime_imports_no_server_driver(tmp_path: Path) -> None:
    loaded = _modules_after_open(tmp_path / "data")
    assert "metamedia" in loaded
    assert not loaded & {"psycopg", "redis", "pgvector"}, loaded & {"psycopg", "redis"}
    assert "alembic" in loaded  # a new database: every revision ran
    reopened = _modules_after_open(tmp_path / "data")
    assert "metamedia" in reopened
    assert not reopened & {"alembic", "mako"}, "a database at head needs no migration tool"
