"""The byte-budgeted cache pool: TTL, LRU across caches, high/low-water cleanup."""

from __future__ import annotations

import numpy as np
import pytest

from metamedia.storage.memory_cache import CachePool, estimate_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def vector(seed: int) -> np.ndarray:
    return np.full(256, seed, dtype=np.float32)  # 1 KiB of payload


def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    pool = CachePool(1 << 20)
    cache = pool.cache("q", ttl_s=60, clock=clock)
    cache.set("a", vector(1))
    clock.now += 59
    assert cache.get("a") is not None
    clock.now += 2
    assert cache.get("a") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.expirations, stats.bytes) == (1, 1, 1, 0)


def test_budget_is_shared_and_the_coldest_entries_across_caches_go_first() -> None:
    clock = Clock()
    entry = estimate_bytes(vector(0)) + estimate_bytes(("k", 0))
    pool = CachePool(budget_bytes=10 * entry, high_water=0.85, low_water=0.5)
    a = pool.cache("a", ttl_s=600, clock=clock)
    b = pool.cache("b", ttl_s=600, clock=clock)
    for i in range(4):
        clock.now += 1
        a.set(("k", i), vector(i))
    for i in range(4):
        clock.now += 1
        b.set(("k", i), vector(i))
    clock.now += 1
    assert a.get(("k", 0)) is not None  # touched: now the most recent in the pool
    assert pool.cleanups == 0 and pool.bytes == 8 * entry
    clock.now += 1
    b.set(("k", 9), vector(9))  # 9 entries > 85% of 10: clean down to 50%
    assert pool.cleanups == 1
    assert pool.bytes <= 5 * entry
    assert a.get(("k", 0)) is not None  # recently used survives
    assert a.get(("k", 1)) is None and b.get(("k", 0)) is None  # oldest went, in either cache
    assert b.get(("k", 9)) is not None
    assert a.stats().evictions + b.stats().evictions == 4


def test_an_entry_larger_than_the_pool_is_not_cached_and_drop_where_is_targeted() -> None:
    pool = CachePool(budget_bytes=4096)
    cache = pool.cache("feed", ttl_s=60)
    cache.set("huge", np.zeros(10_000, dtype=np.float32))
    assert len(cache) == 0 and pool.bytes == 0
    cache.set(("page", "t", "ana"), [1, 2])
    cache.set(("page", "t", "ben"), [3])
    assert cache.drop_where(lambda key: key[2] == "ana") == 1  # type: ignore[index]
    assert cache.get(("page", "t", "ben")) == [3]
    assert pool.bytes == cache.bytes > 0


def test_water_marks_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="water marks"):
        CachePool(1024, high_water=0.5, low_water=0.8)
