"""The service's caches, their TTLs (seeds: query 5 min, embeddings 1 h,
recommendations 3 min, preference vectors 30 min) and the memory governor.

Every cache is a plain speed-up: a miss recomputes, so clearing any of them at
any time (cleanup, `POST /v1/admin/caches/clear`) never changes an answer.
Invalidation is by versioned keys where another process could have written
(catalog version, user version) and by targeted drops for this process's own
writes.

With a shared store (Redis, `METAMEDIA_REDIS_URL`), the result, vector and
embedding caches become two tiers: this process's memory in front (L1), the
shared store behind it (L2), so replicas reuse each other's work. Versioned
keys keep every replica's answers current; `cache_codecs` says how keys and
values cross processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any

import psutil
from pydantic import BaseModel

from metamedia.config import Settings
from metamedia.domain import SearchResponse
from metamedia.engine.vectors import FloatArray
from metamedia.services import cache_codecs as codecs
from metamedia.storage.memory_cache import CachePool, CacheStats, MemoryCache
from metamedia.storage.roles import CacheStore
from metamedia.storage.tiered_cache import Codec, TieredCache, V

MEMORY_CHECK_EVERY_S = 1.0
FEED_CURSOR_TTL_S = 600.0


class Caches:
    def __init__(
        self,
        settings: Settings,
        shared: CacheStore | None = None,
        feed_page_model: type[BaseModel] | None = None,
    ) -> None:
        """`shared` adds the L2 tier; `feed_page_model` is the feed page type (it lives
        with the feed service, above this module) so feed pages can be decoded."""
        self.pool = CachePool(
            int(settings.cache_budget_mb * 1024 * 1024),
            settings.cache_high_water,
            settings.cache_low_water,
        )
        self.shared = shared
        self.query_embedding: MemoryCache[FloatArray] = self._cache(
            "query_embedding",
            settings.cache_ttl_query_embedding_s,
            codecs.ARRAY,
            codecs.content_key,
        )
        self.search: MemoryCache[Any] = self._cache(
            "search",
            settings.cache_ttl_search_s,
            codecs.model_codec(SearchResponse),
            codecs.search_key,
        )
        self.feed: MemoryCache[Any] = self._cache(
            "feed",
            settings.cache_ttl_feed_s,
            codecs.model_codec(feed_page_model) if feed_page_model else None,
            codecs.feed_page_key,
        )
        # Ranked lists behind feed cursors: they must outlive the first page they serve
        # (shared, a cursor from one replica pages on another).
        self.feed_snapshot: MemoryCache[Any] = self._cache(
            "feed_snapshot",
            max(FEED_CURSOR_TTL_S, settings.cache_ttl_feed_s),
            codecs.RANKED,
            codecs.feed_snapshot_key,
        )
        self.preference_vector: MemoryCache[Any] = self._cache(
            "preference_vector",
            settings.cache_ttl_preference_vector_s,
            codecs.OPTIONAL_VECTOR,
            codecs.preference_key,
        )
        self.item_embedding: MemoryCache[FloatArray] = self._cache(
            "item_embedding",
            settings.cache_ttl_item_embedding_s,
            codecs.ARRAY,
            codecs.content_key,
        )
        self.memory_limit = int(settings.memory_limit_mb * 1024 * 1024)
        self.memory_cleanups = 0
        self._next_memory_check = 0.0
        self._process = psutil.Process()

    def _cache(
        self,
        name: str,
        ttl_s: float,
        codec: Codec[V] | None,
        shared_key: Callable[[Hashable], str],
    ) -> MemoryCache[V]:
        """In-process only, or tiered when there is a shared store and a codec."""
        if self.shared is None or codec is None:
            return self.pool.cache(name, ttl_s)
        tiered = TieredCache(name, ttl_s, self.pool, self.shared, codec, shared_key)
        self.pool.add(tiered)
        return tiered

    def forget_user(self, tenant: str, user: str) -> None:
        """Erasure: drop the user's shared feed pages and snapshots (in-process ones
        go through the feed service's own hook)."""
        prefix = codecs.user_prefix(tenant, user)
        for cache in (self.feed, self.feed_snapshot):
            if isinstance(cache, TieredCache):
                cache.drop_shared(prefix)

    def forget_preferences(self, user_pk: int) -> None:
        """Erasure: drop the user's shared preference vectors (keyed by primary key)."""
        if isinstance(self.preference_vector, TieredCache):
            self.preference_vector.drop_shared(f"pk{int(user_pk)}:")

    def drop_local(self) -> int:
        """Empty the in-process tier only (another replica changed something this one
        may hold; the shared tier is keyed by version and stays)."""
        return sum(MemoryCache.clear(cache) for cache in self.pool.caches.values())

    def stats(self) -> list[CacheStats]:
        return self.pool.stats()

    def shared_counts(self) -> dict[str, tuple[int, int]]:
        """(hits, misses) in the shared tier per tiered cache: the in-process tier's
        misses that Redis answered or not. `stats()` counts a shared hit as a hit, so
        this is what tells an operator (or the service bench) how much L2 does."""
        return {
            name: (cache.shared_hits, cache.shared_misses)
            for name, cache in self.pool.caches.items()
            if isinstance(cache, TieredCache)
        }

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
