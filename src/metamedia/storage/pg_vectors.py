"""The vector role on PostgreSQL with pgvector: k-nearest search inside a filter.

Vectors live in `media_vectors` (one row per media pk, deleted with its media
row) under an HNSW index on inner product. The filter attributes are *not*
copied here: the catalog's `media` table (and its genre, platform, year and
viewer tables) already hold them, so a search joins `media m` and uses the one
SQL evaluator of the filter model (`storage.filters.filter_sql`). `upsert`
therefore stores only vectors and ignores the `ItemAttributes` it is handed;
the catalog must hold the media row first (the foreign key says so).

Why not just `ORDER BY embedding <#> q LIMIT k` with the filter in WHERE: an
HNSW scan returns `hnsw.ef_search` (default 40) candidates and PostgreSQL then
drops those the filter rejects, so a filter passing 1% of the rows returns
about 0.4 rows instead of 10 (0 to 2 on the contract catalog). The role promises
to fill `k` whenever `k` items pass the filter, so `search` picks a plan by how
many rows pass the filter (counted up to `EXACT_MAX_ROWS` + 1, and remembered per
filter for a minute):

- few (at most `EXACT_MAX_ROWS`): exact inner products over just the allowed
  rows, with the HNSW index kept out of the plan;
- more: an HNSW scan with pgvector's iterative scan (`relaxed_order`), which
  keeps walking the graph until enough rows pass, then a re-sort by distance;
- if that still comes back short (the scan hit `hnsw.max_scan_tuples`, or the
  remembered count is out of date): the exact plan.

Needs pgvector 0.8 or later (iterative scans). The DDL lives in `ensure_schema`
/ `create_index` for now; an Alembic revision will take it over.
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
from metamedia.storage.filters import filter_sql

TABLE = "media_vectors"
INDEX = "ix_media_vectors_hnsw"

# pgvector's defaults: m=16 links per node, ef_construction=64 candidates while
# building. On the 20k-item contract catalog they give recall@10 of 1.0 at
# ef_search 100 (tests/contract/test_vector_store.py); larger values cost build time
# and memory (the build already dominates that test) for recall that a higher
# ef_search buys more cheaply at query time.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64

# Up to this many allowed rows the exact plan is used. It costs a primary-key probe
# and an inner product per allowed row; the iterative HNSW scan costs a fixed walk
# plus about k / (fraction allowed) visited tuples, each a distance and a filter
# check. Median ms per search on the 20k-item contract catalog with year-range
# filters, exact / HNSW (a shared 2-core box, so noisy): 250 rows 10 / 36, 500 rows
# 15 / 15, 1000 rows 15 / 9, 2000 rows 17 / 5, 20000 rows 77 / 4. Up to ~1000 the
# two cost about the same and the exact plan has perfect recall, so it gets them.
# The HNSW walk grows with the table (k * N / n visits for n allowed of N): the
# crossover moves up roughly as sqrt(k * N), so revisit this past ~100k items.
EXACT_MAX_ROWS = 1_000

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
    """`VectorStore` on a pgvector table joined to the catalog's media table."""

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
        """Create the table (and its HNSW index unless `index` is false) if missing.

        Bulk loads should pass `index=False`, load, then `create_index()`: pgvector
        builds an index over existing rows far faster than it inserts row by row.
        """
        with self.engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                "pk BIGINT PRIMARY KEY REFERENCES media(pk) ON DELETE CASCADE, "
                f"embedding vector({int(self.dim)}) NOT NULL)"
            )
        if index:
            self.create_index()

    def create_index(self) -> None:
        """The HNSW index on inner product (`<#>`), if missing."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE INDEX IF NOT EXISTS {INDEX} ON {TABLE} "
                f"USING hnsw (embedding vector_ip_ops) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
            )

    # -- writes -------------------------------------------------------------

    def upsert(self, rows: Sequence[tuple[int, npt.NDArray[np.float32], ItemAttributes]]) -> None:
        """Store or replace the vectors of catalog items (the attributes are ignored:
        searches read them from the media table, which must already hold each pk).

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
        """Store or replace vectors inside the caller's transaction (the catalog writes
        an item's vector in the transaction that writes the item)."""
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
        conn.exec_driver_sql(
            f"INSERT INTO {TABLE} (pk, embedding) SELECT pk, embedding FROM {TABLE}_load "
            "ON CONFLICT (pk) DO UPDATE SET embedding = EXCLUDED.embedding"
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
        where, params = filter_sql(flt, alias="m")
        params = {**params, "q": query, "k": k}
        with self.engine.begin() as conn:
            if self._allowed_rows(conn, flt, where, params) <= self.exact_max_rows:
                self.plans["exact"] += 1
                return self._exact(conn, where, params)
            found = self._hnsw(conn, flt, params)
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
        """How many rows pass the filter, counted up to `exact_max_rows` + 1.

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
        statement = text(f"SELECT count(*) FROM (SELECT 1 FROM media m WHERE {where} LIMIT :cap) c")
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

        The HNSW index only serves an ORDER BY on `embedding <#> q` straight over
        its table; the distances are computed in a materialized CTE without one, so
        the planner cannot put the (approximate, filter-blind) index scan under this
        query. The lateral lookup (`OFFSET 0` keeps it from being flattened) holds
        the join to one primary-key probe per allowed row: the planner otherwise
        hashed the allowed rows against a scan of every vector in the table. Media
        rows without a vector are joined away. Ties break on pk so that the answer
        is deterministic.
        """
        statement = text(
            f"WITH allowed AS MATERIALIZED (SELECT m.pk FROM media m WHERE {where}), "
            "scored AS MATERIALIZED (SELECT a.pk, v.embedding <#> CAST(:q AS vector) AS d "
            f"FROM allowed a CROSS JOIN LATERAL (SELECT embedding FROM {TABLE} "
            "WHERE pk = a.pk OFFSET 0) v) "
            "SELECT pk, d FROM scored ORDER BY d, pk LIMIT :k"
        ).bindparams(bindparam("q", type_=self._vector))
        return [(int(pk), -float(d)) for pk, d in conn.execute(statement, params)]

    def _hnsw(
        self, conn: Connection, flt: AttributeFilter, params: dict[str, Any]
    ) -> list[tuple[int, float]]:
        """Approximate top-k by an iterative HNSW scan, re-sorted by distance.

        `relaxed_order` lets later rounds return rows closer than earlier ones, so
        the scan is asked for `rerank_factor` * k rows, sorted again here, and the
        best k kept. Sorting and sequential scans are disabled for
        this transaction so that the planner takes the index scan even where its
        selectivity estimate makes a full sort look cheaper (that is the exact plan's
        job, chosen above on a real count).
        """
        ef = min(MAX_EF_SEARCH, max(self.ef_search, int(params["k"])))
        # One round trip; both values are integers formatted here, never caller text.
        conn.exec_driver_sql(
            "SET LOCAL hnsw.iterative_scan = relaxed_order; "
            f"SET LOCAL hnsw.ef_search = {int(ef)}; "
            f"SET LOCAL hnsw.max_scan_tuples = {int(self.max_scan_tuples)}; "
            "SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off; "
            "SET LOCAL enable_material = off"
        )
        where, _ = filter_sql(flt, alias="m", probe=True)  # same parameters
        statement = text(
            f"SELECT v.pk, v.embedding <#> CAST(:q AS vector) AS d "
            f"FROM {TABLE} v JOIN media m ON m.pk = v.pk WHERE {where} "
            "ORDER BY v.embedding <#> CAST(:q AS vector) LIMIT :window"
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
