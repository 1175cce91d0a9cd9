"""Database statement timing through SQLAlchemy engine events.

Two events per statement, a `perf_counter` pair and one histogram observation:
cheap enough for every query. The statement text is never recorded (it can
hold personal data); only its operation (first keyword) labels the histogram.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from metamedia.observability.metrics import Metrics, observe_db

OPERATIONS = frozenset({"select", "insert", "update", "delete"})


def operation_of(statement: str) -> str:
    """select / insert / update / delete, or "other" (pragmas, DDL, CTEs...)."""
    head = statement[:16].lstrip()[:6].lower()
    return head if head in OPERATIONS else "other"


def time_queries(engine: Engine, metrics: Metrics) -> Callable[[], None]:
    """Time every statement `engine` runs into `metrics`; returns the undo."""
    key = f"metamedia.query_started.{id(metrics)}"

    def before(
        conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        conn.info[key] = time.perf_counter()

    def after(
        conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        started = conn.info.pop(key, None)
        if started is not None:
            observe_db(metrics, operation_of(statement), time.perf_counter() - started)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)

    def undo() -> None:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)

    return undo
