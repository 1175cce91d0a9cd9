"""Search requests, filters, fusion settings and results."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from metamedia.domain.media import MAX_YEAR, MIN_YEAR, MediaType, ShortText, normalise_labels

SearchMode = Literal["hybrid", "semantic", "keyword"]
MAX_QUERY_CHARS = 8000  # tip-of-the-tongue requests are long; the dense side reads all of it
FusionMethod = Literal["learned", "rrf", "weighted"]


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
        return normalise_labels(values)

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

    method: FusionMethod = "learned"
    keyword_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    semantic_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    rrf_k: float = Field(default=60.0, gt=0.0, le=10_000.0)


class SearchRequest(BaseModel):
    """A search as the API, CLI and Python facade accept it."""

    model_config = ConfigDict(extra="forbid")

    query: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUERY_CHARS)
    ]
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
    title_match: bool = False
    fused_score: float
    method: str
    vector_plan: str | None = Field(
        default=None,
        description="How the dense side was searched: exact (over the rows the filters "
        "allow), graph (HNSW) or graph_wide (HNSW with a wider beam under a filter), as the "
        "cost model chose; none for keyword search.",
    )


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
    cached: bool = Field(
        default=False, description="Served from the search-result cache (same catalog version)."
    )
    experiments: dict[str, str] = Field(
        default_factory=dict,
        description="Experiment -> variant this response was ranked under (users only).",
    )
