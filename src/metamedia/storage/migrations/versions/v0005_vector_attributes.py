"""media_vectors carries its items' filter attributes (PostgreSQL with pgvector only).

The pgvector store (`storage/pg_vectors.py`) used to join `media` and its link
tables for every row an HNSW walk visited; it now reads a copy of the filter
attributes on the vector row itself (`storage.filters.vector_filter_sql`). A
database whose `media_vectors` was made before that gets the columns here,
filled from the catalog's tables, with their indexes.

The table is rebuilt rather than altered: filling a new column by UPDATE wrote a
second version of every ~1.6 kB row and inserted each into the HNSW index again
(47 s for one column on the 36k-film catalog, and a table twice its size until
vacuumed); copying into a new table and building the indexes afresh, as
`PgVectorStore` does after a bulk load, took 21 s for the whole revision on the
same database. The HNSW index is built again only if the table had one.

No `media_vectors` (SQLite, or pgvector never switched on): nothing to do; the store
makes the table with the columns when it first opens. A table that already has them
(made by the store after this revision shipped) is left as it is.

The SQL below is this revision's own copy of the store's DDL and mapping
(`pg_vectors.ATTRIBUTES` / `ATTRIBUTE_SQL` / `ATTRIBUTE_INDEXES` at the time), so
that the revision keeps doing the same thing when the store changes later.

Revision ID: 0005_vector_attributes
Revises: 0004_feed_order_indexes
Create Date: 2026-12-02
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision: str = "0005_vector_attributes"
down_revision: str | None = "0004_feed_order_indexes"
branch_labels: str | None = None
depends_on: str | None = None

TABLE = "media_vectors"
NEW = "media_vectors_rebuilt"
HNSW_INDEX = "ix_media_vectors_hnsw"

COLUMNS = (
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

INDEXES = (
    ("ix_media_vectors_tenant_type", "(tenant, type)"),
    ("ix_media_vectors_years", "USING gist (years)"),
    ("ix_media_vectors_genres", "USING gin (genres) WITH (fastupdate = off)"),
    ("ix_media_vectors_platforms", "USING gin (platforms) WITH (fastupdate = off)"),
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    inspector = sa.inspect(bind)
    if not inspector.has_table(TABLE):
        return
    if "tenant" in {c["name"] for c in inspector.get_columns(TABLE)}:
        return
    had_hnsw = HNSW_INDEX in {ix["name"] for ix in inspector.get_indexes(TABLE)}
    embedding_type = bind.execute(
        sa.text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = CAST(:t AS regclass) AND attname = 'embedding'"
        ),
        {"t": TABLE},
    ).scalar_one()
    if not re.fullmatch(r"vector\(\d+\)", embedding_type):
        raise RuntimeError(f"{TABLE}.embedding is {embedding_type!r}, expected vector(N)")
    names = ", ".join(name for name, _ in COLUMNS)
    columns = "".join(f", {name} {kind}" for name, kind in COLUMNS)
    op.execute(
        f"CREATE TABLE {NEW} (pk BIGINT PRIMARY KEY REFERENCES media(pk) ON DELETE CASCADE, "
        f"embedding {embedding_type} NOT NULL{columns})"
    )
    op.execute(
        f"INSERT INTO {NEW} (pk, embedding, {names}) "
        f"SELECT v.pk, v.embedding, {ATTRIBUTE_SQL} FROM {TABLE} v JOIN media m ON m.pk = v.pk"
    )
    op.execute(f"DROP TABLE {TABLE}")
    op.execute(f"ALTER TABLE {NEW} RENAME TO {TABLE}")
    # The names PostgreSQL gave the new table's key, foreign key (and, from 18, NOT NULL
    # constraints) carry its temporary name: give them the ones made as TABLE would have.
    constraints = bind.execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)"),
        {"t": TABLE},
    ).scalars()
    for name in sorted(constraints):
        if name.startswith(NEW + "_"):
            renamed = TABLE + name[len(NEW) :]
            op.execute(f'ALTER TABLE {TABLE} RENAME CONSTRAINT "{name}" TO "{renamed}"')
    for name, how in INDEXES:
        op.execute(f"CREATE INDEX {name} ON {TABLE} {how}")
    if had_hnsw:
        op.execute(
            f"CREATE INDEX {HNSW_INDEX} ON {TABLE} USING hnsw (embedding vector_ip_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
    op.execute(f"ANALYZE {TABLE}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not sa.inspect(bind).has_table(TABLE):
        return
    for name, _ in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    for name, _ in COLUMNS:
        op.execute(f"ALTER TABLE {TABLE} DROP COLUMN IF EXISTS {name}")
