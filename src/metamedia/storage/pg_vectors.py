"""The vector role on PostgreSQL with pgvector: k-nearest search inside a filter.

Vectors live in `media_vectors` (one row per media pk, deleted with its media
row) under an HNSW index on inner product. Each row also carries a copy of its
item's filter attributes (tenant, type, visibility, owner and viewers, language,
years, rating, maturity, genres, platforms; `ATTRIBUTES`), so that a search reads
one table: the HNSW walk decides each visited row from the row itself, and the
exact plan is an indexed scan of this table alone. Before the copy a search
joined `media` and ran the link tables' subqueries for every visited row, which
cost most of the time under a filter (`python -m bench storage`, 36k films,
decade filter: p95 45 ms against raw pgvector's 4 ms).

The copy is made in SQL from the catalog's tables (`ATTRIBUTE_SQL`), never from
what a caller hands `upsert`: one mapping, inside the transaction that writes
the item, so it cannot disagree with the media row. Every catalog write refreshes
it (`PostgresCatalog._after_write`, which calls `write` or `refresh_attributes`),
a delete cascades, and migration 0005 backfills tables made before the columns.
The SQL evaluator of the filter model over these columns is
`storage.filters.vector_filter_sql`.

Why not just `ORDER BY embedding <#> q LIMIT k` with the filter in WHERE: an
HNSW scan returns `hnsw.ef_search` (default 40) candidates and PostgreSQL then
drops those the filter rejects, so a filter passing 1% of the rows returns
about 0.4 rows instead of 10 (0 to 2 on the contract catalog). The role promises
to fill `k` whenever `k` items pass the filter, so `search` picks a plan by how
many rows pass the filter (counted up to `EXACT_MAX_ROWS` + 1, and remembered per
filter for a minute):

- few (at most `EXACT_MAX_ROWS`): exact inner products over just the allowed
  rows, found through the attribute indexes, with the HNSW index kept out of the
  plan;
- more: an HNSW scan with pgvector's iterative scan (`relaxed_order`), which
  keeps walking the graph until enough rows pass, then a re-sort by distance;
- if that still comes back short (the scan hit `hnsw.max_scan_tuples`, or the
  remembered count is out of date): the exact plan.

Needs pgvector 0.8 or later (iterative scans) and PostgreSQL 14 or later
(multiranges). The table is made by `ensure_schema` / `create_index` (its width
is the embedding model's, known only when the store opens).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector.psycopg import register_vector
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine

from metamedia.engine.payload import AttributeFilter, ItemAttributes
from metamedia.storage.filters import vector_filter_sql

TABLE = "media_vectors"
INDEX = "ix_media_vectors_hnsw"

# The filter attributes each vector row carries: column, type. Multi-valued fields
# are arrays (tested with `&&`); `years` is the item's year and its other release
# years as one multirange, so a year range is a single `&&` a GiST index serves.
ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("tenant", "text NOT NULL"),
    ("type", "text NOT NULL"),
    ("public", "boolean NOT NULL"),
    ("owner", "text"),
    ("viewers", "text[] NOT NULL"),
    ("language", "text"),
    ("years", "int4multirange NOT NULL"),
    ("rating", "double precision"),
    ("maturity_level", "integer NOT NULL"),
    ("genres", "text[] NOT NULL"),
    ("platforms", "text[] NOT NULL"),
)
ATTRIBUTE_NAMES = ", ".join(name for name, _ in ATTRIBUTES)

# The same attributes computed from the catalog's tables for the media row `m`, in
# the order of ATTRIBUTES: the one mapping from the catalog to the vector table.
ATTRIBUTE_SQL = (
    "m.tenant, m.type, m.visibility = 'public', m.owner, "
    "ARRAY(SELECT x.viewer FROM media_viewer x WHERE x.pk = m.pk ORDER BY 1), "
    "m.language, "
    "(SELECT coalesce(range_agg(int4range(y.year, y.year, '[]')), '{}') FROM "
    "(SELECT m.year AS year WHERE m.year IS NOT NULL "
    "UNION SELECT x.year FROM media_year x WHERE x.pk = m.pk) y), "
    "m.rating, m.maturity_level, "
    "ARRAY(SELECT x.genre FROM media_genre x WHERE x.pk = m.pk ORDER BY 1), "
    "ARRAY(SELECT x.platform FROM media_platform x WHERE x.pk = m.pk ORDER BY 1)"
)

# What the exact plan finds its rows through: a tenant's items of a type, a year
# range (GiST on the multirange), a genre or a platform (GIN on the arrays).
# PostgreSQL combines them (BitmapAnd) for a filter that names several. The GIN
# indexes take each write at once (`fastupdate = off`): with the default pending
# list, rows written since the last vacuum were read by every search that used the
# index (after a bulk load, the 1% filter of `python -m bench storage` took 5.1 ms
# p50 instead of 2.6).
ATTRIBUTE_INDEXES: tuple[tuple[str, str], ...] = (
    ("ix_media_vectors_tenant_type", "(tenant, type)"),
    ("ix_media_vectors_years", "USING gist (years)"),
    ("ix_media_vectors_genres", "USING gin (genres) WITH (fastupdate = off)"),
    ("ix_media_vectors_platforms", "USING gin (platforms) WITH (fastupdate = off)"),
)

# pgvector's defaults: m=16 links per node, ef_construction=64 candidates while
# building. On the 20k-item contract catalog they give recall@10 of 1.0 at
# ef_search 100 (tests/contract/test_vector_store.py); larger values cost build time
# and memory (the build already dominates that test) for recall that a higher
# ef_search buys more cheaply at query time.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64

# Up to this many allowed rows the exact plan is used. It costs a bitmap scan of the
# attribute indexes and an inner product per allowed row (1-2 ms per 1000 rows); the
# iterative HNSW scan costs a fixed walk plus about k / (fraction allowed) visited
# tuples, and far more when the query's neighbourhood holds few allowed rows, which
# gives it a long tail. p95 ms, exact / HNSW, on the 36k Wikipedia catalog (k=10, 40
# queries each, the attributes on the vector rows; a shared 2-core box): year ranges
# passing 1.2k rows 2.5 / 38, 2.4k 4.0 / 31, 5.2k 7.2 / 23, 7.5k 9.8 / 24, 10.7k 21 /
# 16, 18.3k 22 / 13; genres passing 1.7k 5.2 / 30, 4.4k 9.3 / 32, 7.1k 8.2 / 13,
# 10.5k 17 / 7.2. (Medians cross earlier, near 5k: 6.6 / 6.0 at 5.2k.) So the exact
# plan gets up to 8000 rows. (This catalog's rows are stored roughly in year order,
# so a year range's rows share pages; a genre's are spread over the table and cost
# up to ~1.5x more per row, which the genre numbers include.) The HNSW walk grows
# with the table (k * N / n visits for n allowed of N), so revisit this past ~100k
# items.
EXACT_MAX_ROWS = 8_000

# Candidates per HNSW round: pgvector's default, 4x the k of a result page, so that
# the first round alone fills 2k (see RERANK_FACTOR) under a broad filter. On the 36k
# Wikipedia catalog (k=10, `python -m bench storage`), recall@10 unfiltered was 0.972
# at 40, 0.980 at 64 and 0.985 at 100, with the time growing about linearly; under a
# 10% filter it was 0.977 at all three (the iterative scan adds rounds as needed).
# Raised to k when k is larger, up to pgvector's limit.
EF_SEARCH = 40
MAX_EF_SEARCH = 1_000

# The HNSW plan takes this many times k rows from the scan and keeps the best k.
# `relaxed_order` hands rows over round by round, and a later round can hold rows
# closer than the last ones of an earlier round; stopping at the first k that pass
# missed some. On the contract catalog, HNSW-only at a 1% filter: recall@10 0.965
# taking k, 0.99 taking 2k, 1.0 taking 4k, at about 1x / 2x / 4x the time. Broad
# filters fill 2k from the first round (ef_search candidates), so it is nearly free
# where the HNSW plan is normally used.
RERANK_FACTOR = 2

# The iterative scan gives up after visiting this many tuples (pgvector's default is
# 20 000). A filter passing fraction f needs about k / f visits to find k rows, so
# this covers f down to ~0.01% for k = 10; past it the exact plan takes over.
MAX_SCAN_TUPLES = 100_000

# How long a filter's count of passing rows picks its plan, and how many filters are
# remembered. A stale count costs speed, never an answer (see `_allowed_rows`).
COUNT_TTL_S = 60.0
COUNT_ENTRIES = 1024


class PgVectorStore:
    """`VectorStore` on a pgvector table that carries its items' filter attributes."""

    def __init__(
        self,
        engine: Engine,
        dim: int,
        *,
        exact_max_rows: int = EXACT_MAX_ROWS,
        ef_search: int = EF_SEARCH,
        max_scan_tuples: int = MAX_SCAN_TUPLES,
        rerank_factor: int = RERANK_FACTOR,
        count_ttl_s: float = COUNT_TTL_S,
    ) -> None:
        self.engine = engine
        self.dim = dim
        self.exact_max_rows = exact_max_rows
        self.ef_search = ef_search
        self.max_scan_tuples = max_scan_tuples
        self.rerank_factor = rerank_factor
        self.count_ttl_s = count_ttl_s
        self._lock = threading.Lock()
        self._counts: OrderedDict[AttributeFilter, tuple[int, float]] = OrderedDict()
        # How often each plan ran ("exact", "hnsw", "fallback"): what a metric or a
        # test reads to see which path served the searches.
        self.plans: Counter[str] = Counter()
        self._vector = VECTOR(dim)

    # -- schema -------------------------------------------------------------

    def ensure_schema(self, *, index: bool = True) -> None:
        """Create the table (and its indexes unless `index` is false) if missing.

        Bulk loads should pass `index=False`, load, then `create_index()`: pgvector
        builds an index over existing rows far faster than it inserts row by row (and
        a GIN index filled row by row first keeps the rows in a pending list that every
        search then reads).
        """
        with self.engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
            columns = "".join(f", {name} {kind}" for name, kind in ATTRIBUTES)
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                "pk BIGINT PRIMARY KEY REFERENCES media(pk) ON DELETE CASCADE, "
                f"embedding vector({int(self.dim)}) NOT NULL{columns})"
            )
        if index:
            self.create_index()

    def create_index(self) -> None:
        """The attribute indexes and the HNSW index on inner product (`<#>`), if missing."""
        with self.engine.begin() as conn:
            for name, how in ATTRIBUTE_INDEXES:
                conn.exec_driver_sql(f"CREATE INDEX IF NOT EXISTS {name} ON {TABLE} {how}")
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {INDEX} ON {TABLE} "
                f"USING hnsw (embedding vector_ip_ops) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
            )

    # -- writes -------------------------------------------------------------

    def upsert(self, rows: Sequence[tuple[int, npt.NDArray[np.float32], ItemAttributes]]) -> None:
        """Store or replace the vectors of catalog items. The catalog must already hold
        each pk; the attributes handed in are not used: the row's copy is made from the
        catalog's tables (`ATTRIBUTE_SQL`), which are what the other SQL evaluates.

        Rows go by binary COPY into a temporary table and from there into the table
        in one statement: text literals cost ~1.5 ms a row to format and parse, which
        made a 20k-row load take half a minute.
        """
        latest = {int(pk): vector for pk, vector, _attrs in rows}
        if not latest:
            return
        with self.engine.begin() as conn:
            self.write(conn, latest)

    def write(self, conn: Connection, vectors: dict[int, npt.NDArray[np.float32]]) -> None:
        """Store or replace vectors, with their items' attributes as the catalog's tables
        hold them now, inside the caller's transaction (the catalog writes an item's
        vector in the transaction that writes the item). A pk with no media row fails
        (NOT NULL tenant), as the foreign key would."""
        latest = {int(pk): self._checked(vector) for pk, vector in vectors.items()}
        if not latest:
            return
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        register_vector(raw)
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {TABLE}_load "
            f"(pk BIGINT, embedding vector({int(self.dim)})) ON COMMIT DROP"
        )
        conn.exec_driver_sql(f"TRUNCATE {TABLE}_load")  # a second write in one transaction
        with raw.cursor() as cursor:
            copy_sql = f"COPY {TABLE}_load (pk, embedding) FROM STDIN WITH (FORMAT BINARY)"
            with cursor.copy(copy_sql) as copy:
                copy.set_types(["int8", "vector"])
                for pk, vector in latest.items():
                    copy.write_row((pk, vector))
        updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in ("embedding", *_names()))
        conn.exec_driver_sql(
            f"INSERT INTO {TABLE} (pk, embedding, {ATTRIBUTE_NAMES}) "
            f"SELECT l.pk, l.embedding, {ATTRIBUTE_SQL} FROM {TABLE}_load l "
            f"LEFT JOIN media m ON m.pk = l.pk ON CONFLICT (pk) DO UPDATE SET {updates}"
        )
        self.forget_counts()

    def refresh_attributes(self, conn: Connection, pks: Sequence[int]) -> None:
        """Copy the attributes of these items from the catalog's tables again, inside
        the caller's transaction: for items written without a new vector (pks without
        a vector row are skipped)."""
        if not pks:
            return
        conn.execute(
            text(
                f"UPDATE {TABLE} v SET ({ATTRIBUTE_NAMES}) = "
                f"(SELECT {ATTRIBUTE_SQL} FROM media m WHERE m.pk = v.pk) "
                "WHERE v.pk = ANY(CAST(:pks AS bigint[]))"
            ),
            {"pks": [int(pk) for pk in pks]},
        )
        self.forget_counts()

    def remove(self, pks: Sequence[int]) -> None:
        """Drop vectors; unknown pks are ignored."""
        if not pks:
            return
        with self.engine.begin() as conn:
            conn.execute(
                text(f"DELETE FROM {TABLE} WHERE pk = ANY(CAST(:pks AS bigint[]))"),
                {"pks": [int(pk) for pk in pks]},
            )
        self.forget_counts()

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one())

    # -- search -------------------------------------------------------------

    def search(
        self, vector: npt.NDArray[np.float32], k: int, flt: AttributeFilter
    ) -> list[tuple[int, float]]:
        """Top-k (pk, inner product) inside the filter, best first; one transaction."""
        query = self._checked(vector)
        if k <= 0:
            return []
        where, params = vector_filter_sql(flt, alias="v")
        params = {**params, "q": query, "k": k}
        with self.engine.begin() as conn:
            if self._allowed_rows(conn, flt, where, params) <= self.exact_max_rows:
                self.plans["exact"] += 1
                return self._exact(conn, where, params)
            found = self._hnsw(conn, where, params)
            if len(found) >= k:
                self.plans["hnsw"] += 1
                return found
            # Short although the filter passed more than exact_max_rows >= k rows when
            # counted: the scan stopped at max_scan_tuples, or rows left the filter
            # since. Exact over every allowed row is right either way.
            self.plans["fallback"] += 1
            return self._exact(conn, where, params)

    def forget_counts(self) -> None:
        """Drop the cached filter counts (writes through this store call it; other
        writers are covered by the counts' time to live)."""
        with self._lock:
            self._counts.clear()

    def _allowed_rows(
        self, conn: Connection, flt: AttributeFilter, where: str, params: dict[str, Any]
    ) -> int:
        """How many vector rows pass the filter, counted up to `exact_max_rows` + 1.

        The count only picks a plan, and every plan is right for any count (a scan
        that comes back short falls back to the exact plan), so it is kept per filter
        for `count_ttl_s`: the same few filter shapes repeat (a tenant's catalog, a
        decade, a genre), and counting them cost as much as the search.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._counts.get(flt)
            if hit is not None and now - hit[1] < self.count_ttl_s:
                self._counts.move_to_end(flt)
                return hit[0]
        statement = text(
            f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} v WHERE {where} LIMIT :cap) c"
        )
        counted = int(
            conn.execute(statement, {**params, "cap": self.exact_max_rows + 1}).scalar_one()
        )
        with self._lock:
            self._counts[flt] = (counted, now)
            self._counts.move_to_end(flt)
            while len(self._counts) > COUNT_ENTRIES:
                self._counts.popitem(last=False)
        return counted

    def _exact(
        self, conn: Connection, where: str, params: dict[str, Any]
    ) -> list[tuple[int, float]]:
        """The exact top-k among the rows that pass the filter.

        The rows are found through the attribute indexes (a bitmap scan of this one
        table) and their distances computed in a materialized CTE: the HNSW index only
        serves an ORDER BY on `embedding <#> q` straight over its table, so the planner
        cannot put the (approximate) index scan under this query. Ties break on pk so
        that the answer is deterministic.
        """
        statement = text(
            f"WITH scored AS MATERIALIZED (SELECT v.pk, v.embedding <#> CAST(:q AS vector) AS d "
            f"FROM {TABLE} v WHERE {where}) "
            "SELECT pk, d FROM scored ORDER BY d, pk LIMIT :k"
        ).bindparams(bindparam("q", type_=self._vector))
        return [(int(pk), -float(d)) for pk, d in conn.execute(statement, params)]

    def _hnsw(
        self, conn: Connection, where: str, params: dict[str, Any]
    ) -> list[tuple[int, float]]:
        """Approximate top-k by an iterative HNSW scan, re-sorted by distance.

        `relaxed_order` lets later rounds return rows closer than earlier ones, so
        the scan is asked for `rerank_factor` * k rows, sorted again here, and the
        best k kept. Sorting and sequential scans are disabled for this transaction
        so that the planner takes the index scan even where its selectivity estimate
        makes a bitmap scan and a sort look cheaper (that is the exact plan's job,
        chosen above on a real count).
        """
        ef = min(MAX_EF_SEARCH, max(self.ef_search, int(params["k"])))
        # One round trip; the values are integers formatted here, never caller text.
        conn.exec_driver_sql(
            "SET LOCAL hnsw.iterative_scan = relaxed_order; "
            f"SET LOCAL hnsw.ef_search = {int(ef)}; "
            f"SET LOCAL hnsw.max_scan_tuples = {int(self.max_scan_tuples)}; "
            "SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off"
        )
        statement = text(
            f"SELECT v.pk, v.embedding <#> CAST(:q AS vector) AS d FROM {TABLE} v "
            f"WHERE {where} ORDER BY v.embedding <#> CAST(:q AS vector) LIMIT :window"
        ).bindparams(bindparam("q", type_=self._vector))
        k = int(params["k"])
        window = {**params, "window": k * max(1, self.rerank_factor)}
        rows = [(int(pk), float(d)) for pk, d in conn.execute(statement, window)]
        rows.sort(key=lambda row: (row[1], row[0]))
        return [(pk, -d) for pk, d in rows[:k]]

    def _checked(self, vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        flat = np.asarray(vector, dtype=np.float32).reshape(-1)
        if flat.shape[0] != self.dim:
            raise ValueError(f"vector has {flat.shape[0]} dimensions, the store {self.dim}")
        return flat


def _names() -> list[str]:
    return [name for name, _ in ATTRIBUTES]
