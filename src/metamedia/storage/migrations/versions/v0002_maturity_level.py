"""media.maturity_level: the item's maturity rating as a number SQL can compare.

`engine.payload.maturity_level` of the rating (-1: unknown), so a SQL filter with a
maturity limit agrees with the payload mask. Existing rows are backfilled from the JSON
`doc` column, read in Python rather than with json_extract / ->> so one revision serves
SQLite and PostgreSQL alike.

A data directory opened by the code between the column's arrival and Alembic's already
has the column, filled in: it is then left as it is.

Revision ID: 0002_maturity_level
Revises: 0001_baseline
Create Date: 2026-12-01
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from metamedia.engine.payload import maturity_level

revision: str = "0002_maturity_level"
down_revision: str | None = "0001_baseline"
branch_labels: str | None = None
depends_on: str | None = None

BATCH = 1000
UNKNOWN = -1

media = sa.table(
    "media",
    sa.column("pk", sa.Integer),
    sa.column("doc", sa.Text),
    sa.column("maturity_level", sa.Integer),
)


def upgrade() -> None:
    bind = op.get_bind()
    present = {c["name"] for c in sa.inspect(bind).get_columns("media")}
    if "maturity_level" in present:
        return
    # A plain ADD COLUMN on both dialects (SQLite allows NOT NULL with a default): no
    # batch table copy, which under foreign_keys=ON would cascade-delete the link rows.
    op.add_column(
        "media",
        sa.Column("maturity_level", sa.Integer, nullable=False, server_default=str(UNKNOWN)),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(media.c.pk, media.c.doc)
            .where(media.c.pk > last)
            .order_by(media.c.pk)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        last = rows[-1][0]
        levels = []
        for pk, doc in rows:
            rating = json.loads(doc).get("maturity_rating")
            level = maturity_level(rating) if isinstance(rating, str) else UNKNOWN
            if level != UNKNOWN:
                levels.append({"b_pk": pk, "b_level": level})
        if levels:
            bind.execute(
                media.update()
                .where(media.c.pk == sa.bindparam("b_pk"))
                .values(maturity_level=sa.bindparam("b_level")),
                levels,
            )


def downgrade() -> None:
    op.drop_column("media", "maturity_level")
