"""Rate-limit counters on Redis (the `limits` library's own Redis storage).

Counters in Redis are shared by every replica, so a client that spreads its
requests over replicas behind a load balancer still meets one limit. The
client fails fast (short timeouts, no retries): the caller falls back to
per-process counters while Redis is away.
"""

from __future__ import annotations

from typing import Any

from limits.storage import RedisStorage, Storage
from redis.backoff import NoBackoff
from redis.retry import Retry

TIMEOUT_S = 0.25


def redis_rate_storage(url: str, namespace: str = "mm") -> Storage:
    # No retries: the caller's breaker decides when Redis is worth another try.
    options: dict[str, Any] = {
        "socket_timeout": TIMEOUT_S,
        "socket_connect_timeout": TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    return RedisStorage(url, key_prefix=f"{namespace}:limits", wrap_exceptions=True, **options)
