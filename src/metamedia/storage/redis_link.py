"""One Redis connection pool per process, behind a circuit breaker.

Everything the shared tier does with Redis is optional speed or fan-out, never
the answer itself, so every call goes through `RedisLink.run` with a default:
short socket timeouts bound a first failure, the breaker makes the following
ones free, and the default (a cache miss, a skipped publish) is what a caller
gets while Redis is away. Outage errors (connection, timeout) open the
breaker; other Redis errors are logged and answered with the default too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from metamedia.storage.circuit import CircuitBreaker
from metamedia.storage.urls import redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")
OUTAGES: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)


def client_for(url: str, timeout_s: float, **options: object) -> redis.Redis:
    """A client that fails fast: no retries (the breaker decides when to try again)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        **options,
    )


class RedisLink:
    """The process's client, key namespace and breaker for one Redis URL."""

    def __init__(self, url: str, *, namespace: str = "mm", timeout_s: float = 0.25) -> None:
        self.url = url
        self.shown_url = redact_url(url)
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.client = client_for(url, timeout_s, max_connections=64)
        self.breaker = CircuitBreaker()

    def key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def run(self, op: Callable[[redis.Redis], T], default: T) -> T:
        """`op(client)`, or `default` when Redis is down, refusing or the breaker is open."""
        if not self.breaker.allow():
            return default
        try:
            result = op(self.client)
        except OUTAGES as exc:
            if self.breaker.healthy:
                log.warning("redis unavailable (%s): %s", self.shown_url, type(exc).__name__)
            self.breaker.failed(exc)
            return default
        except redis.RedisError as exc:
            log.warning("redis call failed (%s): %s", self.shown_url, exc)
            return default
        self.breaker.succeeded()
        return result

    def status(self) -> str:
        """'ok', or 'degraded' while the shared tier is skipped (readiness reports it)."""
        # A PING through the breaker: free while it is open, and the probe that
        # closes it again once Redis is back.
        ok = self.run(lambda client: bool(client.ping()), False)
        return "ok" if ok else "degraded"

    def close(self) -> None:
        self.client.close()
