"""Live updates for WebSocket clients: feed refreshes and saved-search matches.

Writes happen on worker threads (REST, GraphQL, ingest) and, through the outbox,
in other processes; both reach the hub as change hooks that only schedule work
on the event loop. The hub computes each refreshed feed or saved-search result
once, off the loop, and drops it into every interested session's mailbox.

A mailbox is bounded and never blocks the producer: a newer feed replaces a
pending one (only the latest feed matters), and when other messages pile up the
oldest are dropped and counted, so one slow client costs only itself.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metamedia.domain import SearchRequest, SearchResponse
from metamedia.errors import StaleMaskError
from metamedia.services.discovery import DiscoveryService
from metamedia.services.indexing import CatalogChange
from metamedia.services.users import UserChange
from metamedia.storage.roles import CatalogStore

log = logging.getLogger(__name__)

SAVED_SEARCH_DEPTH = 20  # a new item "matches" when it ranks in the saved search's top 20


class Mailbox:
    """Bounded outgoing queue of one session; feed messages coalesce per user."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[tuple[str | None, dict[str, Any]]] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0

    def put(self, message: dict[str, Any], coalesce_key: str | None = None) -> None:
        if coalesce_key is not None:
            for i, (key, _) in enumerate(self._items):
                if key == coalesce_key:
                    self._items[i] = (key, message)
                    self._ready.set()
                    return
        if len(self._items) >= self.capacity:
            self._items.popleft()
            self.dropped += 1
        self._items.append((coalesce_key, message))
        self._ready.set()

    async def get(self) -> dict[str, Any]:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        message = self._items.popleft()[1]
        if self.dropped:
            # Tell the client it missed something, once, before the next message.
            self._items.appendleft((None, message))
            message = {"type": "lag", "dropped": self.dropped}
            self.dropped = 0
        return message

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class Session:
    """One client's subscriptions; outlives a dropped connection for `resume_s`."""

    id: str
    tenant: str
    principal: str
    bound_user: str | None  # a user token may only watch its own user
    mailbox: Mailbox
    feed_user: str | None = None
    feed_limit: int = 10
    searches: dict[str, SearchRequest] = field(default_factory=dict)
    connected: bool = True
    detached_at: float = 0.0


class LiveHub:
    def __init__(
        self,
        discovery: DiscoveryService,
        media: CatalogStore,
        mailbox_size: int = 64,
        resume_s: float = 60.0,
    ) -> None:
        self.discovery = discovery
        self.media = media
        self.mailbox_size = mailbox_size
        self.resume_s = resume_s
        self.sessions: dict[str, Session] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- wiring -----------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the server's event loop (called at start-up)."""
        self._loop = loop

    def user_changed(self, change: UserChange) -> None:
        """Hook for `UserService.on_change`: any thread."""
        self._schedule(self._refresh_feed, change.tenant, change.user)

    def catalog_changed(self, change: CatalogChange) -> None:
        """Hook for `IndexManager.on_change`: runs under the index lock, so only schedules."""
        if change.upserted:
            self._schedule(self._match_searches, change.upserted)

    def _schedule(self, handler: Callable[..., Any], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not self.sessions:
            return

        def start() -> None:
            task = loop.create_task(handler(*args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        loop.call_soon_threadsafe(start)

    # -- sessions -----------------------------------------------------------------

    def open(self, tenant: str, principal: str, bound_user: str | None) -> Session:
        self._expire()
        session = Session(
            id=secrets.token_urlsafe(12),
            tenant=tenant,
            principal=principal,
            bound_user=bound_user,
            mailbox=Mailbox(self.mailbox_size),
        )
        self.sessions[session.id] = session
        return session

    def resume(self, session_id: str, principal: str) -> Session | None:
        """The detached session with this id, if the same principal owns it."""
        self._expire()
        session = self.sessions.get(session_id)
        if session is None or session.connected or session.principal != principal:
            return None
        session.connected = True
        return session

    def detach(self, session: Session) -> None:
        session.connected = False
        session.detached_at = time.monotonic()

    def close(self, session: Session) -> None:
        self.sessions.pop(session.id, None)

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.resume_s
        for sid in [
            s.id for s in self.sessions.values() if not s.connected and s.detached_at < cutoff
        ]:
            del self.sessions[sid]

    # -- pushes -------------------------------------------------------------------

    async def feed_message(self, tenant: str, user: str, limit: int) -> dict[str, Any]:
        page = await asyncio.to_thread(self.discovery.feed, tenant, user, limit)
        return {
            "type": "feed",
            "user": user,
            "items": [item.model_dump(mode="json") for item in page.items],
        }

    async def _refresh_feed(self, tenant: str, user: str) -> None:
        watchers = [s for s in self.sessions.values() if s.tenant == tenant and s.feed_user == user]
        by_limit: dict[int, list[Session]] = {}
        for session in watchers:
            by_limit.setdefault(session.feed_limit, []).append(session)
        for limit, sessions in by_limit.items():
            try:
                message = await self.feed_message(tenant, user, limit)
            except Exception:  # a failed refresh must not kill the hub
                log.exception("feed refresh failed")
                continue
            for session in sessions:
                session.mailbox.put(message, coalesce_key=f"feed:{user}")

    async def _match_searches(self, upserted: tuple[int, ...]) -> None:
        fresh = set(upserted)
        groups: dict[str, list[tuple[Session, str]]] = {}
        requests: dict[str, SearchRequest] = {}
        for session in self.sessions.values():
            for sub_id, request in session.searches.items():
                key = request.model_dump_json()
                groups.setdefault(key, []).append((session, sub_id))
                requests[key] = request
        if not groups:
            return
        new_ids = await asyncio.to_thread(self._ids_of, fresh)
        for key, members in groups.items():
            request = requests[key]
            try:
                response = await self._search(request)
            except Exception:
                log.exception("saved search failed")
                continue
            matches = [
                hit.model_dump(mode="json", include={"id", "title", "year", "type", "score"})
                for hit in response.results
                if hit.id in new_ids.get(request.tenant, set())
            ]
            if not matches:
                continue
            for session, sub_id in members:
                session.mailbox.put({"type": "search_match", "id": sub_id, "items": matches})

    async def _search(self, request: SearchRequest) -> SearchResponse:
        """The saved search, retried once when a rebuild raced it (writes go on)."""
        try:
            return await asyncio.to_thread(self.discovery.search, request)
        except StaleMaskError:
            return await asyncio.to_thread(self.discovery.search, request)

    def _ids_of(self, pks: set[int]) -> dict[str, set[str]]:
        by_tenant: dict[str, set[str]] = {}
        for item in self.media.get_many(sorted(pks)).values():
            by_tenant.setdefault(item.tenant, set()).add(item.id)
        return by_tenant


def saved_search(raw: dict[str, Any], tenant: str, user: str | None) -> SearchRequest:
    """A subscription's search: the same body as POST /v1/search, top results only."""
    body = {k: v for k, v in raw.items() if k not in ("type", "id")}
    body.update(tenant=tenant, user=user, limit=SAVED_SEARCH_DEPTH, offset=0)
    return SearchRequest.model_validate(body)
