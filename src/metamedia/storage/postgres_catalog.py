"""The catalog on PostgreSQL: the shared SQL catalog with PostgreSQL full text, and
optionally the item vectors in pgvector, written with their items.

Schema: the same tables as the embedded store, plus `media_text` (a weighted
tsvector per item, GIN-indexed; migration 0003) that `PostgresFullText` keeps.
With a `PgVectorStore` attached, each written item's vector goes into
`media_vectors` in the transaction that writes the item, with the copy of its
filter attributes that the vector table keeps, so the vector role can never
disagree with the catalog; a delete cascades.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from metamedia.storage.fulltext import PostgresFullText
from metamedia.storage.pg_vectors import PgVectorStore
from metamedia.storage.sqlite import SQLCatalog

# Any constant works; it names the catalog's outbox writer lock among advisory locks.
OUTBOX_LOCK_ID = 0x6D6D_6F62  # "mmob"
BACKFILL_BATCH = 2000


class PostgresCatalog(SQLCatalog):
    def __init__(
        self, engine: Engine, vectors: PgVectorStore | None = None, vector_model: str = ""
    ) -> None:
        super().__init__(engine, PostgresFullText())
        self.vectors = vectors
        self.vector_model = vector_model  # the embedding space whose item vectors are kept

    def _begin_write(self, conn: Connection) -> None:
        """Catalog writers take turns, so outbox sequence numbers commit in order.

        With concurrent writers a transaction holding seq 11 could commit before
        one holding seq 10; a follower at watermark 11 would then never see 10.
        The lock is released at commit or rollback.
        """
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": OUTBOX_LOCK_ID})

    def _after_write(
        self,
        conn: Connection,
        written: dict[int, str],
        vectors: dict[str, npt.NDArray[np.float32]],
        model: str,
    ) -> None:
        if self.vectors is None or not written:
            return
        if model != self.vector_model:
            # No vectors of the kept space here, but the items' attributes (year, genres,
            # visibility...) may have changed under the vectors they already have.
            self.vectors.refresh_attributes(conn, list(written))
            return
        found = {h: vectors[h] for h in written.values() if h in vectors}
        missing = sorted({h for h in written.values() if h not in found})
        if missing:
            rows = conn.execute(
                text(
                    "SELECT content_hash, vector FROM embeddings WHERE model = :m "
                    "AND content_hash = ANY(CAST(:h AS text[]))"
                ),
                {"m": model, "h": missing},
            )
            found.update({h: np.frombuffer(blob, dtype=np.float32) for h, blob in rows})
        self.vectors.write(conn, {pk: found[h] for pk, h in written.items() if h in found})
        # Items written without a vector (none stored for their new text) keep their old
        # vector row until one comes; its attributes still follow the item.
        self.vectors.refresh_attributes(conn, [pk for pk, h in written.items() if h not in found])

    def backfill_vectors(self) -> int:
        """Give every item whose vector is stored a row in the vector table: after
        `migrate-store`, or when pgvector is switched on for an existing database."""
        if self.vectors is None:
            return 0
        added = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    text(
                        "SELECT m.pk, e.vector FROM media m JOIN embeddings e "
                        "ON e.model = :m AND e.content_hash = m.content_hash "
                        "WHERE NOT EXISTS (SELECT 1 FROM media_vectors v WHERE v.pk = m.pk) "
                        "ORDER BY m.pk LIMIT :n"
                    ),
                    {"m": self.vector_model, "n": BACKFILL_BATCH},
                ).all()
                if not rows:
                    return added
                self.vectors.write(
                    conn, {int(pk): np.frombuffer(blob, dtype=np.float32) for pk, blob in rows}
                )
                added += len(rows)
