"""The catalog on PostgreSQL: the shared SQL catalog with PostgreSQL full text.

Schema: the same tables as the embedded store, plus `media_text` (a weighted
tsvector per item, GIN-indexed; migration 0003) that `PostgresFullText` keeps.
"""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from metamedia.storage.fulltext import PostgresFullText
from metamedia.storage.sqlite import SQLCatalog

# Any constant works; it names the catalog's outbox writer lock among advisory locks.
OUTBOX_LOCK_ID = 0x6D6D_6F62  # "mmob"


class PostgresCatalog(SQLCatalog):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, PostgresFullText())

    def _begin_write(self, conn: Connection) -> None:
        """Catalog writers take turns, so outbox sequence numbers commit in order.

        With concurrent writers a transaction holding seq 11 could commit before
        one holding seq 10; a follower at watermark 11 would then never see 10.
        The lock is released at commit or rollback.
        """
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": OUTBOX_LOCK_ID})

