"""The service's caches, their TTLs (seeds: query 5 min, embeddings 1 h,
recommendations 3 min, preference vectors 30 min) and the memory governor.

Every cache is a plain speed-up: a miss recomputes, so clearing any of them at
any time (cleanup, `POST /v1/admin/caches/clear`) never changes an answer.
Invalidation is by versioned keys where another process could have written
(catalog version, user version) and by targeted drops for this process's own
writes.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from metamedia.config import Settings
from metamedia.engine.vectors import FloatArray
from metamedia.storage.memory_cache import CachePool, CacheStats, MemoryCache

MEMORY_CHECK_EVERY_S = 1.0
FEED_CURSOR_TTL_S = 600.0


class Caches:
    def __init__(self, settings: Settings) -> None:
        self.pool = CachePool(
            int(settings.cache_budget_mb * 1024 * 1024),
            settings.cache_high_water,
            settings.cache_low_water,
        )
        pool = self.pool
        self.query_embedding: MemoryCache[FloatArray] = pool.cache(
            "query_embedding", settings.cache_ttl_query_embedding_s
        )
        self.search: MemoryCache[Any] = pool.cache("search", settings.cache_ttl_search_s)
        self.feed: MemoryCache[Any] = pool.cache("feed", settings.cache_ttl_feed_s)
        # Ranked lists behind feed cursors: they must outlive the first page they serve.
        self.feed_snapshot: MemoryCache[Any] = pool.cache(
            "feed_snapshot", max(FEED_CURSOR_TTL_S, settings.cache_ttl_feed_s)
        )
        self.preference_vector: MemoryCache[Any] = pool.cache(
            "preference_vector", settings.cache_ttl_preference_vector_s
        )
        self.item_embedding: MemoryCache[FloatArray] = pool.cache(
            "item_embedding", settings.cache_ttl_item_embedding_s
        )
        self.memory_limit = int(settings.memory_limit_mb * 1024 * 1024)
        self.memory_cleanups = 0
        self._next_memory_check = 0.0
        self._process = psutil.Process()

    def stats(self) -> list[CacheStats]:
        return self.pool.stats()

    def totals(self) -> tuple[int, int]:
        return self.pool.totals()

    def clear(self) -> int:
        return sum(cache.clear() for cache in self.pool.caches.values())

    def govern_memory(self, now: float | None = None) -> bool:
        """Shed cache memory when the process passes its memory high-water mark.

        Checked at most once a second from the request path; returns True when
        it cleaned up. The index and model are not caches and are never shed.
        """
        now = time.monotonic() if now is None else now
        if now < self._next_memory_check or self.memory_limit <= 0:
            return False
        self._next_memory_check = now + MEMORY_CHECK_EVERY_S
        rss = self._process.memory_info().rss
        if rss <= self.pool.high_water * self.memory_limit:
            return False
        self.pool.cleanup(0.0 if rss > self.memory_limit else self.pool.low_water / 2)
        self.memory_cleanups += 1
        return True
