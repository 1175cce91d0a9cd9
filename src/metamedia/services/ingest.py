"""Catalog ingestion: read, validate, merge, embed what changed, write, index.

Rows are written in batches, each batch one transaction (items, embeddings,
keyword index rows and outbox entries together). A kill at any moment loses
at most the batch in flight, and re-running skips every committed row by
comparing row hashes, so there are no duplicates and nothing is lost.
Embeddings are keyed by (model, content hash): an unchanged text is never
embedded twice, even under another id.

Rows that share an id within one input are merged, never overwritten: the
earliest-year row stays the item, the others' titles and years become its
alternate titles and release years (the full rule is in
`metamedia.domain.merge`). To keep ingest streaming, a cheap first pass over
the input (it is a path, so it can be read twice) only collects ids and notes
which repeat; the second pass writes every other row as it comes and holds a
repeated id's rows until its last one is read, so memory grows with the
repeats, not the catalog. A row without an id gets a stable one derived from
type, title and year (`metamedia.domain.derived_id`). The report counts
folded rows as `merged` (the merged item itself is inserted, updated or
unchanged like any other) and ids given as `ids_assigned`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from metamedia.domain import MediaItem, merge_items
from metamedia.engine.embed import Embedder
from metamedia.engine.passages import item_passages, item_title_text
from metamedia.errors import ValidationFailed
from metamedia.formats.detect import open_catalog
from metamedia.formats.records import RawRecord
from metamedia.services.caching import Caches
from metamedia.services.heap import release_free_heap
from metamedia.services.indexing import IndexManager
from metamedia.services.item_vectors import ItemText
from metamedia.services.validation import RowKey, row_key, validate_item, with_id
from metamedia.storage.records import WriteStatus
from metamedia.storage.roles import CatalogStore

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
    merged: int = 0
    ids_assigned: int = 0
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
        repo: CatalogStore,
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
        release_encoder: bool = False,
    ) -> IngestReport:
        """Ingest a catalog file or directory. `release_encoder`: a one-shot process
        (the CLI) drops the model once every row is embedded, so that its working
        memory is not held while the indexes are built (the peak of a bulk ingest)."""
        started = time.perf_counter()  # the first pass counts in the reported time
        resolved, records = open_catalog(path, fmt)
        repeated = repeated_keys(open_catalog(path, resolved)[1], tenant)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        rejects = _RejectsWriter(self.rejects_dir / f"{stamp}-{path.name}.rejects.jsonl")
        report = IngestReport(format=resolved)
        try:
            rows = _Merging(records, repeated, tenant, report)
            self._run(rows, report, rejects, progress, started, release_encoder)
        finally:
            report.rejects_file = rejects.close()
        return report

    def _run(
        self,
        rows: _Merging,
        report: IngestReport,
        rejects: _RejectsWriter,
        progress: ProgressCallback | None,
        started: float,
        release_encoder: bool = False,
    ) -> None:
        batch: list[MediaItem] = []
        for record, data in rows.read():
            report.read += 1
            rows.accept(self._validate(record, data, report, rejects, rows.tenant))
            batch.extend(rows.ready())
            if len(batch) >= self.batch_size:
                self._flush(batch, report)
                batch = []
            if progress is not None:
                progress(1)
        batch.extend(rows.leftovers())
        if batch:
            self._flush(batch, report)
        if release_encoder:
            self.indexes.embedder.release()
            release_free_heap()
        self.indexes.sync()
        self.indexes.flush()
        report.seconds = time.perf_counter() - started

    @staticmethod
    def _validate(
        record: RawRecord,
        data: dict[str, object] | None,
        report: IngestReport,
        rejects: _RejectsWriter,
        tenant: str,
    ) -> MediaItem | None:
        reason = record.error
        item = None
        if reason is None and data is not None:
            try:
                item = validate_item(data, tenant)
            except ValidationFailed as exc:
                reason = exc.message
        if item is None:
            raw_id = data.get("id") if data else None
            reject = Reject(
                record.source, record.line, reason or "empty row", str(raw_id) if raw_id else None
            )
            report.rejected += 1
            if len(report.rejects) < MAX_REPORTED_REJECTS:
                report.rejects.append(reject)
            rejects.write(reject, record.raw)
        return item

    def _flush(self, batch: list[MediaItem], report: IngestReport) -> None:
        # Repeats were merged before they got here, unless the input changed between
        # the two passes: merge those too rather than let one row overwrite another.
        groups: dict[tuple[str, str], list[MediaItem]] = {}
        for item in batch:
            groups.setdefault((item.tenant, item.id), []).append(item)
        unique = [merge_items(group) for group in groups.values()]
        report.merged += len(batch) - len(unique)
        statuses, embedded = self.write_items(unique, sync=False)
        report.embedded += embedded
        for status in statuses:
            setattr(report, status, getattr(report, status) + 1)

    def write_items(
        self, items: Sequence[MediaItem], *, sync: bool = True
    ) -> tuple[list[WriteStatus], int]:
        """Upsert validated items; embeds only passages whose vectors are not stored yet."""
        changed = self._changed(items)
        texts = {
            item.content_hash(): ItemText(
                item.content_hash(), tuple(item_passages(item)), item_title_text(item)
            )
            for item in changed
        }
        space = self.indexes.encoder.space
        known = self.repo.known_embeddings(space, list(texts))
        encoded = self.indexes.encoder.encode(list(texts.values()), known)
        statuses = self.repo.write_batch(items, encoded.fresh, space)
        if sync:
            self.indexes.sync()
        return statuses, encoded.embedded

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


def _key_digest(key: RowKey) -> bytes:
    return hashlib.blake2b("\x00".join(key).encode("utf-8"), digest_size=8).digest()


def _keyed(record: RawRecord, tenant: str) -> tuple[dict[str, object] | None, RowKey | None, bool]:
    """The row's data (given an id if it lacked one), its storage key, whether an id was given."""
    if record.error is not None or record.data is None:
        return record.data, None, False
    data, assigned = with_id(record.data)
    return data, row_key(data, tenant), assigned


def repeated_keys(records: Iterable[RawRecord], tenant: str) -> dict[RowKey, int]:
    """First pass: how many rows each repeated (tenant, id) has; ids seen once are left out.

    Ids seen so far are kept as 8-byte digests, not strings. A digest collision
    only makes a single row look repeated: it is then held to the end and still
    written once, so the result stays right.
    """
    seen: set[bytes] = set()
    repeats: dict[RowKey, int] = {}
    for record in records:
        key = _keyed(record, tenant)[1]
        if key is None:
            continue
        digest = _key_digest(key)
        if digest in seen:
            repeats[key] = repeats.get(key, 1) + 1
        else:
            seen.add(digest)
    return repeats


class _Merging:
    """Second pass: rows in input order, with rows of a repeated id held and merged.

    `read()` yields each record with its id-completed data; the caller validates
    it and hands the result to `accept()`; `ready()` then returns the items to
    write now: the row itself, or a merged item once its id's last row is in.
    """

    def __init__(
        self,
        records: Iterable[RawRecord],
        repeated: dict[RowKey, int],
        tenant: str,
        report: IngestReport,
    ) -> None:
        self.records = records
        self.tenant = tenant
        self.report = report
        self._left = dict(repeated)
        self._held: dict[RowKey, list[MediaItem]] = {}
        self._ready: list[MediaItem] = []
        self._key: RowKey | None = None
        self._assigned = False

    def read(self) -> Iterator[tuple[RawRecord, dict[str, object] | None]]:
        for record in self.records:
            data, self._key, self._assigned = _keyed(record, self.tenant)
            yield record, data

    def accept(self, item: MediaItem | None) -> None:
        if item is not None and self._assigned:
            self.report.ids_assigned += 1
        key = self._key
        if key is None or key not in self._left:
            if item is not None:
                self._ready.append(item)
            return
        # Rejected rows count down too: the id's last row may be a bad one.
        if item is not None:
            self._held.setdefault(key, []).append(item)
        self._left[key] -= 1
        if self._left[key] == 0:
            del self._left[key]
            self._release(self._held.pop(key, []))

    def _release(self, rows: list[MediaItem]) -> None:
        if rows:
            self.report.merged += len(rows) - 1
            self._ready.append(merge_items(rows))

    def ready(self) -> list[MediaItem]:
        out, self._ready = self._ready, []
        return out

    def leftovers(self) -> list[MediaItem]:
        """Held rows whose id had fewer rows this pass (the input changed meanwhile)."""
        for rows in self._held.values():
            self._release(rows)
        self._held.clear()
        return self.ready()
