"""Single-item and batch catalog operations used by the API and the Python facade."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metamedia.domain import MediaItem
from metamedia.errors import InvalidRequestError, NotFoundError, ValidationFailed
from metamedia.services.indexing import IndexManager
from metamedia.services.ingest import IngestService
from metamedia.services.validation import validate_item
from metamedia.storage.roles import CatalogStore

MAX_BATCH = 1000


@dataclass(frozen=True)
class ItemResult:
    index: int
    id: str | None
    status: str
    error: str | None = None


class CatalogService:
    def __init__(self, repo: CatalogStore, ingest: IngestService, indexes: IndexManager) -> None:
        self.repo = repo
        self.ingest = ingest
        self.indexes = indexes

    def get(
        self, external_id: str, tenant: str = "default", viewer: str | None = None
    ) -> MediaItem:
        stored = self.repo.get(tenant, external_id)
        if stored is None or not stored.item.visible_to(viewer):
            raise NotFoundError(f"media item {external_id!r} not found in tenant {tenant!r}")
        return stored.item

    def put(
        self, external_id: str, data: dict[str, Any], tenant: str = "default"
    ) -> tuple[MediaItem, str]:
        body_id = data.get("id")
        if body_id is not None and body_id != external_id:
            raise InvalidRequestError(
                f"body id {body_id!r} does not match the path id {external_id!r}", field="id"
            )
        item = validate_item({**data, "id": external_id}, tenant)
        if item.tenant != tenant:
            raise InvalidRequestError(
                f"item tenant {item.tenant!r} differs from the request tenant {tenant!r}",
                field="tenant",
            )
        statuses, _ = self.ingest.write_items([item])
        return item, statuses[0]

    def upsert_many(self, rows: list[Any], tenant: str = "default") -> list[ItemResult]:
        """Validate each row; write the good ones; report per-row status or error."""
        if len(rows) > MAX_BATCH:
            raise InvalidRequestError(f"a batch holds at most {MAX_BATCH} items, got {len(rows)}")
        results: list[ItemResult | None] = [None] * len(rows)
        good: dict[tuple[str, str], tuple[int, MediaItem]] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                results[i] = ItemResult(i, None, "rejected", f"item {i} is not a JSON object")
                continue
            try:
                item = validate_item(row, tenant)
            except ValidationFailed as exc:
                raw_id = row.get("id")
                results[i] = ItemResult(i, str(raw_id) if raw_id else None, "rejected", exc.message)
                continue
            if item.tenant != tenant:
                results[i] = ItemResult(
                    i, item.id, "rejected", f"tenant {item.tenant!r} is not {tenant!r}"
                )
                continue
            previous = good.get((item.tenant, item.id))
            if previous is not None:
                results[previous[0]] = ItemResult(previous[0], item.id, "superseded")
            good[(item.tenant, item.id)] = (i, item)
        if good:
            ordered = list(good.values())
            statuses, _ = self.ingest.write_items([item for _, item in ordered])
            for (i, item), status in zip(ordered, statuses, strict=True):
                results[i] = ItemResult(i, item.id, status)
        return [r for r in results if r is not None]

    def delete(self, external_id: str, tenant: str = "default") -> None:
        if not self.repo.delete(tenant, external_id):
            raise NotFoundError(f"media item {external_id!r} not found in tenant {tenant!r}")
        self.indexes.sync()
