"""GraphQL output types: our domain models, camelCased, plus the nested fields that make
GraphQL worth having (an item's `similar`, a feed item's full `media`, a user's history).

Nested resolvers call the same services as REST, on the thread pool (see `call`).
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Any

import strawberry

from metamedia.api.graphql.context import Info, call
from metamedia.api.graphql.limits import COST_SIZE, COST_WEIGHT, WEIGHT_LOOKUP, WEIGHT_SIMILAR
from metamedia.domain import MediaItem, SearchHit
from metamedia.domain.users import InteractionResult, StoredInteraction
from metamedia.domain.users import Preferences as PreferencesModel
from metamedia.errors import InvalidRequestError
from metamedia.services.recommend import FeedItem as FeedItemModel
from metamedia.services.recommend import FeedPage as FeedPageModel
from metamedia.storage.records import UserRecord


def within(name: str, value: int, low: int, high: int) -> int:
    """REST checks these bounds in its query parameters; GraphQL arguments need the same."""
    if not low <= value <= high:
        raise InvalidRequestError(f"{name} must be between {low} and {high}, got {value}")
    return value


@strawberry.enum(name="MediaType", description="What kind of item it is.")
class MediaKind(Enum):
    movie = "movie"
    series = "series"
    episode = "episode"
    short = "short"
    post = "post"


@strawberry.enum(description="Who can see an item: everyone, or its owner and allowed users.")
class Visibility(Enum):
    public = "public"
    private = "private"


@strawberry.type(description="Where an item can be watched.")
class Platform:
    name: str
    region: str | None
    url: str | None


@strawberry.type(description="An identifier of the item in another catalog (imdb, tmdb...).")
class ExternalId:
    source: str
    id: str


@strawberry.type(description="One catalog item, as `GET /v1/media/{id}` returns it.")
class Media:
    id: str
    type: MediaKind
    title: str
    description: str
    genres: list[str]
    year: int | None
    release_date: date | None
    runtime_minutes: int | None
    language: str | None
    cast: list[str]
    platforms: list[Platform] = strawberry.field(metadata={COST_SIZE: 3})
    rating: float | None
    rating_count: int
    popularity: float
    maturity_rating: str | None
    image_url: str | None
    tags: list[str]
    external_ids: list[ExternalId] = strawberry.field(metadata={COST_SIZE: 3})
    visibility: Visibility
    owner: str | None
    allowed_users: list[str]
    tenant: str
    series_id: str | None
    season: int | None
    episode: int | None
    alternate_titles: list[str]
    release_years: list[int]

    @classmethod
    def from_item(cls, item: MediaItem) -> Media:
        return cls(
            id=item.id,
            type=MediaKind(item.type),
            title=item.title,
            description=item.description,
            genres=list(item.genres),
            year=item.year,
            release_date=item.release_date,
            runtime_minutes=item.runtime_minutes,
            language=item.language,
            cast=list(item.cast),
            platforms=[Platform(name=p.name, region=p.region, url=p.url) for p in item.platforms],
            rating=item.rating,
            rating_count=item.rating_count,
            popularity=item.popularity,
            maturity_rating=item.maturity_rating,
            image_url=item.image_url,
            tags=list(item.tags),
            external_ids=[ExternalId(source=k, id=v) for k, v in item.external_ids.items()],
            visibility=Visibility(item.visibility),
            owner=item.owner,
            allowed_users=list(item.allowed_users),
            tenant=item.tenant,
            series_id=item.series_id,
            season=item.season,
            episode=item.episode,
            alternate_titles=list(item.alternate_titles),
            release_years=list(item.release_years),
        )

    @strawberry.field(
        metadata={COST_WEIGHT: WEIGHT_SIMILAR},
        description="More like this item; personalised with `user` (keys acting for a "
        "user; default: the caller's own user), steered by positive / negative example ids.",
    )
    async def similar(
        self,
        info: Info,
        limit: int = 10,
        user: str | None = None,
        positive: list[str] | None = None,
        negative: list[str] | None = None,
    ) -> list[FeedItem]:
        return await similar_items(info, self.id, limit, user, positive, negative)


async def similar_items(
    info: Info,
    media_id: str,
    limit: int,
    user: str | None,
    positive: list[str] | None,
    negative: list[str] | None,
) -> list[FeedItem]:
    """`GET /v1/media/{id}/similar`, shared by `Query.similar` and `Media.similar`."""
    ctx = info.context
    found = await call(
        ctx.runtime.recommend.similar,
        ctx.tenant,
        media_id,
        user=ctx.caller.act_as(user),
        positive=positive,
        negative=negative,
        limit=limit,
    )
    return [FeedItem.from_model(f) for f in found]


async def load_media(info: Info, media_id: str) -> Media | None:
    """The full item behind a result, batched per request; None if gone or hidden."""
    item = await info.context.media.load(media_id)
    return Media.from_item(item) if item is not None else None


@strawberry.type(description="Why a search result is where it is: each list's rank and score.")
class Explanation:
    keyword_rank: int | None
    keyword_score: float | None
    vector_rank: int | None
    vector_similarity: float | None
    fused_score: float
    method: str
    vector_plan: str | None = strawberry.field(
        description="How the dense side was searched: exact, graph or graph_wide."
    )


@strawberry.type(description="One search hit with its score and explanation.")
class SearchResult:
    id: str
    title: str
    year: int | None
    type: MediaKind
    genres: list[str]
    language: str | None
    platforms: list[str]
    rating: float | None
    description: str
    image_url: str | None
    score: float
    explanation: Explanation

    @classmethod
    def from_hit(cls, hit: SearchHit) -> SearchResult:
        e = hit.explanation
        return cls(
            id=hit.id,
            title=hit.title,
            year=hit.year,
            type=MediaKind(hit.type),
            genres=list(hit.genres),
            language=hit.language,
            platforms=list(hit.platforms),
            rating=hit.rating,
            description=hit.description,
            image_url=hit.image_url,
            score=hit.score,
            explanation=Explanation(
                keyword_rank=e.keyword_rank,
                keyword_score=e.keyword_score,
                vector_rank=e.vector_rank,
                vector_similarity=e.vector_similarity,
                fused_score=e.fused_score,
                method=e.method,
                vector_plan=e.vector_plan,
            ),
        )

    @strawberry.field(description="The whole catalog item.")
    async def media(self, info: Info) -> Media | None:
        return await load_media(info, self.id)


@strawberry.type(description="One page of search results.")
class SearchPage:
    # Sized by `search(limit:)` already, so the cost model does not multiply again.
    results: list[SearchResult] = strawberry.field(metadata={COST_SIZE: 1})
    took_ms: float
    embedding_ms: float
    matched: int | None = strawberry.field(
        description="Items passing the filters (None when unfiltered)."
    )
    next_offset: int | None


@strawberry.type(description="A recommended item with the reasons that put it there.")
class FeedItem:
    id: str
    title: str
    score: float
    reasons: list[str]

    @classmethod
    def from_model(cls, item: FeedItemModel) -> FeedItem:
        return cls(id=item.id, title=item.title, score=item.score, reasons=list(item.reasons))

    @strawberry.field(description="The whole catalog item.")
    async def media(self, info: Info) -> Media | None:
        return await load_media(info, self.id)


@strawberry.type(description="One page of the discovery feed; pass `nextCursor` back for more.")
class FeedPage:
    items: list[FeedItem] = strawberry.field(metadata={COST_SIZE: 1})
    next_cursor: str | None

    @classmethod
    def from_model(cls, page: FeedPageModel) -> FeedPage:
        return cls(items=[FeedItem.from_model(i) for i in page.items], next_cursor=page.next_cursor)


@strawberry.type(description="What a user told us explicitly.")
class Preferences:
    liked_genres: list[str]
    disliked_genres: list[str]
    languages: list[str]
    platforms: list[str]
    maturity_limit: str | None
    region: str | None
    blocked_owners: list[str]

    @classmethod
    def from_model(cls, prefs: PreferencesModel) -> Preferences:
        return cls(
            liked_genres=list(prefs.liked_genres),
            disliked_genres=list(prefs.disliked_genres),
            languages=list(prefs.languages),
            platforms=list(prefs.platforms),
            maturity_limit=prefs.maturity_limit,
            region=prefs.region,
            blocked_owners=list(prefs.blocked_owners),
        )


@strawberry.type(description="Where an interaction happened.")
class InteractionContext:
    device: str | None
    session: str | None
    surface: str | None


@strawberry.type(description="One stored interaction (watch history).")
class Interaction:
    item: str
    type: str
    value: float | None
    ts: float
    context: InteractionContext | None

    @classmethod
    def from_model(cls, stored: StoredInteraction) -> Interaction:
        raw: dict[str, Any] | None = stored.context
        context = (
            InteractionContext(
                device=raw.get("device"), session=raw.get("session"), surface=raw.get("surface")
            )
            if raw
            else None
        )
        return cls(
            item=stored.item, type=stored.type, value=stored.value, ts=stored.ts, context=context
        )


@strawberry.type(description="A favorite item and since when (Unix seconds).")
class Favorite:
    item: str
    since: float

    @strawberry.field(description="The whole catalog item.")
    async def media(self, info: Info) -> Media | None:
        return await load_media(info, self.item)


@strawberry.type(description="A user profile; history and favorites are fetched only if asked.")
class User:
    id: str
    tenant: str
    created_at: float
    preferences: Preferences

    @classmethod
    def from_record(cls, record: UserRecord) -> User:
        return cls(
            id=record.external_id,
            tenant=record.tenant,
            created_at=record.created_at,
            preferences=Preferences.from_model(PreferencesModel.model_validate(record.preferences)),
        )

    @strawberry.field(
        description="Watch history, newest first; with `session`, that session's.",
        metadata={COST_WEIGHT: WEIGHT_LOOKUP},
    )
    async def history(
        self, info: Info, limit: int = 50, offset: int = 0, session: str | None = None
    ) -> list[Interaction]:
        within("limit", limit, 1, 500)
        within("offset", offset, 0, 10_000_000)
        ctx = info.context
        stored = await call(
            ctx.runtime.users.history, ctx.tenant, self.id, limit, offset, session=session
        )
        return [Interaction.from_model(s) for s in stored]

    @strawberry.field(
        description="Favorite items, the first `limit` of them.",
        metadata={COST_WEIGHT: WEIGHT_LOOKUP},
    )
    async def favorites(self, info: Info, limit: int = 100) -> list[Favorite]:
        within("limit", limit, 1, 1000)
        ctx = info.context
        found = await call(ctx.runtime.users.favorites, ctx.tenant, self.id)
        return [Favorite(item=f["item"], since=f["since"]) for f in found[:limit]]


@strawberry.type(description="An item at the centre of a theme.")
class ThemeItem:
    id: str
    title: str
    year: int | None

    @strawberry.field(description="The whole catalog item.")
    async def media(self, info: Info) -> Media | None:
        return await load_media(info, self.id)


@strawberry.type(description="A catalog cluster labelled by its most telling terms.")
class Theme:
    id: int
    label: str
    terms: list[str]
    size: int

    @classmethod
    def from_dict(cls, theme: dict[str, Any]) -> Theme:
        return cls(
            id=theme["id"], label=theme["label"], terms=list(theme["terms"]), size=theme["size"]
        )

    @strawberry.field(
        description="The theme's most central items (`GET /v1/themes/{id}`).",
        metadata={COST_WEIGHT: WEIGHT_LOOKUP},
    )
    async def items(self, info: Info, limit: int = 20) -> list[ThemeItem]:
        within("limit", limit, 1, 100)
        ctx = info.context
        detail = await call(ctx.runtime.themes.get, ctx.tenant, self.id, limit)
        return [ThemeItem(id=i["id"], title=i["title"], year=i["year"]) for i in detail["items"]]


@strawberry.type(description="What happened to one event of a batch.")
class InteractionOutcome:
    index: int
    status: str = strawberry.field(description="recorded, duplicate or rejected")
    error: str | None

    @classmethod
    def from_model(cls, result: InteractionResult) -> InteractionOutcome:
        return cls(index=result.index, status=result.status, error=result.error)


@strawberry.type(description="Per-event results of `recordInteraction`.")
class InteractionBatch:
    results: list[InteractionOutcome]
    recorded: int
    duplicate: int
    rejected: int


@strawberry.type(description="The result of `upsertMedia`.")
class MediaUpsert:
    status: str = strawberry.field(description="inserted, updated or unchanged")
    media: Media
