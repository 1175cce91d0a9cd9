"""Pub/sub between replicas: each reacts at once to what another changed."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from metamedia.domain import SearchRequest
from metamedia.services.runtime import Runtime
from tests.waiting import wait_until


@pytest.fixture()
def slow_polling_pair(
    demo_data_dir: Path, tmp_path: Path, make_runtime: Any, redis_url: str
) -> tuple[Runtime, Runtime]:
    """Two replicas that would only notice definition changes after a minute by
    polling: whatever they notice sooner came over the bus."""
    copy = tmp_path / "shared-data"
    shutil.copytree(demo_data_dir, copy)
    pair = tuple(
        make_runtime(copy, redis_url=redis_url, experiments_refresh_s=60) for _ in range(2)
    )
    for rt in pair:
        assert rt.shared is not None
        assert rt.shared.bus.connected.wait(10)  # type: ignore[attr-defined]
    return pair  # type: ignore[return-value]


def test_a_flag_flipped_on_one_replica_applies_on_the_other_within_a_second(
    slow_polling_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = slow_polling_pair
    assert b.experiments.experiment("feed_ranking_v2").enabled
    a.experiments.set_enabled("experiment", "feed_ranking_v2", False, actor="test")
    assert wait_until(lambda: not b.experiments.experiment("feed_ranking_v2").enabled, 1.0)


def test_a_flag_change_empties_the_other_replicas_in_process_tier(
    slow_polling_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = slow_polling_pair
    b.search.search(SearchRequest(query="ghost story", limit=3))
    assert len(b.caches.search) == 1
    a.experiments.set_enabled("experiment", "feed_ranking_v2", False, actor="test")
    assert wait_until(lambda: len(b.caches.search) == 0)


def test_a_catalog_write_on_one_replica_is_replayed_by_the_other_without_a_request(
    slow_polling_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = slow_polling_pair
    a.indexes.sync()
    b.indexes.sync()
    before = b.indexes.watermark
    a.catalog.put("mm-new-1", {"title": "A Lighthouse Keeper's Last Winter"})
    assert wait_until(lambda: b.indexes.watermark > before)
    assert b.replication is not None and b.replication.handled.get("catalog", 0) >= 1
    # B replayed what A announced: it does not announce it back.
    time.sleep(0.3)
    assert a.replication is not None and a.replication.handled.get("catalog", 0) == 0


def test_a_users_change_reaches_the_other_replica_and_never_echoes(
    slow_polling_pair: tuple[Runtime, Runtime],
) -> None:
    a, b = slow_polling_pair
    a.users.upsert("default", "ana", None)
    a.users.record("default", "ana", [{"item": "mm-0001", "type": "like"}])
    assert b.replication is not None and a.replication is not None
    assert wait_until(lambda: b.replication.handled.get("user", 0) >= 1)  # type: ignore[union-attr]
    assert a.replication.handled.get("user", 0) == 0
