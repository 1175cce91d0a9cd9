"""Domain types, defined once and used by every layer.

Pydantic models double as the validation layer for ingest rows, API bodies
and CLI flags, so a row rejected by `metamedia ingest` is rejected for the same
reason by `POST /v1/media`.
"""

from metamedia.domain.media import (
    MAX_ALTERNATE_TITLES,
    MAX_DESCRIPTION_CHARS,
    MAX_LIST_ITEMS,
    MAX_RELEASE_YEARS,
    MAX_TITLE_CHARS,
    MAX_YEAR,
    MEDIA_TYPES,
    MIN_YEAR,
    MediaItem,
    MediaType,
    Platform,
    derived_id,
)
from metamedia.domain.merge import merge_items
from metamedia.domain.search import (
    Explanation,
    FusionMethod,
    FusionSettings,
    SearchFilters,
    SearchHit,
    SearchMode,
    SearchRequest,
    SearchResponse,
    search_request_from_params,
)

__all__ = [
    "MAX_ALTERNATE_TITLES",
    "MAX_DESCRIPTION_CHARS",
    "MAX_LIST_ITEMS",
    "MAX_RELEASE_YEARS",
    "MAX_TITLE_CHARS",
    "MAX_YEAR",
    "MEDIA_TYPES",
    "MIN_YEAR",
    "Explanation",
    "FusionMethod",
    "FusionSettings",
    "MediaItem",
    "MediaType",
    "Platform",
    "SearchFilters",
    "SearchHit",
    "SearchMode",
    "SearchRequest",
    "SearchResponse",
    "derived_id",
    "merge_items",
    "search_request_from_params",
]
