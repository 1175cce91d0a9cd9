"""Alembic environment: migrations run on a connection the caller already holds.

`storage.sql_migrate` opens the connection, takes the migration lock (BEGIN IMMEDIATE on
SQLite, an advisory lock on PostgreSQL) and passes it in `config.attributes`; running
inside that transaction keeps the lock until every revision is applied. There is no
offline (SQL script) mode: nothing here is deployed by hand.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "metamedia migrations run through metamedia.storage.sql_migrate.upgrade_database, "
        "which passes an open connection in config.attributes['connection']"
    )
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
