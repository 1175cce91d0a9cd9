"""Storage roles as small protocols: what services may ask of storage.

Services and faces type against these and the records in `storage/records.py`;
only `storage/open.py` names a backend (an import-linter contract holds that).
One backend may serve several roles from one database, but no service can tell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from metamedia.domain import MediaItem
from metamedia.engine.payload import AttributeFilter, ItemAttributes
from metamedia.storage.records import (
    AuditEntry,
    Change,
    ConfigEntry,
    ConfigSync,
    DatabaseDump,
    DefinitionRow,
    EventRow,
    Exposure,
    IndexRow,
    KeyRecord,
    KeywordIndexReport,
    OutcomeCounts,
    RankingRow,
    StoredHashes,
    StoredItem,
    UserRecord,
    VariantCounts,
    VectorState,
    WriteStatus,
)


class CatalogStore(Protocol):
    """Media items (the source of truth), their embeddings, keyword index and outbox.

    Vector and keyword indexes are derived from this role through the outbox, a
    monotonically numbered change log written in the same transaction as each
    change, so any index can be rebuilt or caught up after a crash.
    """

    def hashes(self, tenant: str, ids: Sequence[str]) -> dict[str, StoredHashes]: ...

    def known_embeddings(self, model: str, content_hashes: Sequence[str]) -> set[str]: ...

    def write_batch(
        self,
        items: Sequence[MediaItem],
        embeddings: dict[str, npt.NDArray[np.float32]],
        model: str,
    ) -> list[WriteStatus]: ...

    def get(self, tenant: str, external_id: str) -> StoredItem | None: ...

    def get_many(self, pks: Sequence[int]) -> dict[int, MediaItem]: ...

    def delete(self, tenant: str, external_id: str) -> bool: ...

    def count(self, tenant: str | None = None) -> int: ...

    def changes_since(self, seq: int, limit: int = 10_000) -> list[Change]: ...

    def last_change(self) -> int: ...

    def index_rows(self, pks: Sequence[int], model: str) -> list[IndexRow]: ...

    def iter_index_rows(self, model: str, batch: int = 5000) -> Iterator[list[IndexRow]]: ...

    def store_embeddings(self, model: str, vectors: dict[str, npt.NDArray[np.float32]]) -> None: ...

    def stored_embeddings(
        self, model: str, content_hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]: ...

    def embedding_spaces(self) -> dict[str, int]:
        """Stored vectors per embedding space (model, weights and recipe)."""
        ...

    def drop_embeddings(self, model: str) -> int:
        """Delete one space's stored vectors; returns how many."""
        ...

    def check_keyword_index(self) -> KeywordIndexReport: ...

    def rebuild_keyword_index(self) -> int: ...

    def keyword_search(self, flt: AttributeFilter, query: str, k: int) -> list[tuple[int, float]]:
        """Full-text top-k as (pk, score), best first, within the filter. The search
        service ranks with its in-memory BM25; this is the store's own full text."""
        ...

    def filter_pks(self, flt: AttributeFilter, limit: int | None = None) -> list[int]:
        """Pks passing the filter, lowest first: the relational evaluator of the filter model."""
        ...

    def catalog_titles(self, tenant: str) -> list[tuple[str, str, int | None]]:
        """(external id, title, year) of every public item: what evaluation resolves
        gold titles against."""
        ...

    # -- feed candidates: ranked by stored attributes (services/candidates.py) --

    def most_popular(self, flt: AttributeFilter, limit: int) -> list[int]:
        """Pks passing the filter, highest stored popularity first (ties: newer row first)."""
        ...

    def newest(self, flt: AttributeFilter, limit: int) -> list[int]:
        """Pks passing the filter, newest first by the item's own date: release date
        where it has one, else its year; ties (and undated items, last) by when the
        row was created, then pk. Never by ingest or index order alone."""
        ...

    def visible_pks(self, flt: AttributeFilter, pks: Sequence[int]) -> set[int]:
        """Those of `pks` that pass the filter (for candidates found elsewhere)."""
        ...

    def ranking_rows(self, pks: Sequence[int]) -> dict[int, RankingRow]:
        """The stored attributes the feed scores each of `pks` by (unknown pks left out)."""
        ...

    # -- end of feed candidates -------------------------------------------------

    def ping(self) -> None:
        """Raise if the store cannot answer (readiness)."""
        ...

    def close(self) -> None: ...


class UserStore(Protocol):
    """Users, their events, favourites and learned preference vectors."""

    def get(self, tenant: str, external_id: str) -> UserRecord | None: ...

    def ensure(self, tenant: str, external_id: str) -> UserRecord: ...

    def set_preferences(self, user_pk: int, preferences: dict[str, Any]) -> None: ...

    def delete(self, user_pk: int) -> None: ...

    def count_rows(self, user_pk: int) -> dict[str, int]: ...

    def media_pks(
        self, tenant: str, external_ids: Sequence[str]
    ) -> dict[str, tuple[int, bool, set[str]]]: ...

    def add_events(
        self,
        user_pk: int,
        events: Sequence[EventRow],
        learn: Callable[[list[EventRow]], VectorState | None] | None = None,
        model: str = "",
    ) -> list[bool]: ...

    def history(
        self, user_pk: int, limit: int, offset: int, session: str | None = None
    ) -> list[tuple[str, EventRow]]: ...

    def events(self, user_pk: int) -> list[EventRow]: ...

    def events_after(self, user_pk: int, after: int) -> tuple[int, list[tuple[int, EventRow]]]:
        """(the user's event count, (event id, event) for ids above `after`, oldest
        first); ids only grow per user in commit order."""
        ...

    def favorite_ids(self, user_pk: int) -> list[tuple[str, float]]: ...

    def training_pairs(
        self, tenant: str
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

    def trending(self, tenant: str, since: float, limit: int) -> list[tuple[int, int]]: ...

    def load_vector(self, user_pk: int, model: str) -> VectorState | None: ...

    def save_vector(self, user_pk: int, model: str, state: VectorState) -> None: ...


class ExperimentStore(Protocol):
    """Flag and experiment definitions, exposures and outcomes."""

    def version(self) -> int: ...

    def load(self) -> tuple[int, list[DefinitionRow]]: ...

    def get(self, key: str) -> DefinitionRow | None: ...

    def put(self, key: str, kind: str, body: dict[str, Any], actor: str) -> None: ...

    def delete(self, key: str) -> bool: ...

    def sync_config(self, entries: Iterable[ConfigEntry], actor: str) -> ConfigSync: ...

    def record_exposure(
        self, experiment: str, tenant: str, user: str, variant: str, ts: float
    ) -> None: ...

    def add_exposure_counts(self, rows: list[tuple[str, str, str, int, float]]) -> None: ...

    def exposures_of(self, tenant: str, user: str) -> list[Exposure]: ...

    def add_outcomes(self, rows: list[tuple[str, str, str, str, int, float]]) -> None: ...

    def variant_counts(self, experiment: str) -> dict[str, VariantCounts]: ...

    def outcome_counts(self, experiment: str) -> dict[tuple[str, str], OutcomeCounts]: ...

    def forget_user(self, tenant: str, user: str) -> None: ...

    def forget_experiment(self, experiment: str) -> None: ...

    def user_traits(self, tenant: str, user: str) -> tuple[bool, str | None]: ...


class KeyStore(Protocol):
    """API keys, held only as digests."""

    def add(
        self,
        name: str,
        prefix: str,
        digest: str,
        scopes: frozenset[str],
        tenant: str | None = None,
    ) -> KeyRecord: ...

    def by_digest(self, digest: str) -> KeyRecord | None: ...

    def all(self) -> list[KeyRecord]: ...

    def by_pk(self, pk: int) -> KeyRecord | None: ...

    def revoke(self, pk: int) -> bool: ...


class AuditLog(Protocol):
    """Append-only record of who changed what."""

    def record(
        self, actor: str, action: str, target: str, detail: dict[str, Any]
    ) -> AuditEntry: ...

    def recent(self, limit: int = 100, action_prefix: str | None = None) -> list[AuditEntry]: ...


class VectorStore(Protocol):
    """Item vectors with their filter attributes: k-nearest search inside a filter.

    Scores are inner products of unit vectors (cosine), best first. A backend
    must fill `k` whenever `k` items pass the filter, however selective it is.
    """

    def upsert(
        self, rows: Sequence[tuple[int, npt.NDArray[np.float32], ItemAttributes]]
    ) -> None: ...

    def remove(self, pks: Sequence[int]) -> None: ...

    def search(
        self, vector: npt.NDArray[np.float32], k: int, flt: AttributeFilter
    ) -> list[tuple[int, float]]: ...

    def count(self) -> int: ...


class CacheStore(Protocol):
    """Shared answers by string key, with a TTL, dropped by version or by prefix.

    Keys carry the versions they depend on (catalog, user, flags), so a bumped
    version makes old entries unreachable; `drop_prefix` frees them early.
    """

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def delete(self, key: str) -> bool: ...

    def drop_prefix(self, prefix: str) -> int: ...

    def version(self, name: str) -> int: ...

    def bump(self, name: str) -> int: ...


class DatabaseBackup(Protocol):
    """Consistent snapshots of the relational store while it serves, and restores.

    The embedded store copies its file with SQLite's online-backup API; a server
    store runs pg_dump on one exported snapshot. Either way `dump` never blocks
    writers and never migrates or otherwise changes the source.
    """

    kind: str
    # Files the live database occupies (the SQLite file and its journals): a file
    # copy of them would be torn, so a data directory backup leaves them to `dump`.
    live_files: tuple[Path, ...]

    def dump(self, folder: Path) -> DatabaseDump: ...

    def existing_contents(self) -> str | None:
        """None when the target holds no data; else what it holds, in words."""
        ...

    def restore(self, folder: Path, dump: DatabaseDump, *, into: Path | None = None) -> None:
        """Load `dump` from `folder`, all or nothing, then check its row counts.

        `into` places an embedded store's file elsewhere (a staged data directory
        that is swapped in afterwards); a server store ignores it.
        """
        ...


class MessageBus(Protocol):
    """Best-effort messages to every other process of the deployment (pub/sub).

    Nudges only: what they announce is in the database. A process that may have
    missed some gets `{"kind": "resync"}` and re-reads; its own messages never
    come back to it.
    """

    def publish(self, message: dict[str, Any]) -> None: ...

    def subscribe(self, handler: Callable[[dict[str, Any]], None]) -> None: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class EventStream(Protocol):
    """An append-only log read by a consumer group: at-least-once, with entries a
    dead consumer left pending claimed by another after `claim_idle_ms`."""

    def append(self, fields: dict[str, str]) -> str | None: ...

    def read(
        self, consumer: str, count: int, block_ms: int, claim_idle_ms: int
    ) -> list[tuple[str, dict[str, str]]]: ...

    def ack(self, ids: Sequence[str]) -> int: ...

    def pending(self) -> int: ...

    def close(self) -> None: ...


class ActivityCounters(Protocol):
    """Shared per-item activity: distinct users for trending, events for popularity.
    `record` counts an event id once, however often it is delivered."""

    def record(
        self, event_id: str, tenant: str, user: str, item_pk: int, kind: str, ts: float
    ) -> bool: ...

    def trending(self, tenant: str, since: float, limit: int) -> list[tuple[int, int]]: ...

    def popularity(self, tenant: str, item_pks: Sequence[int]) -> dict[int, int]: ...
