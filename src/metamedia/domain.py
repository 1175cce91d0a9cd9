"""Domain types, defined once and used by every layer.

Pydantic models double as the validation layer for ingest rows, API bodies
and CLI flags, so a row rejected by `metamedia ingest` is rejected for the same
reason by `POST /v1/media`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

MEDIA_TYPES = ("movie", "series", "episode", "short", "post")
MediaType = Literal["movie", "series", "episode", "short", "post"]
SearchMode = Literal["hybrid", "semantic", "keyword"]
FusionMethod = Literal["rrf", "weighted"]

MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 20_000
MAX_LIST_ITEMS = 200
MIN_YEAR = 1870
MAX_YEAR = 2100

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _normalise_labels(values: list[str]) -> list[str]:
    """Lower-case, strip and de-duplicate labels while keeping their order."""
    seen: dict[str, None] = {}
    for value in values:
        label = value.strip().lower()
        if label:
            seen.setdefault(label, None)
    return list(seen)


class Platform(BaseModel):
    """Where an item can be watched."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    region: str | None = Field(default=None, max_length=16)
    url: str | None = Field(default=None, max_length=2000)

    @field_validator("name")
    @classmethod
    def _lower_name(cls, value: str) -> str:
        return value.lower()

    @field_validator("region")
    @classmethod
    def _upper_region(cls, value: str | None) -> str | None:
        return value.strip().upper() or None if value else None


class MediaItem(BaseModel):
    """One catalog entry: the unit that is ingested, stored, indexed and returned."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
    type: MediaType = "movie"
    title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)
    ]
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    genres: list[ShortText] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    year: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    release_date: date | None = None
    runtime_minutes: int | None = Field(default=None, ge=0, le=100_000)
    language: str | None = Field(default=None, min_length=2, max_length=16)
    cast: list[ShortText] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    platforms: list[Platform] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    rating: float | None = Field(default=None, ge=0.0, le=5.0)
    rating_count: int = Field(default=0, ge=0)
    popularity: float = Field(default=0.0, ge=0.0)
    maturity_rating: str | None = Field(default=None, max_length=16)
    image_url: str | None = Field(default=None, max_length=2000)
    tags: list[ShortText] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    external_ids: dict[ShortText, ShortText] = Field(
        default_factory=dict,
        max_length=32,
        description="Identifiers in other catalogs, e.g. {'imdb': 'tt0114709', 'tmdb': '862'}.",
    )
    visibility: Literal["public", "private"] = "public"
    owner: str | None = Field(default=None, max_length=256)
    tenant: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "default"
    series_id: str | None = Field(default=None, max_length=256)
    season: int | None = Field(default=None, ge=0)
    episode: int | None = Field(default=None, ge=0)

    @field_validator("genres", "tags")
    @classmethod
    def _labels(cls, values: list[str]) -> list[str]:
        return _normalise_labels(values)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else None

    @model_validator(mode="after")
    def _consistent(self) -> MediaItem:
        if self.year is None and self.release_date is not None:
            self.year = self.release_date.year
        if self.release_date is not None and self.release_date.year != self.year:
            raise ValueError(f"release_date {self.release_date} is not in year {self.year}")
        if self.visibility == "private" and not self.owner:
            raise ValueError("a private item needs an owner")
        return self

    def platform_names(self) -> list[str]:
        """Distinct platform names, sorted: what filters and results use."""
        return sorted({p.name for p in self.platforms})

    def embedding_text(self) -> str:
        """The text the sentence model sees: what a searcher would describe."""
        parts = [self.title]
        if self.genres:
            parts.append(", ".join(self.genres))
        if self.description:
            parts.append(self.description)
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags))
        return ". ".join(parts)

    def content_hash(self) -> str:
        """Hash of the embedding text: equal hashes mean the vector can be reused."""
        return hashlib.sha256(self.embedding_text().encode("utf-8")).hexdigest()

    def row_hash(self) -> str:
        """Hash of every field: equal hashes mean re-ingesting changes nothing."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class SearchFilters(BaseModel):
    """Structured filters applied inside retrieval (never as a post-filter)."""

    model_config = ConfigDict(extra="forbid")

    types: list[MediaType] = Field(default_factory=list)
    genres: list[ShortText] = Field(default_factory=list)
    year_min: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    year_max: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    platforms: list[ShortText] = Field(default_factory=list)
    languages: list[ShortText] = Field(default_factory=list)
    min_rating: float | None = Field(default=None, ge=0.0, le=5.0)

    @field_validator("genres", "platforms", "languages")
    @classmethod
    def _labels(cls, values: list[str]) -> list[str]:
        return _normalise_labels(values)

    @model_validator(mode="after")
    def _ordered_years(self) -> SearchFilters:
        low, high = self.year_min, self.year_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"year range is inverted: year_min {low} > year_max {high}")
        return self

    def is_empty(self) -> bool:
        return not (
            self.types
            or self.genres
            or self.platforms
            or self.languages
            or self.year_min is not None
            or self.year_max is not None
            or self.min_rating is not None
        )


class FusionSettings(BaseModel):
    """How keyword and vector lists are merged; overridable per request."""

    model_config = ConfigDict(extra="forbid")

    method: FusionMethod = "rrf"
    keyword_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    semantic_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    rrf_k: float = Field(default=60.0, gt=0.0, le=10_000.0)


class SearchRequest(BaseModel):
    """A search as the API, CLI and Python facade accept it."""

    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
    mode: SearchMode = "hybrid"
    limit: int = Field(default=10, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=10_000)
    filters: SearchFilters = Field(default_factory=SearchFilters)
    fusion: FusionSettings | None = None
    tenant: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "default"
    user: str | None = Field(default=None, max_length=256)


def search_request_from_params(
    query: str,
    *,
    mode: str = "hybrid",
    limit: int = 10,
    offset: int = 0,
    types: list[str] | None = None,
    genres: list[str] | None = None,
    platforms: list[str] | None = None,
    languages: list[str] | None = None,
    year_min: int | None = None,
    year_max: int | None = None,
    min_rating: float | None = None,
    tenant: str = "default",
    user: str | None = None,
) -> SearchRequest:
    """Build a request from flat, repeatable parameters (URL query strings, CLI flags).

    Raises pydantic's ValidationError; callers turn it into their own error form.
    """
    return SearchRequest.model_validate(
        {
            "query": query,
            "mode": mode,
            "limit": limit,
            "offset": offset,
            "tenant": tenant,
            "user": user,
            "filters": {
                "types": types or [],
                "genres": genres or [],
                "platforms": platforms or [],
                "languages": languages or [],
                "year_min": year_min,
                "year_max": year_max,
                "min_rating": min_rating,
            },
        }
    )


class Explanation(BaseModel):
    """Why a result is where it is: each list's rank and score, and the fused score."""

    keyword_rank: int | None = None
    keyword_score: float | None = None
    vector_rank: int | None = None
    vector_similarity: float | None = None
    fused_score: float
    method: str


class SearchHit(BaseModel):
    id: str
    title: str
    year: int | None
    type: MediaType
    genres: list[str]
    language: str | None = None
    platforms: list[str] = Field(default_factory=list)
    rating: float | None = None
    description: str = ""
    image_url: str | None = None
    score: float
    explanation: Explanation


class SearchResponse(BaseModel):
    results: list[SearchHit]
    took_ms: float
    embedding_ms: float = 0.0
    matched: int | None = Field(
        default=None, description="Items passing the filters (None when unfiltered)."
    )
    next_offset: int | None = None


def dump_item(item: MediaItem) -> dict[str, Any]:
    """JSON-ready dict of an item, the form stored and returned by the API."""
    return item.model_dump(mode="json")
