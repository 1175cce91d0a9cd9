"""User events through the shared stream: counters and feed refreshes, once per event.

Without Redis, a user's change re-ranks their first feed page on this process's
refresher, as before. With Redis, each accepted batch of events (already in the
database) is appended to a stream, and one consumer of the group, on whichever
replica reads it, counts the events into the shared trending and popularity
counters and queues the user's feed refresh there (when a serving process
sent it: bulk imports from the CLI count, but rank no feeds). So the work spreads over
replicas, and the refreshed page lands in the shared cache for all of them.

Delivery is at least once: an entry is acknowledged only after it was handled;
a consumer killed mid-batch leaves its entries pending and another claims them
after `claim_idle_ms`. Handling twice is harmless: counters count an event id
once, and a second refresh of a feed just recomputes the same page. While Redis
is down the append fails and the refresh happens here at once, as without Redis.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from typing import Any

from metamedia.services.refresh import FeedRefresher
from metamedia.services.users import UserChange
from metamedia.storage.roles import ActivityCounters, EventStream

log = logging.getLogger(__name__)

BATCH = 100
BLOCK_MS = 1000
CLAIM_IDLE_MS = 30_000
MAX_BACKOFF_S = 5.0


def event_id(tenant: str, user: str, item_pk: int, kind: str, ts: float) -> str:
    """The same id on every delivery and every replica: what makes counting idempotent."""
    text = json.dumps([tenant, user, item_pk, kind, repr(float(ts))])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class ActivityPipeline:
    def __init__(
        self,
        stream: EventStream,
        counters: ActivityCounters,
        refresher: FeedRefresher,
        *,
        consumer: str | None = None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        batch: int = BATCH,
    ) -> None:
        self.stream = stream
        self.counters = counters
        self.refresher = refresher
        self.consumer = consumer or f"replica-{uuid.uuid4().hex[:12]}"
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.appended = 0
        self.handled = 0
        self.counted = 0
        self.local_refreshes = 0

    # -- producer --------------------------------------------------------------------

    def user_changed(self, change: UserChange) -> None:
        """Hook for `UserService.on_change` (events already stored)."""
        events = [
            {"pk": e.media_pk, "type": e.type, "ts": e.ts, "item": e.item} for e in change.events
        ]
        fields = {
            "tenant": change.tenant,
            "user": change.user,
            "events": json.dumps(events),
            # Only a serving process asks for refreshes: a CLI import ranks no feeds.
            "refresh": "1" if self.refresher.running else "0",
        }
        if self.stream.append(fields) is None:
            # Redis is away: do what a process without Redis does (counters catch up
            # never; the database keeps every event, and trending reads it).
            self.local_refreshes += 1
            self.refresher.user_changed(change)
            return
        self.appended += 1

    # -- consumer --------------------------------------------------------------------

    def handle(self, fields: dict[str, str]) -> None:
        """One entry: count its events (idempotently), then queue the feed refresh."""
        tenant, user = fields["tenant"], fields["user"]
        for event in json.loads(fields.get("events", "[]")):
            pk, kind, ts = int(event["pk"]), str(event["type"]), float(event["ts"])
            if self.counters.record(
                event_id(tenant, user, pk, kind, ts), tenant, user, pk, kind, ts
            ):
                self.counted += 1
        if fields.get("refresh", "1") == "1":
            self.refresher.user_changed(UserChange(tenant, user, ()))

    def run_once(self, block_ms: int = BLOCK_MS) -> int:
        """Read one batch (claimed leftovers first), handle and acknowledge it; returns
        how many entries were handled. An entry whose handling fails stays pending."""
        entries = self.stream.read(self.consumer, self.batch, block_ms, self.claim_idle_ms)
        done: list[str] = []
        for entry_id, fields in entries:
            try:
                self.handle(fields)
            except (KeyError, TypeError, ValueError):
                log.warning("dropping malformed user-event entry %s", entry_id)
            done.append(entry_id)
        self.stream.ack(done)
        self.handled += len(done)
        return len(done)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="user-events", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self.run_once()
                backoff = 0.1
            except Exception as exc:  # Redis away: wait and retry; pending entries wait too
                log.warning("user-event consumer: %s", type(exc).__name__)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def stats(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "appended": self.appended,
            "handled": self.handled,
            "counted": self.counted,
            "local_refreshes": self.local_refreshes,
        }
