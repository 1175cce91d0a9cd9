"""Copy one relational store into another: how a team moves off the embedded default.

Every table of the shared schema is copied in dependency order, primary keys
kept (interactions name media by pk, the outbox names items by pk), in batches
so a large catalog never sits in memory. Afterwards the target's sequences are
moved past the copied keys and its full-text index is built by the target's own
catalog. Derived vector indexes are not copied: each replica rebuilds them from
the stored embeddings, which are copied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Integer, Table, func, select, text
from sqlalchemy.engine import Connection, Engine

from metamedia.storage.sql_schema import metadata

BATCH_ROWS = 2000
# Tables that only SQLite has (FTS5 shadow tables) or that each store keeps itself.
NOT_COPIED = frozenset({"alembic_version"})

Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in table


@dataclass
class TransferReport:
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    mismatched: dict[str, tuple[int, int]] = field(default_factory=dict)  # source, target

    @property
    def ok(self) -> bool:
        return not self.mismatched


def copy_tables(source: Engine, target: Engine, progress: Progress | None = None) -> TransferReport:
    """Copy every schema table from `source` to an empty `target`; count both sides after.

    Refuses a target that already holds catalog items: merging two stores is not
    a copy, and silently mixing them would lose the answer to "which is right".
    """
    report = TransferReport()
    with target.connect() as conn:
        existing = conn.execute(
            select(func.count()).select_from(metadata.tables["media"])
        ).scalar_one()
    if existing:
        raise ValueError(
            f"the target already holds {existing} catalog items: copy into an empty store"
        )
    tables = [t for t in metadata.sorted_tables if t.name not in NOT_COPIED]
    with source.connect() as read, target.begin() as write:
        for table in tables:
            total = int(read.execute(select(func.count()).select_from(table)).scalar_one())
            if table.name == "meta":
                write.execute(table.delete())  # the target's own version rows are replaced
            copied = 0
            result = read.execution_options(yield_per=BATCH_ROWS).execute(select(table))
            for batch in result.partitions(BATCH_ROWS):
                write.execute(table.insert(), [dict(row._mapping) for row in batch])
                copied += len(batch)
                if progress is not None:
                    progress(table.name, copied, total)
            if progress is not None and total == 0:
                progress(table.name, 0, 0)
            report.rows[table.name] = copied
        if target.dialect.name == "postgresql":
            for table in tables:
                _advance_sequence(write, table)
    with source.connect() as a, target.connect() as b:
        for table in tables:
            left = int(a.execute(select(func.count()).select_from(table)).scalar_one())
            right = int(b.execute(select(func.count()).select_from(table)).scalar_one())
            if left != right:
                report.mismatched[table.name] = (left, right)
    return report


def _advance_sequence(conn: Connection, table: Table) -> None:
    """Move a serial key's sequence past the copied rows, or the next insert collides.

    `pg_get_serial_sequence` is NULL for a key without a sequence, and setval of
    NULL does nothing, so composite and foreign keys pass through harmlessly.
    """
    for column in table.primary_key.columns:
        if len(table.primary_key.columns) == 1 and isinstance(column.type, Integer):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f"coalesce((SELECT max({column.name}) FROM {table.name}), 0) + 1, false)"
                )
            )
