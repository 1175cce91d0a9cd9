"""User events on a Redis Stream: counted once, refreshed, never lost to a killed consumer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from metamedia.services.activity import ActivityPipeline
from metamedia.services.runtime import Runtime
from metamedia.testing.redis import RedisServer

PEOPLE = ("ana", "ben", "cho", "dev")
ITEMS = ("mm-0001", "mm-0002", "mm-0003", "mm-0004", "mm-0005")

DOOMED_CONSUMER = """
import sys, time
from metamedia.storage.redis_link import RedisLink
from metamedia.storage.redis_stream import RedisEventStream

stream = RedisEventStream(RedisLink(sys.argv[1], namespace=sys.argv[2]))
got = stream.read("doomed", 1000, 1000, 600_000)
print(len(got), flush=True)
time.sleep(600)  # killed here: read, never acknowledged
"""


def _record_some(runtime: Runtime) -> int:
    """Real interactions through the user service (stored, then streamed)."""
    sent = 0
    for i, user in enumerate(PEOPLE):
        runtime.users.upsert("default", user, None)
        events = [{"item": item, "type": "like"} for item in ITEMS[: i + 2]]
        events.append({"item": ITEMS[0], "type": "skip"})
        runtime.users.record("default", user, events)
        sent += 1
    return sent


def _pipeline(runtime: Runtime, **options: int) -> ActivityPipeline:
    assert runtime.shared is not None and runtime.activity is not None
    return ActivityPipeline(
        runtime.shared.events, runtime.shared.counters, runtime.refresher, **options
    )


def test_streamed_events_give_the_same_trending_as_the_database_counted_once(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    batches = _record_some(a)
    assert a.activity is not None and a.activity.appended == batches
    consumer = _pipeline(b)
    while consumer.run_once(block_ms=100):
        pass
    assert consumer.handled == batches
    assert b.shared is not None
    counters = b.shared.counters
    since = time.time() - 3600
    assert counters.trending("default", since, 10) == a.stores.users.trending("default", since, 10)
    assert counters.trending("other-tenant", since, 10) == []
    first_pk = a.catalog.repo.get("default", ITEMS[0]).pk  # type: ignore[union-attr]
    assert counters.popularity("default", [first_pk]) == {first_pk: 8}  # 4 likes + 4 skips
    # At least once: the same entry handled again changes no counter.
    counted = consumer.counted
    consumer.handle({"tenant": "default", "user": "ana", "events": _events_json(first_pk, "like")})
    consumer.handle({"tenant": "default", "user": "ana", "events": _events_json(first_pk, "like")})
    assert consumer.counted == counted + 1
    assert counters.popularity("default", [first_pk]) == {first_pk: 9}


def _events_json(pk: int, kind: str) -> str:
    return f'[{{"pk": {pk}, "type": "{kind}", "ts": 1800000000.5, "item": "x"}}]'


def test_a_consumer_killed_mid_batch_loses_nothing(
    replica_pair: tuple[Runtime, Runtime], redis_url: str
) -> None:
    a, b = replica_pair
    assert b.shared is not None
    batches = _record_some(a)
    doomed = subprocess.Popen(
        [sys.executable, "-c", DOOMED_CONSUMER, redis_url, b.shared.namespace],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )
    try:
        assert doomed.stdout is not None
        taken = int(doomed.stdout.readline())
        assert taken == batches
        assert b.shared is not None and b.shared.events.pending() == batches
    finally:
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(30)
    survivor = _pipeline(b, claim_idle_ms=50)
    time.sleep(0.1)  # the entries must have been idle for claim_idle_ms
    handled = 0
    while done := survivor.run_once(block_ms=100):
        handled += done
    assert handled == batches
    assert b.shared.events.pending() == 0
    since = time.time() - 3600
    assert b.shared.counters.trending("default", since, 10) == a.stores.users.trending(
        "default", since, 10
    )


def test_the_consumer_refreshes_the_users_feed(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair
    a.refresher.start()  # A serves: its users' changes ask for refreshes
    b.refresher.start()
    a.users.upsert("default", "ana", None)
    a.users.record("default", "ana", [{"item": ITEMS[0], "type": "like"}])
    consumer = _pipeline(b)
    assert consumer.run_once(block_ms=1000) == 1
    deadline = time.monotonic() + 30
    while b.refresher.refreshed < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.refresher.refreshed == 1
    assert a.refresher.refreshed == 0  # A streamed it instead of ranking it itself
    # ... and A's next feed request is the page B ranked, from the shared tier.
    assert a.discovery.feed("default", "ana", 20).cached


def test_with_redis_down_events_are_stored_and_the_feed_refreshed_locally(
    demo_runtime: Runtime, make_runtime: object, tmp_path: Path
) -> None:
    with RedisServer() as server:
        runtime: Runtime = make_runtime(  # type: ignore[operator]
            demo_runtime.settings.data_dir, redis_url=server.url
        )
        server.stop()
        runtime.users.upsert("default", "ana", None)
        runtime.users.record("default", "ana", [{"item": ITEMS[0], "type": "like"}])
        assert runtime.activity is not None and runtime.activity.local_refreshes == 1
        assert runtime.users.history("default", "ana", 10, 0)


def test_events_from_a_process_that_does_not_serve_are_counted_but_rank_no_feed(
    replica_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = replica_pair  # A's refresher is not running: a CLI import, say
    b.refresher.start()
    a.users.upsert("default", "ana", None)
    a.users.record("default", "ana", [{"item": ITEMS[0], "type": "like"}])
    consumer = _pipeline(b)
    assert consumer.run_once(block_ms=1000) == 1
    assert consumer.counted == 1
    b.refresher.stop()
    assert b.refresher.refreshed == 0
