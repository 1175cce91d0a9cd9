"""Sliding-window rate limits that are shared by replicas when Redis is there.

Every limiter of the API (requests per key or IP, events per user, GraphQL cost
per caller) counts through one of these. With Redis configured the counters
live there, so two replicas enforce one limit; when Redis fails, a circuit
breaker switches to this process's own counters (each replica then enforces
the limit on its own: looser, never off) and switches back when a probe finds
Redis again. Without Redis it is exactly the in-process limiter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from limits import RateLimitItem, WindowStats, storage, strategies

from metamedia.storage.circuit import CircuitBreaker
from metamedia.storage.open import open_rate_storage

log = logging.getLogger(__name__)


class FailoverLimiter:
    """The `limits` sliding-window-counter API, over shared counters with a local fallback."""

    def __init__(self, shared_storage: Callable[[], storage.Storage] | None = None) -> None:
        self.local = strategies.SlidingWindowCounterRateLimiter(storage.MemoryStorage())
        self._make_shared = shared_storage
        self._shared: strategies.SlidingWindowCounterRateLimiter | None = None
        self.breaker = CircuitBreaker()
        self.fallbacks = 0

    @property
    def shared_configured(self) -> bool:
        return self._make_shared is not None

    def status(self) -> str:
        """'local' (no Redis), 'shared', or 'local-fallback' while Redis is failing."""
        if self._make_shared is None:
            return "local"
        return "shared" if self.breaker.healthy else "local-fallback"

    def _shared_limiter(self) -> strategies.SlidingWindowCounterRateLimiter | None:
        if self._make_shared is None or not self.breaker.allow():
            return None
        if self._shared is None:
            try:
                self._shared = strategies.SlidingWindowCounterRateLimiter(self._make_shared())
            except Exception as exc:  # cannot even build the client: count locally
                self._failed(exc)
                return None
        return self._shared

    def _failed(self, exc: Exception) -> None:
        if self.breaker.healthy:
            log.warning("shared rate limits unavailable, counting per process: %s", exc)
        self.breaker.failed(exc)
        self.fallbacks += 1

    def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        shared = self._shared_limiter()
        if shared is not None:
            try:
                allowed = shared.hit(item, *identifiers, cost=cost)
            except Exception as exc:  # any storage failure: count here instead
                self._failed(exc)
            else:
                self.breaker.succeeded()
                return allowed
        return self.local.hit(item, *identifiers, cost=cost)

    def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        shared = self._shared_limiter()
        if shared is not None:
            try:
                stats = shared.get_window_stats(item, *identifiers)
            except Exception as exc:
                self._failed(exc)
            else:
                self.breaker.succeeded()
                return stats
        return self.local.get_window_stats(item, *identifiers)


def limiter_for(redis_url: str | None, database_url: str = "") -> FailoverLimiter:
    """The limiter a deployment gets: shared through Redis when it has one (counters
    namespaced by the deployment's database, like everything else in Redis)."""
    if not redis_url:
        return FailoverLimiter()
    url = redis_url
    return FailoverLimiter(lambda: open_rate_storage(url, database_url))
