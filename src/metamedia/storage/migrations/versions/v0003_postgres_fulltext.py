"""PostgreSQL full text: `media_text`, a weighted tsvector per item with a GIN index.

Only PostgreSQL gets it (SQLite's full text is FTS5, made in the baseline). The
catalog (`storage/fulltext.PostgresFullText`) writes a row in the same transaction
as each item, so the table is never behind; rows of a store that had none are
built by `metamedia index rebuild` or by `migrate-store`. The extensions it needs
(unaccent, and vector for the item vectors) are created here when missing, which
needs a role allowed to create them.

Revision ID: 0003_postgres_fulltext
Revises: 0002_maturity_level
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision: str = "0003_postgres_fulltext"
down_revision: str | None = "0002_maturity_level"
branch_labels: str | None = None
depends_on: str | None = None


def _postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def upgrade() -> None:
    if not _postgres():
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        "CREATE TABLE IF NOT EXISTS media_text ("
        "pk INTEGER PRIMARY KEY REFERENCES media(pk) ON DELETE CASCADE, "
        "title TEXT NOT NULL, tsv TSVECTOR NOT NULL)"
    )
    op.execute("CREATE INDEX IF NOT EXISTS ix_media_text_tsv ON media_text USING GIN (tsv)")


def downgrade() -> None:
    if _postgres():
        op.execute("DROP TABLE IF EXISTS media_text")
