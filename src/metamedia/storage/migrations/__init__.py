"""Alembic migrations of the relational store, run in-process by `storage.sql_migrate`.

A package (not a folder beside an alembic.ini) so the revisions ship in the wheel and
every backend, SQLite or PostgreSQL, upgrades from the same scripts on open.
"""

from __future__ import annotations

from pathlib import Path

SCRIPT_LOCATION = Path(__file__).resolve().parent
"""Where the revisions live: what alembic's `script_location` is set to."""
