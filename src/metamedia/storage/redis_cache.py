"""The cache role on Redis: the shared tier behind every process's in-memory caches.

Values are bytes the caller encoded (JSON or raw numpy arrays, never pickle),
keys are strings the caller built with the versions they depend on. An outage
is a miss on read and a no-op on write (`RedisLink`), so nothing that only
caches can fail a request.
"""

from __future__ import annotations

import redis

from metamedia.storage.redis_link import RedisLink

SCAN_BATCH = 500


class RedisCache:
    """`CacheStore` on one Redis; every key lives under `<namespace>:c:`."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.prefix = link.key("c", "")

    def get(self, key: str) -> bytes | None:
        full = self.prefix + key
        value = self.link.run(lambda client: client.get(full), None)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        full = self.prefix + key
        self.link.run(lambda client: client.set(full, value, px=max(1, int(ttl_s * 1000))), None)

    def delete(self, key: str) -> bool:
        full = self.prefix + key
        return bool(self.link.run(lambda client: client.delete(full), 0))

    def drop_prefix(self, prefix: str) -> int:
        """Delete every key starting with `prefix` (SCAN, not KEYS: never blocks Redis)."""
        pattern = _glob_escape(self.prefix + prefix) + "*"

        def drop(client: redis.Redis) -> int:
            dropped = 0
            batch: list[bytes] = []
            for found in client.scan_iter(match=pattern, count=SCAN_BATCH):
                batch.append(found)
                if len(batch) >= SCAN_BATCH:
                    dropped += int(client.unlink(*batch))
                    batch.clear()
            if batch:
                dropped += int(client.unlink(*batch))
            return dropped

        return self.link.run(drop, 0)

    def version(self, name: str) -> int:
        full = self.link.key("v", name)
        value = self.link.run(lambda client: client.get(full), None)
        return int(value) if isinstance(value, bytes | str) else 0

    def bump(self, name: str) -> int:
        full = self.link.key("v", name)
        return int(self.link.run(lambda client: client.incr(full), 0))


def _glob_escape(text: str) -> str:
    """`text` matched literally by a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
