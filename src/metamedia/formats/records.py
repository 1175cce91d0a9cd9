"""The record type every reader yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_LINE_BYTES = 1 << 20  # one catalog row larger than 1 MiB is rejected, not parsed


@dataclass(frozen=True)
class RawRecord:
    """One input row: where it came from, and either its data or why it is unreadable."""

    source: str
    line: int
    data: dict[str, Any] | None = None
    error: str | None = None
    raw: str | None = None
