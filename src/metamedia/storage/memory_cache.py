"""In-process caches (the embedded default cache backend).

`TTLCache` is a small count-bounded cache for bookkeeping (verified keys);
`MemoryCache` instances share one `CachePool` byte budget and hold the
service's result, vector and embedding caches.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

V = TypeVar("V")
SIZE_SAMPLE = 8


class TTLCache(Generic[V]):
    """Bounded by entry count; entries expire `ttl_s` seconds after being set.

    A cache miss only costs speed: callers always know how to recompute.
    """

    def __init__(
        self, max_items: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_items = max_items
        self.ttl_s = ttl_s
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] < self._clock():
                if entry is not None:
                    del self._data[key]
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return entry[1]

    def set(self, key: Hashable, value: V) -> None:
        if self.max_items <= 0:
            return
        with self._lock:
            self._data[key] = (self._clock() + self.ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)
                self.evictions += 1

    def drop_where(self, predicate: Callable[[Hashable], bool]) -> int:
        """Remove every entry whose key matches (targeted invalidation)."""
        with self._lock:
            doomed = [key for key in self._data if predicate(key)]
            for key in doomed:
                del self._data[key]
        return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def estimate_bytes(value: object, _depth: int = 0) -> int:
    """Approximate memory held by a cached value.

    Exact accounting (tracemalloc, pympler) costs more than the cache saves; this
    walks containers a few levels deep and counts arrays and strings, which is
    where cached responses keep their bytes.
    """
    if isinstance(value, np.ndarray):
        return int(value.nbytes) + 112
    if isinstance(value, str | bytes):
        return len(value) + 49
    if value is None or isinstance(value, bool | int | float):
        return 28
    if _depth > 6:
        return 64
    if isinstance(value, dict):
        return 64 + sum(
            estimate_bytes(k, _depth + 1) + estimate_bytes(v, _depth + 1) for k, v in value.items()
        )
    if isinstance(value, list | tuple | set | frozenset):
        n = len(value)
        if n > SIZE_SAMPLE:
            # Cached lists hold rows of one shape: a sample prices the rest.
            head = list(value)[:SIZE_SAMPLE] if not isinstance(value, list) else value
            sampled = sum(estimate_bytes(v, _depth + 1) for v in head[:SIZE_SAMPLE])
            return 56 + 8 * n + sampled * n // SIZE_SAMPLE
        return 56 + 8 * n + sum(estimate_bytes(v, _depth + 1) for v in value)
    fields = getattr(value, "__dict__", None)
    if fields is not None:
        return 64 + estimate_bytes(fields, _depth + 1)
    return 64


@dataclass(frozen=True)
class CacheStats:
    name: str
    entries: int
    bytes: int
    hits: int
    misses: int
    evictions: int
    expirations: int
    ttl_s: float


class MemoryCache(Generic[V]):
    """TTL + LRU cache whose entries count against a shared byte budget (a `CachePool`).

    Values are shared, not copied: callers must treat what they get as read-only.
    """

    def __init__(
        self,
        name: str,
        ttl_s: float,
        pool: CachePool,
        clock: Callable[[], float] = time.monotonic,
        sizer: Callable[[object], int] = estimate_bytes,
    ) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self._pool = pool
        self._clock = clock
        self._sizer = sizer
        self._data: OrderedDict[Hashable, tuple[float, int, float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0

    def get(self, key: Hashable) -> V | None:
        now = self._clock()
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                self.misses += 1
                return None
            expires, size, _, value = entry
            if expires < now:
                del self._data[key]
                self.bytes -= size
                self.expirations += 1
                self.misses += 1
                return None
            self._data[key] = (expires, size, now, value)
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def set(self, key: Hashable, value: V) -> None:
        if self.ttl_s <= 0 or self._pool.budget_bytes <= 0:
            return
        size = self._sizer(value) + self._sizer(key)
        if size > self._pool.budget_bytes * self._pool.low_water:
            return  # one entry may not flush the whole pool
        now = self._clock()
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._data[key] = (now + self.ttl_s, size, now, value)
            self.bytes += size
        self._pool.after_write()

    def delete(self, key: Hashable) -> bool:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
        return old is not None

    def drop_where(self, predicate: Callable[[Hashable], bool]) -> int:
        """Remove every entry whose key matches (targeted invalidation)."""
        with self._lock:
            doomed = [key for key in self._data if predicate(key)]
            for key in doomed:
                self.bytes -= self._data.pop(key)[1]
        return len(doomed)

    def clear(self) -> int:
        with self._lock:
            dropped = len(self._data)
            self._data.clear()
            self.bytes = 0
        return dropped

    def oldest_access(self) -> float | None:
        with self._lock:
            if not self._data:
                return None
            return next(iter(self._data.values()))[2]

    def evict_oldest(self) -> int:
        """Drop the least recently used entry; returns the bytes freed."""
        with self._lock:
            if not self._data:
                return 0
            _, (_, size, _, _) = self._data.popitem(last=False)
            self.bytes -= size
            self.evictions += 1
            return size

    def stats(self) -> CacheStats:
        return CacheStats(
            self.name,
            len(self._data),
            self.bytes,
            self.hits,
            self.misses,
            self.evictions,
            self.expirations,
            self.ttl_s,
        )

    def __len__(self) -> int:
        return len(self._data)


class CachePool:
    """One byte budget shared by named caches, with high/low-water cleanup.

    When the caches together pass `high_water` of the budget, the least recently
    used entries across all caches go until they are under `low_water`: a burst
    of large feed pages can push out cold query vectors, and no cache can hold
    memory the others need.
    """

    def __init__(self, budget_bytes: int, high_water: float = 0.9, low_water: float = 0.7) -> None:
        if not 0 < low_water <= high_water <= 1:
            raise ValueError(
                f"cache water marks need 0 < low ({low_water}) <= high ({high_water}) <= 1"
            )
        self.budget_bytes = budget_bytes
        self.high_water = high_water
        self.low_water = low_water
        self.caches: dict[str, MemoryCache[Any]] = {}
        self.cleanups = 0
        self._cleanup_lock = threading.Lock()

    def cache(
        self, name: str, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> MemoryCache[Any]:
        if name in self.caches:
            raise ValueError(f"cache {name!r} already exists")
        created: MemoryCache[Any] = MemoryCache(name, ttl_s, self, clock)
        self.caches[name] = created
        return created

    def add(self, cache: MemoryCache[Any]) -> None:
        """Register a cache made elsewhere (a tiered one) under this budget."""
        if cache.name in self.caches:
            raise ValueError(f"cache {cache.name!r} already exists")
        self.caches[cache.name] = cache

    @property
    def bytes(self) -> int:
        return sum(cache.bytes for cache in self.caches.values())

    def after_write(self) -> None:
        if self.bytes > self.high_water * self.budget_bytes:
            self.cleanup(self.low_water)

    def cleanup(self, to_fraction: float) -> int:
        """Evict globally least recently used entries until under `to_fraction` of the
        budget (0 empties every cache); returns the bytes freed."""
        target = to_fraction * self.budget_bytes
        freed = 0
        with self._cleanup_lock:
            self.cleanups += 1
            while self.bytes > target:
                candidates = [
                    (stamp, cache)
                    for cache in self.caches.values()
                    if (stamp := cache.oldest_access()) is not None
                ]
                if not candidates:
                    break
                _, coldest = min(candidates, key=lambda pair: pair[0])
                freed += coldest.evict_oldest()
        return freed

    def stats(self) -> list[CacheStats]:
        return [cache.stats() for cache in self.caches.values()]

    def totals(self) -> tuple[int, int]:
        """(hits, misses) summed over every cache: the hit-rate alert's input."""
        stats = self.stats()
        return sum(s.hits for s in stats), sum(s.misses for s in stats)
