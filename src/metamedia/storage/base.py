"""Storage roles as small protocols, plus the records that cross them.

The relational store is the source of truth. Vector and keyword indexes are
derived from it through the outbox (a monotonically numbered change log
written in the same transaction as the change), so any index can be rebuilt
or caught up after a crash.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

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


class MediaRepository(Protocol):
    """Media items, their embeddings, keyword index and change log."""

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

    def check_keyword_index(self) -> KeywordIndexReport: ...

    def rebuild_keyword_index(self) -> int: ...

    def close(self) -> None: ...
