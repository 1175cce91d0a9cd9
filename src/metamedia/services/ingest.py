"""Catalog ingestion: read, validate, embed what changed, write, index.

Rows are written in batches, each batch one transaction (items, embeddings,
keyword index rows and outbox entries together). A kill at any moment loses
at most the batch in flight, and re-running skips every committed row by
comparing row hashes, so there are no duplicates and nothing is lost.
Embeddings are keyed by (model, content hash): an unchanged text is never
embedded twice, even under another id.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from metamedia.domain import MediaItem
from metamedia.engine.embed import Embedder
from metamedia.engine.vectors import FloatArray
from metamedia.errors import ValidationFailed
from metamedia.formats.detect import open_catalog
from metamedia.formats.records import RawRecord
from metamedia.services.caching import Caches
from metamedia.services.indexing import IndexManager
from metamedia.services.validation import validate_item
from metamedia.storage.base import MediaRepository, WriteStatus

ProgressCallback = Callable[[int], None]
MAX_REPORTED_REJECTS = 1000  # all rejects go to the rejects file; the report keeps the first


@dataclass
class Reject:
    source: str
    line: int
    reason: str
    id: str | None = None


@dataclass
class IngestReport:
    format: str = ""
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicates: int = 0
    embedded: int = 0
    seconds: float = 0.0
    rejects_file: str | None = None
    rejects: list[Reject] = field(default_factory=list)

    @property
    def items_per_s(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self, max_rejects: int = 50) -> dict[str, object]:
        data = asdict(self)
        data["items_per_s"] = round(self.items_per_s, 1)
        data["seconds"] = round(self.seconds, 3)
        data["rejects"] = [asdict(r) for r in self.rejects[:max_rejects]]
        return data


class _RejectsWriter:
    """Opens the rejects file lazily: a clean ingest leaves no empty file behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def write(self, reject: Reject, raw: str | None) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        record = {**asdict(reject), "raw": raw[:2000] if raw else None}
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> str | None:
        if self._handle is None:
            return None
        self._handle.close()
        return str(self.path)


class IngestService:
    def __init__(
        self,
        repo: MediaRepository,
        embedder: Embedder,
        indexes: IndexManager,
        rejects_dir: Path,
        caches: Caches,
        batch_size: int = 256,
    ) -> None:
        self.caches = caches
        self.repo = repo
        self.embedder = embedder
        self.indexes = indexes
        self.rejects_dir = rejects_dir
        self.batch_size = batch_size

    def ingest_path(
        self,
        path: Path,
        fmt: str = "auto",
        *,
        tenant: str = "default",
        progress: ProgressCallback | None = None,
    ) -> IngestReport:
        resolved, records = open_catalog(path, fmt)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        rejects = _RejectsWriter(self.rejects_dir / f"{stamp}-{path.name}.rejects.jsonl")
        report = IngestReport(format=resolved)
        try:
            self._run(records, report, rejects, tenant, progress)
        finally:
            report.rejects_file = rejects.close()
        return report

    def _run(
        self,
        records: Iterable[RawRecord],
        report: IngestReport,
        rejects: _RejectsWriter,
        tenant: str,
        progress: ProgressCallback | None,
    ) -> None:
        started = time.perf_counter()
        batch: list[MediaItem] = []
        for record in records:
            report.read += 1
            item = self._validate(record, report, rejects, tenant)
            if item is not None:
                batch.append(item)
            if len(batch) >= self.batch_size:
                self._flush(batch, report)
                batch = []
            if progress is not None:
                progress(1)
        if batch:
            self._flush(batch, report)
        self.indexes.sync()
        self.indexes.flush()
        report.seconds = time.perf_counter() - started

    @staticmethod
    def _validate(
        record: RawRecord, report: IngestReport, rejects: _RejectsWriter, tenant: str
    ) -> MediaItem | None:
        reason = record.error
        item = None
        if reason is None and record.data is not None:
            try:
                item = validate_item(record.data, tenant)
            except ValidationFailed as exc:
                reason = exc.message
        if item is None:
            raw_id = record.data.get("id") if record.data else None
            reject = Reject(
                record.source, record.line, reason or "empty row", str(raw_id) if raw_id else None
            )
            report.rejected += 1
            if len(report.rejects) < MAX_REPORTED_REJECTS:
                report.rejects.append(reject)
            rejects.write(reject, record.raw)
        return item

    def _flush(self, batch: list[MediaItem], report: IngestReport) -> None:
        unique: dict[tuple[str, str], MediaItem] = {}
        for item in batch:
            unique[(item.tenant, item.id)] = item
        report.duplicates += len(batch) - len(unique)
        statuses, embedded = self.write_items(list(unique.values()), sync=False)
        report.embedded += embedded
        for status in statuses:
            setattr(report, status, getattr(report, status) + 1)

    def write_items(
        self, items: Sequence[MediaItem], *, sync: bool = True
    ) -> tuple[list[WriteStatus], int]:
        """Upsert validated items; embeds only texts whose vectors are not stored yet."""
        changed = self._changed(items)
        hashes = {item.content_hash(): item.embedding_text() for item in changed}
        known = self.repo.known_embeddings(self.embedder.name, list(hashes))
        vectors: dict[str, FloatArray] = {}
        todo: list[str] = []
        for h in hashes:
            if h in known:
                continue
            # Encoded earlier in this process but not stored (a failed or retried write).
            cached = self.caches.item_embedding.get((self.embedder.name, h))
            if cached is None:
                todo.append(h)
            else:
                vectors[h] = cached
        if todo:
            encoded = self.embedder.encode([hashes[h] for h in todo])
            for i, h in enumerate(todo):
                vectors[h] = encoded[i]
                self.caches.item_embedding.set((self.embedder.name, h), encoded[i])
        statuses = self.repo.write_batch(items, vectors, self.embedder.name)
        if sync:
            self.indexes.sync()
        return statuses, len(todo)

    def _changed(self, items: Sequence[MediaItem]) -> list[MediaItem]:
        by_tenant: dict[str, list[MediaItem]] = {}
        for item in items:
            by_tenant.setdefault(item.tenant, []).append(item)
        changed: list[MediaItem] = []
        for tenant, group in by_tenant.items():
            stored = self.repo.hashes(tenant, [item.id for item in group])
            for item in group:
                previous = stored.get(item.id)
                if previous is None or previous.row_hash != item.row_hash():
                    changed.append(item)
        return changed
