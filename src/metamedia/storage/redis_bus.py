"""Replica-to-replica messages over Redis pub/sub.

Pub/sub delivers at most once and only to whoever is connected, which is right
for what travels here: nudges ("flags changed", "catalog is at watermark N",
"user U changed") whose truth is in the database. A replica that missed some
(Redis was down, its connection dropped) gets a synthetic `resync` message when
it is connected again and re-reads everything it would have been told.

Publishing never blocks the caller: messages go to a bounded queue drained by a
sender thread, so a write path (even one holding the index lock) pays nothing
for Redis, and a down Redis drops nudges rather than stalling writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import redis

from metamedia.storage.redis_link import RedisLink, client_for

log = logging.getLogger(__name__)

RESYNC = "resync"
SEND_QUEUE = 10_000
POLL_S = 0.5
MAX_BACKOFF_S = 2.0


class RedisBus:
    """`MessageBus` on one pub/sub channel; each process has its own origin id."""

    def __init__(self, link: RedisLink, channel: str = "events") -> None:
        self.link = link
        self.channel = link.key("bus", channel)
        self.origin = uuid.uuid4().hex
        self._handlers: list[Callable[[dict[str, Any]], None]] = []
        self._outbox: queue.Queue[bytes | None] = queue.Queue(SEND_QUEUE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connected = threading.Event()
        self.received = 0
        self.dropped = 0

    def subscribe(self, handler: Callable[[dict[str, Any]], None]) -> None:
        """`handler(message)` for every message another process publishes (and for
        `{"kind": "resync"}` after a reconnect). Runs on the listener thread."""
        self._handlers.append(handler)

    def publish(self, message: dict[str, Any]) -> None:
        """Queue `message` (JSON-able) for every other process; never blocks."""
        data = json.dumps({**message, "origin": self.origin}).encode()
        try:
            self._outbox.put_nowait(data)
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        if self._threads:
            return
        for target, name in ((self._listen, "redis-bus-listen"), (self._send, "redis-bus-send")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._outbox.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    # -- threads ----------------------------------------------------------------------

    def _send(self) -> None:
        while not self._stop.is_set():
            data = self._outbox.get()
            if data is None:
                return
            self.link.run(partial(_publish, channel=self.channel, data=data), 0)

    def _listen(self) -> None:
        backoff = 0.1
        first = True
        while not self._stop.is_set():
            # A connection of its own, with a read timeout longer than the poll.
            client = client_for(self.link.url, max(self.link.timeout_s, POLL_S * 4))
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            try:
                pubsub.subscribe(self.channel)
                self.connected.set()
                if not first:
                    log.info("redis bus reconnected: resyncing")
                    self._dispatch({"kind": RESYNC})
                first = False
                backoff = 0.1
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is not None and message.get("type") == "message":
                        self._deliver(message["data"])
            except (redis.RedisError, OSError) as exc:
                if self.connected.is_set():
                    log.warning("redis bus disconnected: %s", type(exc).__name__)
                self.connected.clear()
                first = False  # whatever was published meanwhile is lost: resync then
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                try:
                    pubsub.close()
                    client.close()
                except Exception:  # closing a dead connection may fail; nothing to do
                    pass
        self.connected.clear()

    def _deliver(self, data: Any) -> None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            log.warning("ignoring a malformed bus message")
            return
        if not isinstance(message, dict) or message.get("origin") == self.origin:
            return  # our own: handled locally already
        self.received += 1
        self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:  # one failing handler must not stop the listener
                log.exception("bus handler failed for %s", message.get("kind"))


def _publish(client: redis.Redis, *, channel: str, data: bytes) -> int:
    return int(client.publish(channel, data))
