"""The catalog's own full-text index, one strategy per database.

The catalog keeps it in the same transaction as each item write, so it is never
behind. SQLite uses FTS5 (BM25 over five columns); PostgreSQL uses a weighted
`tsvector` per item with a GIN index. PostgreSQL has no BM25, so its ranking
multiplies each query lexeme's `ts_rank` (weighted, length-normalised) by a
BM25 IDF computed from the tenant's document frequencies at query time: the
closest this engine gets without an extension.
"""

from __future__ import annotations

import math
import re
from typing import Any, Protocol

from sqlalchemy import Connection, text

from metamedia.domain import MediaItem
from metamedia.storage.records import KeywordIndexReport

FTS_TITLE_WEIGHT = 4.0  # a title word counts four times a plot word, on both engines


def title_lines(item: MediaItem) -> str:
    """The title, then each alternate title on its own line.

    Alternate titles (a merged re-release's "Titanic 3D") must find the item with
    the weight of a title; the first line stays the title for the staleness check.
    """
    return "\n".join([item.title, *item.alternate_titles])


def query_words(query: str) -> list[str]:
    """The query's distinct words, lower-cased: no operator of either engine passes."""
    return list(dict.fromkeys(re.findall(r"\w+", query.lower())))


class FullText(Protocol):
    def index(self, conn: Connection, pk: int, item: MediaItem) -> None: ...

    def remove(self, conn: Connection, pk: int) -> None: ...

    def search(
        self, conn: Connection, where: str, params: dict[str, Any], query: str, k: int
    ) -> list[tuple[int, float]]: ...

    def check(self, conn: Connection) -> KeywordIndexReport: ...

    def rebuild(self, conn: Connection, items: list[tuple[int, MediaItem]]) -> int: ...


class Fts5FullText:
    """FTS5 with porter stemming and diacritics folded; `media_fts.rowid` is the pk."""

    def index(self, conn: Connection, pk: int, item: MediaItem) -> None:
        conn.execute(
            text(
                "INSERT INTO media_fts(rowid, title, description, people, tags, genres) "
                "VALUES (:pk, :title, :description, :people, :tags, :genres)"
            ),
            {
                "pk": pk,
                "title": title_lines(item),
                "description": item.description,
                "people": " ".join(item.cast),
                "tags": " ".join(item.tags),
                "genres": " ".join(item.genres),
            },
        )

    def remove(self, conn: Connection, pk: int) -> None:
        conn.execute(text("DELETE FROM media_fts WHERE rowid = :pk"), {"pk": pk})

    def search(
        self, conn: Connection, where: str, params: dict[str, Any], query: str, k: int
    ) -> list[tuple[int, float]]:
        words = query_words(query)
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        rows = conn.execute(
            text(
                f"SELECT m.pk, bm25(media_fts, {FTS_TITLE_WEIGHT}, 1.0, 1.0, 1.0, 1.0) AS rank "
                "FROM media_fts JOIN media m ON m.pk = media_fts.rowid "
                f"WHERE media_fts MATCH :q AND {where} ORDER BY rank, m.pk LIMIT :k"
            ),
            {**params, "q": match, "k": k},
        ).all()
        return [(int(pk), -float(rank)) for pk, rank in rows]

    def check(self, conn: Connection) -> KeywordIndexReport:
        missing = conn.execute(
            text("SELECT pk FROM media WHERE pk NOT IN (SELECT rowid FROM media_fts)")
        )
        orphaned = conn.execute(
            text("SELECT rowid FROM media_fts WHERE rowid NOT IN (SELECT pk FROM media)")
        )
        stale = conn.execute(
            text(
                "SELECT m.pk FROM media m JOIN media_fts f ON f.rowid = m.pk "
                "WHERE f.title IS NOT m.title AND substr(f.title, 1, "
                "length(m.title) + 1) IS NOT m.title || char(10)"
            )
        )
        return KeywordIndexReport(
            [int(r[0]) for r in missing], [int(r[0]) for r in orphaned], [int(r[0]) for r in stale]
        )

    def rebuild(self, conn: Connection, items: list[tuple[int, MediaItem]]) -> int:
        conn.exec_driver_sql("DELETE FROM media_fts")
        for pk, item in items:
            self.index(conn, pk, item)
        return len(items)


# ts_rank weights in {D, C, B, A} order, each at most 1: A is the title, B the plot,
# C people and labels. The plot and the rest weigh 1/FTS_TITLE_WEIGHT of a title word.
_PG_WEIGHTS = f"{{{1 / FTS_TITLE_WEIGHT}, {1 / FTS_TITLE_WEIGHT}, {1 / FTS_TITLE_WEIGHT}, 1.0}}"
_PG_DOCUMENT = (
    "setweight(to_tsvector('english', unaccent(:title)), 'A') || "
    "setweight(to_tsvector('english', unaccent(:description)), 'B') || "
    "setweight(to_tsvector('english', unaccent(:people)), 'C') || "
    "setweight(to_tsvector('english', unaccent(:labels)), 'C')"
)
MAX_QUERY_LEXEMES = 64  # a 1,000-word request ranks on its first 64 distinct stems


class PostgresFullText:
    """A weighted tsvector per item in `media_text`, GIN-indexed, ranked BM25-style."""

    def index(self, conn: Connection, pk: int, item: MediaItem) -> None:
        conn.execute(
            text(
                "INSERT INTO media_text(pk, title, tsv) VALUES (:pk, :title_first, "
                f"{_PG_DOCUMENT}) ON CONFLICT (pk) DO UPDATE SET title = EXCLUDED.title, "
                "tsv = EXCLUDED.tsv"
            ),
            {
                "pk": pk,
                "title_first": item.title,
                "title": title_lines(item),
                "description": item.description,
                "people": " ".join(item.cast),
                "labels": " ".join([*item.tags, *item.genres]),
            },
        )

    def remove(self, conn: Connection, pk: int) -> None:
        conn.execute(text("DELETE FROM media_text WHERE pk = :pk"), {"pk": pk})

    def search(
        self, conn: Connection, where: str, params: dict[str, Any], query: str, k: int
    ) -> list[tuple[int, float]]:
        words = query_words(query)
        if not words:
            return []
        lexemes = [
            str(r[0])
            for r in conn.execute(
                text("SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', unaccent(:q)))"),
                {"q": " ".join(words)},
            )
        ][:MAX_QUERY_LEXEMES]
        if not lexemes:
            return []
        # Document frequencies within the filter's tenant (one GIN probe per lexeme),
        # and the tenant's size, in one round trip.
        stats = conn.execute(
            text(
                "SELECT l.lexeme, (SELECT count(*) FROM media_text t JOIN media m ON m.pk = t.pk "
                "WHERE m.tenant = :f_tenant AND "
                "t.tsv @@ to_tsquery('simple', quote_literal(l.lexeme))), "
                "(SELECT count(*) FROM media WHERE tenant = :f_tenant) "
                "FROM unnest(CAST(:lexemes AS text[])) AS l(lexeme)"
            ),
            {"f_tenant": params["f_tenant"], "lexemes": lexemes},
        ).all()
        terms: list[str] = []
        bind: dict[str, Any] = {}
        for i, (lexeme, df, total) in enumerate(stats):
            if not df:
                continue
            idf = math.log(1.0 + (total - df + 0.5) / (df + 0.5))
            bind[f"lx{i}"] = lexeme
            terms.append(
                f"{idf:.6f} * ts_rank('{_PG_WEIGHTS}', t.tsv, "
                f"to_tsquery('simple', quote_literal(:lx{i})), 1)"
            )
        if not terms:
            return []
        any_term = " || ".join(f"to_tsquery('simple', quote_literal(:{name}))" for name in bind)
        rows = conn.execute(
            text(
                f"SELECT m.pk, ({' + '.join(terms)}) AS score FROM media_text t "
                f"JOIN media m ON m.pk = t.pk WHERE t.tsv @@ ({any_term}) AND {where} "
                "ORDER BY score DESC, m.pk LIMIT :k"
            ),
            {**params, **bind, "k": k},
        ).all()
        return [(int(pk), float(score)) for pk, score in rows]

    def check(self, conn: Connection) -> KeywordIndexReport:
        missing = conn.execute(
            text("SELECT pk FROM media WHERE pk NOT IN (SELECT pk FROM media_text)")
        )
        orphaned = conn.execute(
            text("SELECT pk FROM media_text WHERE pk NOT IN (SELECT pk FROM media)")
        )
        stale = conn.execute(
            text(
                "SELECT m.pk FROM media m JOIN media_text t ON t.pk = m.pk WHERE t.title <> m.title"
            )
        )
        return KeywordIndexReport(
            [int(r[0]) for r in missing], [int(r[0]) for r in orphaned], [int(r[0]) for r in stale]
        )

    def rebuild(self, conn: Connection, items: list[tuple[int, MediaItem]]) -> int:
        conn.execute(text("DELETE FROM media_text"))
        for pk, item in items:
            self.index(conn, pk, item)
        return len(items)
