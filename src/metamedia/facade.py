"""`MetaMedia`: the one object a Python user imports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metamedia.config import Settings
from metamedia.domain import MediaItem, SearchRequest, SearchResponse
from metamedia.services.ingest import IngestReport
from metamedia.services.runtime import Runtime


class MetaMedia:
    """Ingest, search and manage a catalog stored under one data directory."""

    def __init__(self, data_dir: str | Path | None = None, **settings: Any) -> None:
        if data_dir is not None:
            settings["data_dir"] = Path(data_dir)
        self.runtime = Runtime.open(Settings(**settings))

    def ingest(self, path: str | Path, fmt: str = "auto", tenant: str = "default") -> IngestReport:
        return self.runtime.ingest.ingest_path(Path(path), fmt, tenant=tenant)

    def search(
        self,
        query: str,
        *,
        mode: str = "hybrid",
        limit: int = 10,
        offset: int = 0,
        filters: dict[str, Any] | None = None,
        tenant: str = "default",
        user: str | None = None,
    ) -> SearchResponse:
        request = SearchRequest.model_validate(
            {
                "query": query,
                "mode": mode,
                "limit": limit,
                "offset": offset,
                "filters": filters or {},
                "tenant": tenant,
                "user": user,
            }
        )
        return self.runtime.search.search(request)

    def get(self, media_id: str, tenant: str = "default") -> MediaItem:
        return self.runtime.catalog.get(media_id, tenant)

    def upsert(self, items: list[dict[str, Any]], tenant: str = "default") -> list[Any]:
        return self.runtime.catalog.upsert_many(items, tenant)

    def delete(self, media_id: str, tenant: str = "default") -> None:
        self.runtime.catalog.delete(media_id, tenant)

    def stats(self) -> dict[str, Any]:
        return self.runtime.stats()

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> MetaMedia:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
