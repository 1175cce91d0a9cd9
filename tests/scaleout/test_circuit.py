"""The breaker that keeps a down Redis from costing every request a timeout."""

from __future__ import annotations

from metamedia.storage.circuit import CircuitBreaker
from metamedia.storage.redis_link import RedisLink
from metamedia.testing.redis import RedisServer, free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_skips_during_cooldown_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(cooldown_s=1.0, max_cooldown_s=4.0, clock=clock)
    assert breaker.allow() and breaker.healthy
    breaker.failed(ConnectionError())
    assert not breaker.healthy
    assert not breaker.allow() and not breaker.allow()
    assert breaker.skipped == 2
    clock.now += 1.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else keeps skipping while it runs
    breaker.failed(ConnectionError())  # the probe failed: wait twice as long
    clock.now += 1.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.healthy and breaker.allow()


def test_a_down_redis_is_tried_once_per_cooldown_not_once_per_call() -> None:
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    clock = FakeClock()
    link.breaker = CircuitBreaker(cooldown_s=1.0, clock=clock)
    answers = [link.run(lambda client: client.get("k"), "default") for _ in range(50)]
    assert answers == ["default"] * 50
    assert link.breaker.failures == 1 and link.breaker.skipped == 49
    assert link.status() == "degraded"
    link.close()


def test_the_link_recovers_when_redis_comes_back() -> None:
    with RedisServer() as server:
        link = RedisLink(server.url)
        clock = FakeClock()
        link.breaker = CircuitBreaker(cooldown_s=1.0, clock=clock)
        assert link.run(lambda client: client.set("k", "v"), None)
        server.stop()
        assert link.run(lambda client: client.get("k"), "default") == "default"
        assert link.status() == "degraded"
        server.start()
        assert link.status() == "degraded"  # still cooling down: not even tried
        clock.now += 5.0
        assert link.status() == "ok"
        assert link.breaker.healthy
        link.close()
