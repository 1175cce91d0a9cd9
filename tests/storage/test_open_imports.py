"""The embedded default loads no server driver: psycopg and redis come in only when a
URL names PostgreSQL or Redis (resident memory a single-machine service never uses)."""

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


def test_the_embedded_runtime_imports_no_server_driver(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert "metamedia" in loaded
    assert not loaded & {"psycopg", "redis", "pgvector"}, loaded & {"psycopg", "redis"}
