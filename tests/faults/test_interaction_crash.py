"""A process recording interactions is killed with SIGKILL mid-stream, again and
again; after a restart every interaction whose `users.record()` had returned is
stored, and the saved preference vector is exactly the one learned from the stored
history (the vector never runs ahead of, or behind, the events). On the embedded
store and on PostgreSQL.

What is acknowledged is durable against the process dying: `record()` returns
after its transaction committed (SQLite: WAL, synchronous=NORMAL, so the commit is
in the WAL file through the OS before the call returns; PostgreSQL: the server
committed). Power loss is another matter: see `UserService.record`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metamedia.engine.profile import PreferenceState, apply_event, signal_weight
from metamedia.services.runtime import Runtime
from metamedia.services.users import PREFERENCE_HALF_LIFE_S
from tests.conftest import DEMO_CATALOG

USER = "crash-user"

RECORDER = r"""
import json, sys, time
from pathlib import Path
from metamedia.config import Settings
from metamedia.services.runtime import Runtime
data_dir, url, start = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
items = json.loads(sys.argv[4])
rt = Runtime.open(Settings(data_dir=Path(data_dir), database_url=url))
base = time.time() - 86_400.0
kinds = ["view", "like", "rate", "skip", "complete"]
for n in range(start, start + 100_000):
    # One to three events per call, timestamps strictly increasing across calls.
    batch = []
    for j in range(1 + n % 3):
        kind = kinds[(n + j) % len(kinds)]
        event = {"item": items[(7 * n + j) % len(items)], "type": kind,
                 "ts": base + n + j / 10}
        if kind == "rate":
            event["value"] = 0.5 + (n % 10) / 2
        batch.append(event)
    results = rt.users.record("default", sys.argv[5], batch, create_user=True)
    assert all(r.status == "recorded" for r in results), results
    print(json.dumps({"acked": batch}), flush=True)
"""


def _run_and_kill(
    data_dir: Path, url: str, start: int, items: list[str], after: int
) -> tuple[list[dict[str, Any]], int]:
    """Start a recorder, SIGKILL it once `after` calls have returned; the acked events."""
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(data_dir), url, str(start), json.dumps(items), USER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    acked: list[dict[str, Any]] = []
    calls = 0
    deadline = time.monotonic() + 180
    while calls < after and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked += json.loads(line)["acked"]
        calls += 1
    # The recorder keeps going while the signal is on its way: the kill lands inside
    # some later call (its events may or may not be stored; none of them was acked).
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    # Lines already written before the kill were acknowledged too.
    for line in proc.stdout.read().splitlines():
        try:
            acked += json.loads(line)["acked"]
            calls += 1
        except ValueError:  # a line cut short by the kill was never acknowledged
            break
    assert calls >= after, "the recorder was not acknowledged enough before the kill"
    return acked, start + calls


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_every_acknowledged_interaction_survives_sigkill(
    backend: str, tmp_path: Path, make_runtime: Any, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgresql" else ""
    data_dir = tmp_path / "data"
    first: Runtime = make_runtime(data_dir, database_url=url or None)
    assert first.ingest.ingest_path(DEMO_CATALOG, "jsonl").rejected == 0
    first.indexes.sync()
    items = sorted(item.id for item in first.repo.get_many(list(range(1, 200))).values())[:40]
    first.close()

    acked: list[dict[str, Any]] = []
    start = 0
    for round_ in range(3):
        events, start = _run_and_kill(data_dir, url, start, items, after=40 + 25 * round_)
        acked += events
        start += 1  # the killed call's numbers are never reused (its events may exist)

    rt: Runtime = make_runtime(data_dir, database_url=url or None)
    record = rt.users.require("default", USER)
    stored = {(e.item, e.type, e.ts) for e in rt.users.history("default", USER, 1_000_000, 0)}
    missing = [e for e in acked if (e["item"], e["type"], e["ts"]) not in stored]
    assert not missing, f"{len(missing)} acknowledged interactions lost, e.g. {missing[:3]}"
    assert len(stored) >= len(acked)

    # The profile reflects exactly the stored events: replaying the history gives
    # the saved vector, learned event by event as the calls were made.
    saved = rt.users.users.load_vector(record.pk, rt.users.model)
    assert saved is not None
    history = rt.users.users.events(record.pk)
    vectors = rt.indexes.vectors_of([e.media_pk for e in history])
    replay = PreferenceState.empty(rt.indexes.index.dim, 0.0)
    for event in history:
        weight = signal_weight(event.type, event.value)
        apply_event(replay, vectors[event.media_pk], weight, event.ts, PREFERENCE_HALF_LIFE_S)
    assert saved.events == replay.events > 0
    assert np.allclose(saved.vector, replay.vector, atol=1e-5)
    assert saved.updated_at == pytest.approx(replay.updated_at)
