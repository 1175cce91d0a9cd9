"""GraphQL input types and their conversion to the plain dicts our services validate.

Inputs are deliberately loose (mostly optional scalars): the domain models do the
validation, so GraphQL rejects exactly what REST rejects, with the same message.
An omitted (or null) field means "the default", as in a REST body.
"""

from __future__ import annotations

import dataclasses
from datetime import date
from enum import Enum
from typing import Any

import strawberry

from metamedia.api.graphql.types import MediaKind, Visibility


@strawberry.enum(description="How keyword and semantic retrieval are combined.")
class SearchMode(Enum):
    hybrid = "hybrid"
    semantic = "semantic"
    keyword = "keyword"


@strawberry.enum(description="How the keyword and vector lists are merged.")
class FusionMethod(Enum):
    learned = "learned"
    rrf = "rrf"
    weighted = "weighted"


@strawberry.enum(description="What the user did.")
class InteractionType(Enum):
    view = "view"
    click = "click"
    like = "like"
    dislike = "dislike"
    rate = "rate"
    progress = "progress"
    complete = "complete"
    skip = "skip"
    share = "share"
    favorite = "favorite"
    unfavorite = "unfavorite"
    impression = "impression"


@strawberry.enum(description="Where in the product an interaction happened.")
class Surface(Enum):
    search = "search"
    feed = "feed"
    similar = "similar"
    item = "item"
    other = "other"


def plain(value: Any) -> Any:
    """An input object as JSON-like data: snake_case keys, enum values, no nulls."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    return value


@strawberry.input(description="Structured filters, applied inside retrieval.")
class SearchFiltersInput:
    types: list[MediaKind] | None = None
    genres: list[str] | None = None
    year_min: int | None = None
    year_max: int | None = None
    platforms: list[str] | None = None
    languages: list[str] | None = None
    min_rating: float | None = None


@strawberry.input(description="Per-request fusion settings.")
class FusionInput:
    method: FusionMethod | None = None
    keyword_weight: float | None = None
    semantic_weight: float | None = None
    rrf_k: float | None = None


@strawberry.input(description="Where an item can be watched.")
class PlatformInput:
    name: str
    region: str | None = None
    url: str | None = None


@strawberry.input(description="An identifier of the item in another catalog.")
class ExternalIdInput:
    source: str
    id: str


@strawberry.input(
    description="A catalog item, as `PUT /v1/media/{id}` takes it (tenant from X-Tenant)."
)
class MediaInput:
    id: str
    title: str
    type: MediaKind | None = None
    description: str | None = None
    genres: list[str] | None = None
    year: int | None = None
    release_date: date | None = None
    runtime_minutes: int | None = None
    language: str | None = None
    cast: list[str] | None = None
    platforms: list[PlatformInput] | None = None
    rating: float | None = None
    rating_count: int | None = None
    popularity: float | None = None
    maturity_rating: str | None = None
    image_url: str | None = None
    tags: list[str] | None = None
    external_ids: list[ExternalIdInput] | None = None
    visibility: Visibility | None = None
    owner: str | None = None
    allowed_users: list[str] | None = None
    series_id: str | None = None
    season: int | None = None
    episode: int | None = None
    alternate_titles: list[str] | None = None
    release_years: list[int] | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = plain(self)
        if self.external_ids is not None:
            body["external_ids"] = {e.source: e.id for e in self.external_ids}
        return body


@strawberry.input(
    description="A user's explicit preferences; like `PUT /v1/users/{id}/preferences` it "
    "replaces them all, so omitted fields are cleared."
)
class PreferencesInput:
    liked_genres: list[str] | None = None
    disliked_genres: list[str] | None = None
    languages: list[str] | None = None
    platforms: list[str] | None = None
    maturity_limit: str | None = None
    region: str | None = None
    blocked_owners: list[str] | None = None


@strawberry.input(description="Where an interaction happened.")
class InteractionContextInput:
    device: str | None = None
    session: str | None = None
    surface: Surface | None = None


@strawberry.input(
    description="One event. `value`: a rating 0.5-5 for `rate`, a percentage for `progress`."
)
class InteractionInput:
    item: str
    type: InteractionType
    value: float | None = None
    ts: float | None = strawberry.field(default=None, description="Unix seconds; default now.")
    context: InteractionContextInput | None = None
