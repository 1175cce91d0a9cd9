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
to fill `k` whenever `k` items pass the filter, so `search` first counts the rows
passing the filter, up to `EXACT_MAX_ROWS` + 1, and picks a plan by the count:

- few (at most `EXACT_MAX_ROWS`): exact inner products over just the allowed
  rows, with the HNSW index kept out of the plan (same statement as the count);
- more: an HNSW scan with pgvector's iterative scan (`relaxed_order`), which
  keeps walking the graph until enough rows pass, then a re-sort by distance;
- if that still comes back short while at least `k` rows pass (the scan hit
  `hnsw.max_scan_tuples`): the exact plan.

Needs pgvector 0.8 or later (iterative scans). The DDL lives in `ensure_schema`
/ `create_index` for now; an Alembic revision will take it over.
"""

from __future__ import annotations

from collections import Counter
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

# Candidates per HNSW round (pgvector's default is 40): well above the k of a result
# page, which is what lets the first round alone fill k under a broad filter. Raised
# to k when k is larger, up to pgvector's limit.
EF_SEARCH = 100
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
    ) -> None:
        self.engine = engine
        self.dim = dim
        self.exact_max_rows = exact_max_rows
        self.ef_search = ef_search
        self.max_scan_tuples = max_scan_tuples
        self.rerank_factor = rerank_factor
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

    def remove(self, pks: Sequence[int]) -> None:
        """Drop vectors; unknown pks are ignored."""
        if not pks:
            return
        with self.engine.begin() as conn:
            conn.execute(
                text(f"DELETE FROM {TABLE} WHERE pk = ANY(CAST(:pks AS bigint[]))"),
                {"pks": [int(pk) for pk in pks]},
            )

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
            allowed, found = self._exact(conn, where, params, self.exact_max_rows)
            if allowed <= self.exact_max_rows:
                self.plans["exact"] += 1
                return found
            found = self._hnsw(conn, where, params)
            if len(found) >= k:
                self.plans["hnsw"] += 1
                return found
            # Short although more than exact_max_rows >= k rows pass: the scan stopped
            # at max_scan_tuples. Exact over every allowed row.
            self.plans["fallback"] += 1
            return self._exact(conn, where, params, None)[1]

    def _exact(
        self, conn: Connection, where: str, params: dict[str, Any], max_rows: int | None
    ) -> tuple[int, list[tuple[int, float]]]:
        """How many rows pass the filter (counted up to `max_rows` + 1) and, when no
        more than `max_rows` do (None: any number), the exact top-k among them.

        Counting and ranking share one statement so that the filter is evaluated
        once: the capped scan stops after `max_rows` + 1 rows however broad the
        filter, and when it does not stop, the rows it found are what gets ranked.
        (Shipping the allowed pks to the client and back instead cost ~4 us a pk in
        psycopg's array adaptation, more than ranking them.) Media rows without a
        vector count here and are joined away.

        The HNSW index only serves an ORDER BY on `embedding <#> q` straight over
        its table; the distances are computed in a materialized CTE without one, so
        the planner cannot put the (approximate, filter-blind) index scan under this
        query. The lateral lookup (`OFFSET 0` keeps it from being flattened) holds
        the join to one primary-key probe per allowed row: the planner, estimating
        the capped CTE at half its cap, otherwise hashed it against a scan of every
        vector in the table. Ties break on pk so that the answer is deterministic.
        """
        statement = text(
            f"WITH allowed AS MATERIALIZED (SELECT m.pk FROM media m WHERE {where} LIMIT :cap), "
            "total AS (SELECT count(*) AS n FROM allowed), "
            "scored AS MATERIALIZED (SELECT a.pk, v.embedding <#> CAST(:q AS vector) AS d "
            f"FROM allowed a CROSS JOIN LATERAL (SELECT embedding FROM {TABLE} "
            "WHERE pk = a.pk OFFSET 0) v WHERE (SELECT n FROM total) <= :max_rows), "
            "best AS (SELECT pk, d FROM scored ORDER BY d, pk LIMIT :k) "
            "SELECT t.n, b.pk, b.d FROM total t LEFT JOIN best b ON true ORDER BY b.d, b.pk"
        ).bindparams(bindparam("q", type_=self._vector))
        rows = conn.execute(
            statement,
            {
                **params,
                "cap": None if max_rows is None else max_rows + 1,
                "max_rows": 2**62 if max_rows is None else max_rows,
            },
        ).all()
        allowed = int(rows[0][0])
        return allowed, [(int(pk), -float(d)) for _, pk, d in rows if pk is not None]

    def _hnsw(
        self, conn: Connection, where: str, params: dict[str, Any]
    ) -> list[tuple[int, float]]:
        """Approximate top-k by an iterative HNSW scan, re-sorted by distance.

        `relaxed_order` lets later rounds return rows closer than earlier ones, so
        the scan is asked for `rerank_factor` * k rows, sorted again here, and the
        best k kept. Sorting and sequential scans are disabled for
        this transaction so that the planner takes the index scan even where its
        selectivity estimate makes a full sort look cheaper (that is the exact plan's
        job, chosen above on a real count).
        """
        conn.execute(
            text(
                "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                "set_config('hnsw.ef_search', :ef, true), "
                "set_config('hnsw.max_scan_tuples', :max_tuples, true), "
                "set_config('enable_sort', 'off', true), "
                "set_config('enable_seqscan', 'off', true)"
            ),
            {
                "ef": str(min(MAX_EF_SEARCH, max(self.ef_search, int(params["k"])))),
                "max_tuples": str(self.max_scan_tuples),
            },
        )
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
