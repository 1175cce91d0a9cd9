"""Moving a deployment from one relational store to another (`metamedia migrate-store`).

The copy keeps primary keys and the outbox, so the vector index files in the
data directory stay valid for the target: a runtime pointed at the target with
the same data directory starts in sync, which is what `index check` then proves.
"""

from __future__ import annotations

from dataclasses import dataclass

from metamedia.storage.open import open_stores, redact_url
from metamedia.storage.records import KeywordIndexReport
from metamedia.storage.transfer import Progress, TransferReport, copy_tables


@dataclass(frozen=True)
class StoreMigration:
    source: str  # URLs with any password masked
    target: str
    copy: TransferReport
    keyword_rows: int
    keyword: KeywordIndexReport

    @property
    def ok(self) -> bool:
        kw = self.keyword
        return self.copy.ok and not (kw.missing or kw.orphaned or kw.stale)


def migrate_store(
    source_url: str, target_url: str, progress: Progress | None = None
) -> StoreMigration:
    """Copy every table, then build and check the target's own full-text index."""
    if source_url == target_url:
        raise ValueError("the source and the target are the same store")
    source = open_stores(source_url)
    try:
        target = open_stores(target_url)
        try:
            copied = copy_tables(source.engine, target.engine, progress)
            keyword_rows = target.catalog.rebuild_keyword_index()
            keyword = target.catalog.check_keyword_index()
        finally:
            target.close()
    finally:
        source.close()
    return StoreMigration(
        redact_url(source_url), redact_url(target_url), copied, keyword_rows, keyword
    )
