"""Rate limits shared by replicas through Redis, per-process while Redis is away."""

from __future__ import annotations

import time

from limits import parse

from metamedia.services.rate_limits import FailoverLimiter, limiter_for
from metamedia.testing.redis import RedisServer

THREE = parse("3/minute")


def test_two_replicas_count_against_one_limit(redis_url: str) -> None:
    a, b = limiter_for(redis_url), limiter_for(redis_url)
    assert a.hit(THREE, "ip", "10.0.0.1")
    assert b.hit(THREE, "ip", "10.0.0.1")
    assert a.hit(THREE, "ip", "10.0.0.1")
    assert not b.hit(THREE, "ip", "10.0.0.1")
    assert b.hit(THREE, "ip", "10.0.0.2")  # another client has its own count
    assert a.status() == b.status() == "shared"


def test_without_redis_the_limits_are_per_process() -> None:
    a, b = limiter_for(None), limiter_for(None)
    for _ in range(3):
        assert a.hit(THREE, "ip", "x")
    assert not a.hit(THREE, "ip", "x")
    assert b.hit(THREE, "ip", "x")
    assert a.status() == "local"


def test_a_redis_outage_falls_back_to_per_process_counts_and_recovers() -> None:
    with RedisServer() as server:
        limiter = limiter_for(server.url)
        assert limiter.hit(THREE, "ip", "y") and limiter.status() == "shared"
        server.stop()
        # Still limited while Redis is down, by this process's own counters.
        answers = [limiter.hit(THREE, "ip", "z") for _ in range(4)]
        assert answers == [True, True, True, False]
        assert limiter.status() == "local-fallback" and limiter.fallbacks >= 1
        server.start()
        deadline = time.monotonic() + 15
        while limiter.status() != "shared" and time.monotonic() < deadline:
            limiter.hit(THREE, "ip", "probe")
            time.sleep(0.1)
        assert limiter.status() == "shared"


def test_a_failing_shared_store_never_fails_the_caller() -> None:
    def broken() -> object:
        raise ConnectionError("no route to Redis")

    limiter = FailoverLimiter(broken)  # type: ignore[arg-type]
    assert limiter.hit(THREE, "ip", "w")
    assert limiter.get_window_stats(THREE, "ip", "w").remaining == 2
