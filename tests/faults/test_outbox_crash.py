"""A process following the outbox is killed with SIGKILL mid-stream, again and again;
a restart converges: every committed item is in the index once, nothing is lost,
nothing is duplicated. On the embedded store and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from metamedia.services.runtime import Runtime
from tests.conftest import DEMO_CATALOG

WRITER = r"""
import json, sys
from pathlib import Path
from metamedia.config import Settings
from metamedia.services import indexing
from metamedia.services.runtime import Runtime
indexing.SAVE_EVERY_S = 0.0  # save after every sync: kills land during saves too
data_dir, url, start = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
rt = Runtime.open(Settings(data_dir=Path(data_dir), database_url=url))
for batch in range(start, start + 1000):
    path = Path(data_dir) / f"batch-{batch}.jsonl"
    rows = [{"id": f"crash-{batch}-{i}", "title": f"Crash Film {batch} {i}", "type": "movie",
             "description": f"Film number {i} of batch {batch}, written while being killed."}
            for i in range(10)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = rt.ingest.ingest_path(path, "jsonl")
    assert report.rejected == 0
    print(json.dumps({"committed": batch}), flush=True)
"""


def _run_and_kill(data_dir: Path, url: str, start: int, after_batches: int) -> int:
    """Start a writer, SIGKILL it once it has committed `after_batches` batches."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir), url, str(start)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    last = start - 1
    deadline = time.monotonic() + 180
    while last < start + after_batches - 1 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        last = int(json.loads(line)["committed"])
    time.sleep(0.05 * (start % 7))  # land the kill at a different point each round
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert last >= start, "the writer committed nothing before it was killed"
    return last


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_killed_outbox_follower_converges(
    backend: str, tmp_path: Path, make_runtime: Any, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else ""
    data_dir = tmp_path / "data"
    first: Runtime = make_runtime(data_dir, database_url=url or None)
    assert first.ingest.ingest_path(DEMO_CATALOG, "jsonl").rejected == 0
    first.close()

    committed: list[int] = []
    start = 0
    for round_ in range(3):
        last = _run_and_kill(data_dir, url, start, after_batches=2 + round_)
        committed += list(range(start, last + 1))
        start = last + 1

    rt: Runtime = make_runtime(data_dir, database_url=url or None)
    rt.indexes.sync()
    rt.indexes.save()
    report = rt.indexes.check()
    assert report.healthy, report
    assert report.pending_changes == 0
    keys = [int(k) for k in rt.indexes.index.live_keys()]
    assert len(keys) == len(set(keys)) == rt.repo.count()
    for batch in committed:
        for i in range(10):
            stored = rt.repo.get("default", f"crash-{batch}-{i}")
            assert stored is not None, (batch, i)
            assert rt.indexes.index.position_of(stored.pk) is not None, (batch, i)
