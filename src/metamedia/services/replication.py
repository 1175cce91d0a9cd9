"""Keeps replicas in step through the shared message bus (Redis pub/sub).

Each replica already reads the truth from the shared database by version
(catalog watermark, user version, definitions version), so nothing here is
needed for correct answers; it makes other replicas react *at once* instead of
at their next request or poll:

- a flag or experiment change: every replica reloads the definitions and drops
  its in-process cache tier (answers ranked under the old variants go);
- a catalog change: every replica replays the outbox now, so its saved-search
  subscribers get their pushes and its cached searches move to the new version;
- a user's new events or preferences: every replica drops that user's cached
  first page and pushes the refreshed feed to its own WebSocket watchers, so a
  client connected to B sees the effect of a write on A;
- an erasure: every replica drops the user's cached pages and snapshots;
- a `resync` (the bus reconnected after an outage, messages may be lost):
  everything above, for everyone.

A replica's own writes reach its hooks locally, and the bus never returns a
process's own messages, so nothing is handled twice.
"""

from __future__ import annotations

import logging
from typing import Any

from metamedia.services.caching import Caches
from metamedia.services.experiments import ExperimentService
from metamedia.services.indexing import CatalogChange, IndexManager
from metamedia.services.live import LiveHub
from metamedia.services.recommend import RecommendService
from metamedia.services.users import UserChange, UserService
from metamedia.storage.memory_cache import MemoryCache
from metamedia.storage.roles import MessageBus

log = logging.getLogger(__name__)


class ReplicaSync:
    def __init__(
        self,
        bus: MessageBus,
        caches: Caches,
        indexes: IndexManager,
        experiments: ExperimentService,
        users: UserService,
        recommend: RecommendService,
        live: LiveHub,
    ) -> None:
        self.bus = bus
        self.caches = caches
        self.indexes = indexes
        self.experiments = experiments
        self.recommend = recommend
        self.live = live
        # The highest catalog watermark another replica announced: replaying up to
        # it is not news, so it is not announced again (no echo between replicas).
        self._announced = 0
        self.handled: dict[str, int] = {}
        users.on_change(self.user_changed)
        users.on_erase(self.user_erased)
        indexes.on_change(self.catalog_changed)
        experiments.on_definitions_change(self.definitions_changed)
        bus.subscribe(self.on_message)

    # -- this replica's changes, told to the others -------------------------------------

    def user_changed(self, change: UserChange) -> None:
        self.bus.publish({"kind": "user", "tenant": change.tenant, "user": change.user})

    def user_erased(self, tenant: str, user: str) -> None:
        self.bus.publish({"kind": "erase", "tenant": tenant, "user": user})

    def catalog_changed(self, _change: CatalogChange) -> None:
        """Runs under the index lock: `publish` only queues."""
        watermark = self.indexes.watermark
        if watermark > self._announced:
            self._announced = watermark
            self.bus.publish({"kind": "catalog", "watermark": watermark})

    def definitions_changed(self) -> None:
        self.bus.publish({"kind": "definitions"})

    # -- the others' changes, applied here ----------------------------------------------

    def on_message(self, message: dict[str, Any]) -> None:
        kind = str(message.get("kind"))
        self.handled[kind] = self.handled.get(kind, 0) + 1
        if kind == "user":
            tenant, user = str(message["tenant"]), str(message["user"])
            self.recommend.user_changed(tenant, user)
            self.live.user_changed(UserChange(tenant, user, ()))
        elif kind == "erase":
            self.recommend.forget_user(str(message["tenant"]), str(message["user"]))
        elif kind == "catalog":
            self._announced = max(self._announced, int(message.get("watermark", 0)))
            MemoryCache.clear(self.caches.search)  # older versions: never asked for again
            self.indexes.sync()
        elif kind == "definitions":
            self.experiments.store.reload()
            self.caches.drop_local()
        elif kind == "resync":
            self.experiments.store.reload()
            self.caches.drop_local()
            self.indexes.sync()
