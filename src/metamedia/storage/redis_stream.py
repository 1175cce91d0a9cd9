"""User events on a Redis Stream, and the activity counters its consumers keep.

The stream carries each batch of accepted interactions (already stored in the
database, the source of truth) to a consumer group: whichever replica reads an
entry updates the shared counters and re-ranks that user's feed. Delivery is at
least once: an entry stays pending until acknowledged, and entries a consumer
left pending (it was killed mid-batch) are claimed by another after
`claim_idle_ms` (XAUTOCLAIM). Counters are idempotent per event id, so an entry
processed twice counts once.

Counters, per tenant:
- trending: for each item, a sorted set of users scored by their latest
  trending-type event, so "distinct users since T" is one ZCOUNT (the same
  definition as `UserStore.trending`);
- popularity: events per item (a hash).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import redis

from metamedia.storage.redis_link import RedisLink, client_for
from metamedia.storage.urls import redact_url

log = logging.getLogger(__name__)

STREAM_MAXLEN = 100_000
SEEN_TTL_S = 7 * 86_400  # an event id is remembered as long as a redelivery is plausible
TRENDING_TTL_S = 8 * 86_400  # longer than the trending window (a week)
TRENDING_TYPES = frozenset({"view", "like", "complete", "rate", "favorite", "share"})

_RECORD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
if ARGV[5] == '1' then
  local old = redis.call('ZSCORE', KEYS[2], ARGV[2])
  if (not old) or tonumber(old) < tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
  end
  local last = redis.call('ZSCORE', KEYS[3], ARGV[4])
  if (not last) or tonumber(last) < tonumber(ARGV[3]) then
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
  end
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  redis.call('EXPIRE', KEYS[3], ARGV[6])
end
return 1
"""

_TRENDING = """
local items = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local counted = {}
for _, pk in ipairs(items) do
  local n = redis.call('ZCOUNT', ARGV[3] .. pk, ARGV[1], '+inf')
  if n > 0 then table.insert(counted, {tonumber(pk), n}) end
end
table.sort(counted, function(a, b)
  if a[2] ~= b[2] then return a[2] > b[2] end
  return a[1] < b[1]
end)
local result = {}
for i = 1, math.min(#counted, tonumber(ARGV[2])) do
  table.insert(result, counted[i][1])
  table.insert(result, counted[i][2])
end
return result
"""


class RedisEventStream:
    """`EventStream`: one stream, one consumer group, named consumers."""

    def __init__(
        self, link: RedisLink, stream: str = "user-events", group: str = "activity"
    ) -> None:
        self.link = link
        self.stream = link.key("stream", stream)
        self.group = group
        self._reader: redis.Redis | None = None
        self._group_ready = False

    def append(self, fields: dict[str, str]) -> str | None:
        """Add one entry; its id, or None when Redis is unavailable (nothing queued)."""
        stream = self.stream

        def add(client: redis.Redis) -> str:
            entry = client.xadd(stream, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
            return entry.decode() if isinstance(entry, bytes) else str(entry)

        return self.link.run(add, None)

    def _client(self, block_ms: int) -> redis.Redis:
        if self._reader is None:
            # Blocking reads need a read timeout longer than the block.
            self._reader = client_for(self.link.url, block_ms / 1000 + 2.0)
        return self._reader

    def ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self._client(0).xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    def read(
        self, consumer: str, count: int, block_ms: int, claim_idle_ms: int
    ) -> list[tuple[str, dict[str, str]]]:
        """Entries for `consumer`: first those another consumer left pending for
        `claim_idle_ms`, else new ones (waiting up to `block_ms`). Raises on outage."""
        self.ensure_group()
        client = self._client(block_ms)
        claimed = client.xautoclaim(
            self.stream, self.group, consumer, min_idle_time=claim_idle_ms, count=count
        )
        entries = _entries(claimed[1] if isinstance(claimed, list | tuple) else [])
        if entries:
            return entries
        answer: Any = client.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        if isinstance(answer, dict):  # RESP3 shape: {stream: [entries]}
            return [e for entries in answer.values() for e in _entries(entries)]
        return _entries(answer[0][1]) if answer else []

    def ack(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        return int(self._client(0).xack(self.stream, self.group, *ids))

    def pending(self) -> int:
        """Entries delivered and not yet acknowledged (all consumers)."""
        self.ensure_group()
        summary: Any = self._client(0).xpending(self.stream, self.group)
        return int(summary["pending"]) if isinstance(summary, dict) else 0

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def __repr__(self) -> str:
        return f"RedisEventStream({redact_url(self.link.url)}, {self.stream})"


def _entries(raw: Any) -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    for entry_id, fields in raw or []:
        if fields is None:  # deleted (trimmed) while pending
            continue
        out.append((_text(entry_id), {_text(k): _text(v) for k, v in fields.items()}))
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisActivityCounters:
    """`ActivityCounters`: idempotent per event id, shared by every replica."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._record = link.client.register_script(_RECORD)
        self._trending = link.client.register_script(_TRENDING)

    def _keys(self, tenant: str) -> tuple[str, str, str]:
        t = json.dumps(tenant)  # quoted: no tenant name can end inside another's keys
        return (
            self.link.key("trend", t, "users", ""),
            self.link.key("trend", t, "items"),
            self.link.key("pop", t),
        )

    def record(
        self, event_id: str, tenant: str, user: str, item_pk: int, kind: str, ts: float
    ) -> bool:
        """Count one event unless its id was counted before; raises on outage (the
        entry then stays pending and is retried)."""
        users_prefix, items, popularity = self._keys(tenant)
        counted = self._record(
            keys=[self.link.key("seen", event_id), users_prefix + str(item_pk), items, popularity],
            args=[
                SEEN_TTL_S,
                user,
                repr(float(ts)),
                item_pk,
                "1" if kind in TRENDING_TYPES else "0",
                TRENDING_TTL_S,
            ],
        )
        return bool(counted)

    def trending(self, tenant: str, since: float, limit: int) -> list[tuple[int, int]]:
        """(item pk, distinct users since `since`), most first, ties by lower pk."""
        users_prefix, items, _ = self._keys(tenant)
        flat = self._trending(keys=[items], args=[repr(float(since)), limit, users_prefix])
        return [(int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def popularity(self, tenant: str, item_pks: Sequence[int]) -> dict[int, int]:
        """Events counted per item (items never seen are absent)."""
        if not item_pks:
            return {}
        _, _, key = self._keys(tenant)
        values = self.link.client.hmget(key, [str(pk) for pk in item_pks])
        return {pk: int(v) for pk, v in zip(item_pks, values, strict=True) if v is not None}
