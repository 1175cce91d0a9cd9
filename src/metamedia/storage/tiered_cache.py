"""An in-process cache (L1) in front of a shared `CacheStore` (L2, e.g. Redis).

Replicas behind a load balancer each keep their hot entries in memory and share
everything else: a search one replica ranked is a hit on the next. Correctness
comes from the keys, not from invalidation: every key carries the versions it
depends on (catalog watermark, user version), so an entry written before a
change is simply never asked for again. Values cross processes as bytes made
by a `Codec` (JSON or raw arrays), never pickle: Redis is shared, and nothing
read from it may run code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from metamedia.storage.memory_cache import CachePool, MemoryCache
from metamedia.storage.roles import CacheStore

V = TypeVar("V")


@dataclass(frozen=True)
class Codec(Generic[V]):
    """How one cache's values become bytes and back. `decode` raises on bad bytes."""

    encode: Callable[[V], bytes]
    decode: Callable[[bytes], V]


class TieredCache(MemoryCache[V]):
    """A `MemoryCache` whose misses ask the shared store and whose writes go to both.

    `shared_key` turns a local key into the shared store's string key (including
    tenant and scope prefixes, so an erasure can drop a user's entries by prefix).
    A shared entry that cannot be decoded (another version of the code wrote it)
    is a miss. The shared tier is best-effort: its failures are misses.
    """

    def __init__(
        self,
        name: str,
        ttl_s: float,
        pool: CachePool,
        shared: CacheStore,
        codec: Codec[V],
        shared_key: Callable[[Hashable], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, ttl_s, pool, clock)
        self.shared = shared
        self.codec = codec
        self.shared_key = shared_key
        self.shared_hits = 0
        self.shared_misses = 0

    def get(self, key: Hashable) -> V | None:
        local = super().get(key)
        if local is not None:
            return local
        raw = self.shared.get(f"{self.name}:{self.shared_key(key)}")
        if raw is None:
            self.shared_misses += 1
            return None
        try:
            value = self.codec.decode(raw)
        except (ValueError, TypeError, KeyError, IndexError):
            self.shared_misses += 1
            return None
        self.shared_hits += 1
        with self._lock:  # a hit after all: the hit-rate alert counts both tiers
            self.misses -= 1
            self.hits += 1
        super().set(key, value)
        return value

    def set(self, key: Hashable, value: V) -> None:
        super().set(key, value)
        if self.ttl_s > 0 and self._pool.budget_bytes > 0:  # a zero budget turns caching off
            shared_key = f"{self.name}:{self.shared_key(key)}"
            self.shared.set(shared_key, self.codec.encode(value), self.ttl_s)

    def drop_shared(self, prefix: str) -> int:
        """Drop shared entries whose key (after the cache name) starts with `prefix`."""
        return self.shared.drop_prefix(f"{self.name}:{prefix}")

    def clear(self) -> int:
        """Empty both tiers (`POST /v1/admin/caches/clear`): answers stay the same."""
        self.drop_shared("")
        return super().clear()
