"""Baseline: the schema as of commit 24dcd78, the last one before Alembic.

Written out table by table rather than from `sql_schema.metadata`, which keeps moving
with the code: a revision has to mean the same thing forever. Portable across SQLite and
PostgreSQL; only SQLite gets the FTS5 table (PostgreSQL full-text search comes in a later
revision of its own).

It also adopts a data directory made before Alembic: such a database already has some
or all of these tables (older ones lack the later tables and `api_keys.tenant`), so
every table, index and column is created only when missing and the rows stay as they
are. On an empty database that is simply everything.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.sql.schema import SchemaItem

revision: str = "0001_baseline"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA_VERSION = "1"

# Verbatim from 24dcd78's sqlite_schema.FTS_DDL.
FTS_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS media_fts USING fts5("
    "title, description, people, tags, genres, "
    "tokenize = 'porter unicode61 remove_diacritics 2')"
)

TABLES = (
    "media",
    "media_genre",
    "media_platform",
    "media_year",
    "media_viewer",
    "embeddings",
    "outbox",
    "meta",
    "users",
    "interactions",
    "favorites",
    "user_vectors",
    "api_keys",
    "audit_log",
    "feature_definitions",
    "experiment_exposures",
    "experiment_outcomes",
)


class _Schema:
    """What the database holds already, so a pre-Alembic one is completed, not redone."""

    def __init__(self) -> None:
        inspector = sa.inspect(op.get_bind())
        self.tables = set(inspector.get_table_names())
        self.indexes = {
            name: {ix["name"] for ix in inspector.get_indexes(name)}
            for name in self.tables & set(TABLES)
        }
        self.api_key_columns = (
            {c["name"] for c in inspector.get_columns("api_keys")}
            if "api_keys" in self.tables
            else set()
        )

    def table(self, name: str, *elements: SchemaItem, **kw: Any) -> None:
        if name not in self.tables:
            op.create_table(name, *elements, **kw)
            self.tables.add(name)
            self.indexes[name] = set()

    def index(self, name: str, table: str, columns: list[str]) -> None:
        if name not in self.indexes.get(table, set()):
            op.create_index(name, table, columns)
            self.indexes.setdefault(table, set()).add(name)


def upgrade() -> None:
    schema = _Schema()

    schema.table(
        "media",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("year", sa.Integer),
        sa.Column("rating", sa.Float),
        sa.Column("language", sa.String(16)),
        sa.Column("visibility", sa.String(8), nullable=False),
        sa.Column("owner", sa.String(256)),
        sa.Column("popularity", sa.Float, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.Column("doc", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("tenant", "external_id", name="uq_media_tenant_id"),
        sqlite_autoincrement=True,
    )
    schema.index("ix_media_filter", "media", ["tenant", "type", "year"])

    for link, column in (
        ("media_genre", sa.Column("genre", sa.String(200), primary_key=True)),
        ("media_platform", sa.Column("platform", sa.String(200), primary_key=True)),
        ("media_year", sa.Column("year", sa.Integer, primary_key=True)),
        ("media_viewer", sa.Column("viewer", sa.String(256), primary_key=True)),
    ):
        schema.table(
            link,
            sa.Column(
                "pk",
                sa.Integer,
                sa.ForeignKey("media.pk", ondelete="CASCADE"),
                primary_key=True,
            ),
            column,
        )
    schema.index("ix_media_genre_genre", "media_genre", ["genre", "pk"])
    schema.index("ix_media_platform_platform", "media_platform", ["platform", "pk"])

    schema.table(
        "embeddings",
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    schema.table(
        "outbox",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pk", sa.Integer, nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )
    schema.table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )

    schema.table(
        "users",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("external_id", sa.String(256), nullable=False),
        sa.Column("preferences", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("tenant", "external_id", name="uq_users_tenant_id"),
        sqlite_autoincrement=True,
    )
    schema.table(
        "interactions",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "user_pk",
            sa.Integer,
            sa.ForeignKey("users.pk", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("media_pk", sa.Integer, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("context", sa.Text),
        sa.UniqueConstraint("user_pk", "media_pk", "type", "ts", name="uq_interaction_event"),
    )
    schema.index("ix_interactions_user_ts", "interactions", ["user_pk", "ts"])
    schema.index("ix_interactions_media_ts", "interactions", ["media_pk", "ts"])
    schema.table(
        "favorites",
        sa.Column(
            "user_pk",
            sa.Integer,
            sa.ForeignKey("users.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("media_pk", sa.Integer, primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    schema.table(
        "user_vectors",
        sa.Column(
            "user_pk",
            sa.Integer,
            sa.ForeignKey("users.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
    )

    had_api_keys = "api_keys" in schema.tables
    schema.table(
        "api_keys",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        # NULL: a platform key (may name any tenant); else the one tenant it acts for.
        sa.Column("tenant", sa.String(64)),
        sqlite_autoincrement=True,
    )
    if had_api_keys and "tenant" not in schema.api_key_columns:
        # Keys made before tenant-bound keys stay platform keys (NULL): what they were.
        op.add_column("api_keys", sa.Column("tenant", sa.String(64)))
    schema.table(
        "audit_log",
        sa.Column("pk", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(256), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )

    schema.table(
        "feature_definitions",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("config_hash", sa.String(64)),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    schema.table(
        "experiment_exposures",
        sa.Column("experiment", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("variant", sa.String(64), nullable=False),
        sa.Column("first_ts", sa.Float, nullable=False),
        sa.Column("last_ts", sa.Float, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    schema.index("ix_exposures_user", "experiment_exposures", ["tenant", "user_id"])
    schema.table(
        "experiment_outcomes",
        sa.Column("experiment", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("type", sa.String(16), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_ts", sa.Float, nullable=False),
    )

    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(FTS_DDL)
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    version = bind.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version"))
    if version.first() is None:
        op.execute(meta.insert().values(key="schema_version", value=SCHEMA_VERSION))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS media_fts")
    for name in reversed(TABLES):
        op.drop_table(name)
