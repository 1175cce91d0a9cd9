"""Bulk import of interactions from files, grouped per user, with per-row errors.

Re-importing the same file records nothing new: an event is identified by
(user, item, type, timestamp), so duplicates are counted, not stored twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamedia.formats.interactions import open_interactions
from metamedia.services.users import UserService

FLUSH_EVERY = 5000
MAX_REPORTED = 1000


@dataclass
class ImportReport:
    read: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0
    users: int = 0
    seconds: float = 0.0
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["events_per_s"] = round(self.read / self.seconds, 1) if self.seconds else 0.0
        data["seconds"] = round(self.seconds, 3)
        return data


class InteractionImporter:
    def __init__(self, users: UserService) -> None:
        self.users = users

    def import_path(
        self,
        path: Path,
        fmt: str = "auto",
        *,
        tenant: str = "default",
        progress: Callable[[int], None] | None = None,
    ) -> ImportReport:
        started = time.perf_counter()
        report = ImportReport()
        pending: dict[str, list[tuple[str, int, dict[str, Any]]]] = {}
        seen_users: set[str] = set()
        buffered = 0
        for record in open_interactions(path, fmt):
            report.read += 1
            if progress is not None:
                progress(1)
            data = record.data
            if record.error or data is None:
                self._reject(report, record.source, record.line, record.error or "empty row")
                continue
            user = data.get("user")
            if not isinstance(user, str | int) or str(user).strip() == "":
                self._reject(report, record.source, record.line, "missing or invalid 'user'")
                continue
            event = {k: v for k, v in data.items() if k != "user"}
            pending.setdefault(str(user), []).append((record.source, record.line, event))
            seen_users.add(str(user))
            buffered += 1
            if buffered >= FLUSH_EVERY:
                self._flush(tenant, pending, report)
                pending, buffered = {}, 0
        self._flush(tenant, pending, report)
        report.users = len(seen_users)
        report.seconds = time.perf_counter() - started
        return report

    def _flush(
        self,
        tenant: str,
        pending: dict[str, list[tuple[str, int, dict[str, Any]]]],
        report: ImportReport,
    ) -> None:
        for user, rows in pending.items():
            results = self.users.record(tenant, user, [e for _, _, e in rows], create_user=True)
            for result in results:
                source, line, _ = rows[result.index]
                if result.status == "recorded":
                    report.recorded += 1
                elif result.status == "duplicate":
                    report.duplicates += 1
                else:
                    self._reject(report, source, line, result.error or "rejected")

    @staticmethod
    def _reject(report: ImportReport, source: str, line: int, reason: str) -> None:
        report.rejected += 1
        if len(report.rejects) < MAX_REPORTED:
            report.rejects.append({"source": source, "line": line, "reason": reason})
