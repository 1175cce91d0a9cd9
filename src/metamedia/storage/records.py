"""The records that cross the storage roles: plain frozen data, no backend types.

They live beside the role protocols (`storage/roles.py`) so that services and
faces import them without importing a backend module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from metamedia.domain import MediaItem
from metamedia.engine.lexical import LexicalDoc
from metamedia.engine.payload import ItemAttributes

WriteStatus = Literal["inserted", "updated", "unchanged"]


@dataclass(frozen=True)
class StoredHashes:
    pk: int
    row_hash: str
    content_hash: str


@dataclass(frozen=True)
class IndexRow:
    """What the in-memory indexes need about one item: its filter attributes, its
    item vector (None when not stored yet), what the keyword side reads and the
    passages the dense side embeds."""

    pk: int
    content_hash: str
    attributes: ItemAttributes
    vector: npt.NDArray[np.float32] | None
    lexical: LexicalDoc
    passages: tuple[str, ...] = ()
    title_text: str = ""


@dataclass(frozen=True)
class Change:
    seq: int
    pk: int
    op: Literal["upsert", "delete"]


@dataclass(frozen=True)
class StoredItem:
    pk: int
    item: MediaItem


@dataclass(frozen=True)
class KeywordIndexReport:
    missing: list[int]
    orphaned: list[int]
    stale: list[int]


@dataclass(frozen=True)
class UserRecord:
    pk: int
    tenant: str
    external_id: str
    preferences: dict[str, Any]
    created_at: float
    updated_at: float = 0.0  # bumped by every stored event or preference change: a version


@dataclass(frozen=True)
class EventRow:
    media_pk: int
    type: str
    value: float | None
    ts: float
    context: dict[str, Any] | None


@dataclass(frozen=True)
class VectorState:
    vector: npt.NDArray[np.float32]
    updated_at: float
    events: int


@dataclass(frozen=True)
class KeyRecord:
    pk: int
    name: str
    prefix: str
    scopes: frozenset[str]
    created_at: float
    revoked_at: float | None
    tenant: str | None = None  # None: a platform key


@dataclass(frozen=True)
class AuditEntry:
    pk: int
    ts: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class DefinitionRow:
    key: str
    kind: str  # "flag" | "experiment"
    body: dict[str, Any]
    source: str  # "config" | "api"
    config_hash: str | None
    updated_at: float
    updated_by: str


@dataclass(frozen=True)
class ConfigEntry:
    key: str
    kind: str
    body: dict[str, Any]
    config_hash: str


@dataclass(frozen=True)
class ConfigSync:
    """What a start-up sync did, for the audit log."""

    inserted: list[str]
    overridden: list[str]
    removed: list[str]


@dataclass(frozen=True)
class Exposure:
    experiment: str
    variant: str
    first_ts: float


@dataclass(frozen=True)
class VariantCounts:
    users: int
    exposures: int


@dataclass(frozen=True)
class OutcomeCounts:
    users: int
    events: int


# -- feed candidates (services/candidates.py) ---------------------------------


@dataclass(frozen=True)
class RankingRow:
    """What the feed scores a candidate by, read from stored columns (no document
    parse): the same values for an item whatever its place in any index.

    `released` is the item's own date as a sortable string: the ISO release date
    when the item has one, else its year ("1997"), None when it has neither, so
    within a year a dated item sorts after (newer than) a year-only one, as SQL's
    `year DESC, release_date DESC` orders them.
    """

    pk: int
    popularity: float
    released: str | None
    created_at: float
    language: str | None
    genres: tuple[str, ...]
    platforms: tuple[str, ...]
    external_id: str = ""  # what a feed page shows, so it needs no document parse either
    title: str = ""


# -- backups (services/backup.py) ---------------------------------------------


@dataclass(frozen=True)
class DatabaseDump:
    """What one consistent snapshot of the relational store holds.

    `tables` are row counts read inside the snapshot itself (the SQLite copy, or
    the exported PostgreSQL snapshot pg_dump ran on), so they describe exactly
    the rows in the dump and a restore can be checked against them.
    """

    kind: str  # "sqlite" or "postgresql": a dump restores only into its own kind
    files: tuple[str, ...]  # names inside the dump folder
    schema_revision: str | None  # Alembic revision stamped in the snapshot
    tables: dict[str, int]
    details: dict[str, Any]  # backend facts a restore needs (extensions, server version)
