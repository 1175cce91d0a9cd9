"""The embedded relational store: one SQLite file through SQLAlchemy.

Holds media items (the source of truth), their embeddings keyed by
(model, content hash), an FTS5 keyword index kept in the same transaction as
each write, the genre/platform link tables used by filters, and the outbox
change log that the vector index follows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, bindparam, delete, func, select, text
from sqlalchemy.engine import Engine

from metamedia.domain import MediaItem
from metamedia.engine.lexical import LexicalDoc
from metamedia.engine.passages import item_passages, item_title_text
from metamedia.engine.payload import AttributeFilter, ItemAttributes, maturity_level
from metamedia.storage.filters import filter_sql
from metamedia.storage.fulltext import Fts5FullText, FullText
from metamedia.storage.records import (
    Change,
    IndexRow,
    KeywordIndexReport,
    RankingRow,
    StoredHashes,
    StoredItem,
    WriteStatus,
)
from metamedia.storage.sql_dialect import conflict_insert
from metamedia.storage.sql_schema import (
    embeddings,
    media,
    media_genre,
    media_platform,
    media_viewer,
    media_year,
    open_sqlite,
    outbox,
)


def attributes_of(item: MediaItem) -> ItemAttributes:
    return ItemAttributes(
        type=item.type,
        tenant=item.tenant,
        year=item.year,
        release_years=tuple(item.release_years),
        rating=item.rating,
        language=item.language,
        genres=tuple(item.genres),
        platforms=tuple(item.platform_names()),
        private=item.visibility == "private",
        owner=item.owner,
        popularity=item.popularity,
        maturity=item.maturity_rating,
        allowed_users=tuple(item.allowed_users),
    )


def lexical_doc_of(item: MediaItem) -> LexicalDoc:
    """What the in-memory keyword index reads: titles (alternates included) and the
    body (plot, people, genres, tags)."""
    body = " ".join([item.description, " ".join(item.cast), " ".join(item.genres)])
    if item.tags:
        body = f"{body} {' '.join(item.tags)}"
    return LexicalDoc(
        tenant=item.tenant,
        public=item.visibility == "public",
        titles=(item.title, *item.alternate_titles),
        body=body,
    )


def _vector_bytes(vector: npt.NDArray[np.float32]) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def _vector_from(blob: bytes) -> npt.NDArray[np.float32]:
    return np.frombuffer(blob, dtype=np.float32).copy()


class SQLCatalog:
    """`CatalogStore` in SQL through SQLAlchemy Core: one code path for SQLite and
    PostgreSQL, with the full-text index as the one per-database strategy."""

    def __init__(self, engine: Engine, fulltext: FullText) -> None:
        self.engine = engine
        self.fulltext = fulltext

    def close(self) -> None:
        self.engine.dispose()

    def _begin_write(self, conn: Connection) -> None:
        """Called first in every transaction that appends to the outbox.

        Index followers read the outbox by sequence number, so a change must never
        commit after a later-numbered one. SQLite has one writer at a time, so
        nothing to do here; a server database overrides this with a lock.
        """

    # -- reads used by ingest -----------------------------------------------

    def hashes(self, tenant: str, ids: Sequence[str]) -> dict[str, StoredHashes]:
        found: dict[str, StoredHashes] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(ids), 500):
                rows = conn.execute(
                    media.select()
                    .with_only_columns(
                        media.c.external_id, media.c.pk, media.c.row_hash, media.c.content_hash
                    )
                    .where(media.c.tenant == tenant, media.c.external_id.in_(chunk))
                )
                for ext, pk, row_hash, content_hash in rows:
                    found[ext] = StoredHashes(pk, row_hash, content_hash)
        return found

    def known_embeddings(self, model: str, content_hashes: Sequence[str]) -> set[str]:
        known: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(content_hashes), 500):
                rows = conn.execute(
                    embeddings.select()
                    .with_only_columns(embeddings.c.content_hash)
                    .where(embeddings.c.model == model, embeddings.c.content_hash.in_(chunk))
                )
                known.update(r[0] for r in rows)
        return known

    # -- writes -------------------------------------------------------------

    def write_batch(
        self,
        items: Sequence[MediaItem],
        embeddings_by_hash: dict[str, npt.NDArray[np.float32]],
        model: str,
    ) -> list[WriteStatus]:
        """Upsert items, their new embeddings, FTS rows and outbox entries atomically."""
        statuses: list[WriteStatus] = []
        written: dict[int, str] = {}
        now = time.time()
        with self.engine.begin() as conn:
            self._begin_write(conn)
            self._insert_embeddings(conn, model, embeddings_by_hash)
            for item in items:
                status, pk = self._upsert_one(conn, item, now)
                statuses.append(status)
                if status != "unchanged":
                    written[pk] = item.content_hash()
            self._after_write(conn, written, embeddings_by_hash, model)
        return statuses

    def _after_write(
        self,
        conn: Connection,
        written: dict[int, str],
        vectors: dict[str, npt.NDArray[np.float32]],
        model: str,
    ) -> None:
        """Called inside a batch's transaction with the pks written (and their content
        hashes): where a backend keeps more per item than the shared tables. Nothing here."""

    def stored_embeddings(
        self, model: str, content_hashes: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """Stored vectors by content hash (hashes with no vector are left out)."""
        found: dict[str, npt.NDArray[np.float32]] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(content_hashes)), 500):
                rows = conn.execute(
                    embeddings.select()
                    .with_only_columns(embeddings.c.content_hash, embeddings.c.vector)
                    .where(embeddings.c.model == model, embeddings.c.content_hash.in_(chunk))
                )
                for content_hash, blob in rows:
                    found[content_hash] = _vector_from(blob)
        return found

    def store_embeddings(self, model: str, vectors: dict[str, npt.NDArray[np.float32]]) -> None:
        with self.engine.begin() as conn:
            self._insert_embeddings(conn, model, vectors)

    def embedding_spaces(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(embeddings.c.model, func.count()).group_by(embeddings.c.model)
            ).all()
        return {str(model): int(n) for model, n in rows}

    def drop_embeddings(self, model: str) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(delete(embeddings).where(embeddings.c.model == model)).rowcount)

    @staticmethod
    def _insert_embeddings(
        conn: Connection, model: str, vectors: dict[str, npt.NDArray[np.float32]]
    ) -> None:
        if not vectors:
            return
        conn.execute(
            conflict_insert(conn, embeddings).on_conflict_do_nothing(),
            [
                {
                    "model": model,
                    "content_hash": h,
                    "dim": int(v.shape[0]),
                    "vector": _vector_bytes(v),
                }
                for h, v in vectors.items()
            ],
        )

    def _upsert_one(self, conn: Connection, item: MediaItem, now: float) -> tuple[WriteStatus, int]:
        row_hash = item.row_hash()
        existing = conn.execute(
            text("SELECT pk, row_hash FROM media WHERE tenant = :t AND external_id = :e"),
            {"t": item.tenant, "e": item.id},
        ).first()
        if existing is not None and existing[1] == row_hash:
            return "unchanged", int(existing[0])
        values: dict[str, Any] = {
            "tenant": item.tenant,
            "external_id": item.id,
            "type": item.type,
            "title": item.title,
            "year": item.year,
            "rating": item.rating,
            "language": item.language,
            "visibility": item.visibility,
            "owner": item.owner,
            "popularity": item.popularity,
            "maturity_level": maturity_level(item.maturity_rating),
            "content_hash": item.content_hash(),
            "row_hash": row_hash,
            "doc": json.dumps(item.model_dump(mode="json"), ensure_ascii=False),
            "updated_at": now,
        }
        if existing is None:
            inserted = conn.execute(media.insert().values(created_at=now, **values))
            pk = int(inserted.inserted_primary_key[0])  # type: ignore[index]
            status: WriteStatus = "inserted"
        else:
            pk = int(existing[0])
            conn.execute(media.update().where(media.c.pk == pk).values(**values))
            for table in ("media_genre", "media_platform", "media_viewer", "media_year"):
                conn.execute(text(f"DELETE FROM {table} WHERE pk = :pk"), {"pk": pk})
            self.fulltext.remove(conn, pk)
            status = "updated"
        if item.genres:
            conn.execute(media_genre.insert(), [{"pk": pk, "genre": g} for g in item.genres])
        if item.release_years:
            conn.execute(media_year.insert(), [{"pk": pk, "year": y} for y in item.release_years])
        platforms = item.platform_names()
        if platforms:
            conn.execute(media_platform.insert(), [{"pk": pk, "platform": p} for p in platforms])
        if item.allowed_users:
            conn.execute(
                media_viewer.insert(), [{"pk": pk, "viewer": v} for v in item.allowed_users]
            )
        self.fulltext.index(conn, pk, item)
        conn.execute(outbox.insert().values(pk=pk, op="upsert", at=now))
        return status, pk

    def delete(self, tenant: str, external_id: str) -> bool:
        with self.engine.begin() as conn:
            self._begin_write(conn)
            row = conn.execute(
                text("SELECT pk FROM media WHERE tenant = :t AND external_id = :e"),
                {"t": tenant, "e": external_id},
            ).first()
            if row is None:
                return False
            pk = int(row[0])
            for table in ("media_genre", "media_platform", "media_viewer", "media_year"):
                conn.execute(text(f"DELETE FROM {table} WHERE pk = :pk"), {"pk": pk})
            self.fulltext.remove(conn, pk)
            conn.execute(text("DELETE FROM media WHERE pk = :pk"), {"pk": pk})
            conn.execute(outbox.insert().values(pk=pk, op="delete", at=time.time()))
        return True

    # -- reads used by search and the API -----------------------------------

    def get(self, tenant: str, external_id: str) -> StoredItem | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT pk, doc FROM media WHERE tenant = :t AND external_id = :e"),
                {"t": tenant, "e": external_id},
            ).first()
        if row is None:
            return None
        return StoredItem(int(row[0]), MediaItem.model_validate_json(row[1]))

    def get_many(self, pks: Sequence[int]) -> dict[int, MediaItem]:
        found: dict[int, MediaItem] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks([int(p) for p in pks], 500):
                rows = conn.execute(
                    media.select()
                    .with_only_columns(media.c.pk, media.c.doc)
                    .where(media.c.pk.in_(chunk))
                )
                for pk, doc in rows:
                    found[int(pk)] = MediaItem.model_validate_json(doc)
        return found

    def count(self, tenant: str | None = None) -> int:
        with self.engine.connect() as conn:
            if tenant is None:
                return int(conn.execute(text("SELECT count(*) FROM media")).scalar_one())
            return int(
                conn.execute(
                    text("SELECT count(*) FROM media WHERE tenant = :t"), {"t": tenant}
                ).scalar_one()
            )

    def changes_since(self, seq: int, limit: int = 10_000) -> list[Change]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT seq, pk, op FROM outbox WHERE seq > :s ORDER BY seq LIMIT :n"),
                {"s": seq, "n": limit},
            ).all()
        return [Change(int(s), int(pk), op) for s, pk, op in rows]

    def last_change(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM outbox")).scalar_one())

    def index_rows(self, pks: Sequence[int], model: str) -> list[IndexRow]:
        rows: list[IndexRow] = []
        with self.engine.connect() as conn:
            for chunk in _chunks([int(p) for p in pks], 500):
                rows.extend(self._index_rows(conn, model, media.c.pk.in_(chunk)))
        return rows

    def iter_index_rows(self, model: str, batch: int = 5000) -> Iterator[list[IndexRow]]:
        last = 0
        with self.engine.connect() as conn:
            while True:
                rows = self._index_rows(conn, model, media.c.pk > last, limit=batch)
                if not rows:
                    return
                yield rows
                last = rows[-1].pk

    @staticmethod
    def _index_rows(
        conn: Connection, model: str, condition: Any, limit: int | None = None
    ) -> list[IndexRow]:
        stmt = (
            media.select()
            .with_only_columns(media.c.pk, media.c.content_hash, media.c.doc, embeddings.c.vector)
            .select_from(
                media.outerjoin(
                    embeddings,
                    (embeddings.c.content_hash == media.c.content_hash)
                    & (embeddings.c.model == model),
                )
            )
            .where(condition)
            .order_by(media.c.pk)
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        out = []
        for pk, content_hash, doc, blob in conn.execute(stmt):
            item = MediaItem.model_validate_json(doc)
            vector = None if blob is None else _vector_from(blob)
            out.append(
                IndexRow(
                    int(pk),
                    content_hash,
                    attributes_of(item),
                    vector,
                    lexical_doc_of(item),
                    tuple(item_passages(item)),
                    item_title_text(item),
                )
            )
        return out

    # -- filter-model reads, full text, readiness ---------------------------

    def filter_pks(self, flt: AttributeFilter, limit: int | None = None) -> list[int]:
        where, params = filter_sql(flt)
        sql = f"SELECT m.pk FROM media m WHERE {where} ORDER BY m.pk"
        if limit is not None:
            sql += " LIMIT :f_limit"
            params["f_limit"] = limit
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(text(sql), params)]

    def keyword_search(self, flt: AttributeFilter, query: str, k: int) -> list[tuple[int, float]]:
        where, params = filter_sql(flt)
        with self.engine.connect() as conn:
            return self.fulltext.search(conn, where, params, query, k)

    def catalog_titles(self, tenant: str) -> list[tuple[str, str, int | None]]:
        statement = select(media.c.external_id, media.c.title, media.c.year).where(
            media.c.tenant == tenant, media.c.visibility == "public"
        )
        with self.engine.connect() as conn:
            return [
                (str(i), str(t), None if y is None else int(y))
                for i, t, y in conn.execute(statement)
            ]

    # -- feed candidates: ranked by stored attributes (services/candidates.py) --
    # Plain SQL for SQLite and PostgreSQL alike: NULL order is spelled out (the two
    # sort NULL at opposite ends) and the release date, held only in the JSON `doc`,
    # is read with each dialect's own operator (`_released_sql`).

    def _released_sql(self, alias: str = "m") -> str:
        """The item's ISO release date as text, NULL when it has none."""
        if self.engine.dialect.name == "sqlite":
            return f"json_extract({alias}.doc, '$.release_date')"
        return f"(CAST({alias}.doc AS jsonb) ->> 'release_date')"

    def most_popular(self, flt: AttributeFilter, limit: int) -> list[int]:
        """Ties go to the newer row (pk DESC): the order an index on (tenant,
        popularity) reads backwards, so such an index can stop after `limit` rows."""
        where, params = filter_sql(flt)
        sql = (
            f"SELECT m.pk FROM media m WHERE {where} "
            "ORDER BY m.popularity DESC, m.pk DESC LIMIT :f_limit"
        )
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(text(sql), {**params, "f_limit": limit})]

    def newest(self, flt: AttributeFilter, limit: int) -> list[int]:
        """Newest first: year, then release date within the year (a year-only item
        after the dated ones of its year), then created_at and pk; undated items last.

        The release date lives only in the document; reading it for every row would
        parse the whole catalog, so the year of the `limit`-th newest dated item
        bounds the rows whose date is read.
        """
        if limit <= 0:
            return []
        where, params = filter_sql(flt)
        with self.engine.connect() as conn:
            cutoff = conn.execute(
                text(
                    f"SELECT m.year FROM media m WHERE {where} AND m.year IS NOT NULL "
                    "ORDER BY m.year DESC LIMIT 1 OFFSET :f_offset"
                ),
                {**params, "f_offset": limit - 1},
            ).first()
            if cutoff is not None:
                where += " AND m.year >= :f_year_cutoff"
                params["f_year_cutoff"] = int(cutoff[0])
            released = self._released_sql()
            sql = (
                f"SELECT m.pk FROM media m WHERE {where} "
                f"ORDER BY (m.year IS NULL), m.year DESC, ({released} IS NULL), {released} DESC, "
                "m.created_at DESC, m.pk DESC LIMIT :f_limit"
            )
            return [int(r[0]) for r in conn.execute(text(sql), {**params, "f_limit": limit})]

    def visible_pks(self, flt: AttributeFilter, pks: Sequence[int]) -> set[int]:
        """The listed rows are looked up by key, then filtered: CROSS JOIN keeps SQLite
        from walking the whole tenant through its (tenant, ...) index instead."""
        where, params = filter_sql(flt)
        found: set[int] = set()
        with self.engine.connect() as conn:
            statement = text(
                "SELECT m.pk FROM (SELECT pk FROM media WHERE pk IN :f_pks) ids "
                f"CROSS JOIN media m WHERE m.pk = ids.pk AND {where}"
            ).bindparams(bindparam("f_pks", expanding=True))
            for chunk in _chunks(sorted({int(p) for p in pks}), 500):
                rows = conn.execute(statement, {**params, "f_pks": chunk})
                found.update(int(r[0]) for r in rows)
        return found

    def ranking_rows(self, pks: Sequence[int]) -> dict[int, RankingRow]:
        """Columns plus the genre and platform link tables; the release date is the one
        field read from the document (a JSON operator, no model parse). The id and
        title come along: a feed page shows nothing else."""
        found: dict[int, RankingRow] = {}
        statement = text(
            f"SELECT m.pk, m.popularity, m.year, {self._released_sql()}, m.created_at, "
            "m.language, m.external_id, m.title FROM media m WHERE m.pk IN :r_pks"
        ).bindparams(bindparam("r_pks", expanding=True))
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted({int(p) for p in pks}), 500):
                genres: dict[int, list[str]] = {}
                for pk, genre in conn.execute(
                    select(media_genre.c.pk, media_genre.c.genre).where(media_genre.c.pk.in_(chunk))
                ):
                    genres.setdefault(int(pk), []).append(str(genre))
                platforms: dict[int, list[str]] = {}
                for pk, platform in conn.execute(
                    select(media_platform.c.pk, media_platform.c.platform).where(
                        media_platform.c.pk.in_(chunk)
                    )
                ):
                    platforms.setdefault(int(pk), []).append(str(platform))
                rows = conn.execute(statement, {"r_pks": chunk})
                for pk, popularity, year, date, created_at, language, external_id, title in rows:
                    key = int(pk)
                    found[key] = RankingRow(
                        pk=key,
                        popularity=float(popularity or 0.0),
                        released=str(date) if date else (str(year) if year else None),
                        created_at=float(created_at),
                        language=language,
                        genres=tuple(genres.get(key, ())),
                        platforms=tuple(platforms.get(key, ())),
                        external_id=str(external_id),
                        title=str(title),
                    )
        return found

    # -- end of feed candidates -------------------------------------------------

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # -- keyword index maintenance ------------------------------------------

    def check_keyword_index(self) -> KeywordIndexReport:
        with self.engine.connect() as conn:
            return self.fulltext.check(conn)

    def rebuild_keyword_index(self) -> int:
        with self.engine.begin() as conn:
            rows = conn.execute(text("SELECT pk, doc FROM media ORDER BY pk")).all()
            items = [(int(pk), MediaItem.model_validate_json(doc)) for pk, doc in rows]
            return self.fulltext.rebuild(conn, items)


class SQLiteRepository(SQLCatalog):
    """The embedded default: the catalog on one SQLite file, full text in FTS5."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(open_sqlite(url), Fts5FullText())


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
