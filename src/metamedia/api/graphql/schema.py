"""The GraphQL schema at `/graphql`: the REST API's reads and writes over the same services.

Resolvers are thin: build the same request REST builds, call the same service
on the thread pool, convert the answer. Auth follows REST: each field applies the
access rule of the REST route it mirrors (`metamedia.api.access.RULES`) to the
caller resolved from the request's credentials.
"""

from __future__ import annotations

from typing import Any

import strawberry
from pydantic import ValidationError
from strawberry.fastapi import GraphQLRouter

from metamedia.api.abuse import event_gate
from metamedia.api.graphql.budget import CostBudget
from metamedia.api.graphql.context import (
    GraphQLContext,
    Info,
    allow,
    call,
    get_context,
    verify_fields_declared,
)
from metamedia.api.graphql.errors import ErrorCodes, ProductSchema
from metamedia.api.graphql.inputs import (
    FusionInput,
    InteractionInput,
    MediaInput,
    PreferencesInput,
    SearchFiltersInput,
    SearchMode,
    plain,
)
from metamedia.api.graphql.limits import (
    COST_SIZE,
    COST_WEIGHT,
    WEIGHT_FEED,
    WEIGHT_LOOKUP,
    WEIGHT_SEARCH,
    WEIGHT_SIMILAR,
    WEIGHT_WRITE,
    limit_extensions,
)
from metamedia.api.graphql.types import (
    FeedItem,
    FeedPage,
    InteractionBatch,
    InteractionOutcome,
    Media,
    MediaUpsert,
    Preferences,
    SearchPage,
    SearchResult,
    Theme,
    User,
    similar_items,
)
from metamedia.config import Settings
from metamedia.domain import SearchRequest
from metamedia.errors import InvalidRequestError
from metamedia.services.validation import describe_validation_error

MAX_CURSOR_CHARS = 200  # as REST's `cursor` query parameter


def _search_request(data: dict[str, Any]) -> SearchRequest:
    try:
        return SearchRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequestError(describe_validation_error(exc)) from exc


@strawberry.type
class Query:
    @strawberry.field(
        description="Hybrid / semantic / keyword search, as `POST /v1/search`.",
        metadata={COST_WEIGHT: WEIGHT_SEARCH},
    )
    async def search(
        self,
        info: Info,
        query: str,
        mode: SearchMode = SearchMode.hybrid,
        limit: int = 10,
        offset: int = 0,
        filters: SearchFiltersInput | None = None,
        fusion: FusionInput | None = None,
    ) -> SearchPage:
        allow(info)
        ctx = info.context
        data: dict[str, Any] = {
            "query": query,
            "mode": mode.value,
            "limit": limit,
            "offset": offset,
            "tenant": ctx.tenant,
            "user": ctx.viewer,
        }
        if filters is not None:
            data["filters"] = plain(filters)
        if fusion is not None:
            data["fusion"] = plain(fusion)
        response = await call(ctx.runtime.discovery.search, _search_request(data))
        return SearchPage(
            results=[SearchResult.from_hit(h) for h in response.results],
            took_ms=response.took_ms,
            embedding_ms=response.embedding_ms,
            matched=response.matched,
            next_offset=response.next_offset,
        )

    @strawberry.field(
        description="One catalog item (private ones only for their viewers).",
        metadata={COST_WEIGHT: WEIGHT_LOOKUP},
    )
    async def media(self, info: Info, id: str) -> Media:
        allow(info)
        ctx = info.context
        item = await call(ctx.runtime.catalog.get, id, ctx.tenant, ctx.viewer)
        return Media.from_item(item)

    @strawberry.field(
        description="More like this, as `GET /v1/media/{id}/similar`.",
        metadata={COST_WEIGHT: WEIGHT_SIMILAR},
    )
    async def similar(
        self,
        info: Info,
        id: str,
        limit: int = 10,
        user: str | None = None,
        positive: list[str] | None = None,
        negative: list[str] | None = None,
    ) -> list[FeedItem]:
        allow(info)
        return await similar_items(info, id, limit, user, positive, negative)

    @strawberry.field(
        description="A user's discovery feed, as `GET /v1/users/{id}/feed`.",
        metadata={COST_WEIGHT: WEIGHT_FEED},
    )
    async def discovery_feed(
        self, info: Info, user: str, limit: int = 20, cursor: str | None = None
    ) -> FeedPage:
        if cursor is not None and len(cursor) > MAX_CURSOR_CHARS:
            raise InvalidRequestError(f"cursor is longer than {MAX_CURSOR_CHARS} characters")
        allow(info, user)
        ctx = info.context
        page = await call(ctx.runtime.discovery.feed, ctx.tenant, user, limit, cursor)
        return FeedPage.from_model(page)

    @strawberry.field(
        description="A user profile with preferences, history and favorites.",
        metadata={COST_WEIGHT: WEIGHT_LOOKUP},
    )
    async def user(self, info: Info, id: str) -> User:
        allow(info, id)
        ctx = info.context
        return User.from_record(await call(ctx.runtime.users.require, ctx.tenant, id))

    @strawberry.field(
        description="The catalog's themes (after `metamedia train`).",
        metadata={COST_SIZE: 32, COST_WEIGHT: WEIGHT_LOOKUP},
    )
    async def themes(self, info: Info) -> list[Theme]:
        allow(info)
        ctx = info.context
        return [Theme.from_dict(t) for t in await call(ctx.runtime.themes.list, ctx.tenant)]

    @strawberry.field(
        description="One theme, as `GET /v1/themes/{id}`.", metadata={COST_WEIGHT: WEIGHT_LOOKUP}
    )
    async def theme(self, info: Info, id: int) -> Theme:
        allow(info)
        ctx = info.context
        return Theme.from_dict(await call(ctx.runtime.themes.get, ctx.tenant, id, 1))


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Record a user's events (view, like, dislike, rate...); per-event results, "
        "as `POST /v1/users/{id}/interactions`.",
        metadata={COST_WEIGHT: WEIGHT_WRITE},
    )
    async def record_interaction(
        self, info: Info, user: str, events: list[InteractionInput]
    ) -> InteractionBatch:
        allow(info, user)
        ctx = info.context
        event_gate(ctx.http_request).admit(ctx.caller, ctx.tenant, user, len(events))
        results = await call(ctx.runtime.users.record, ctx.tenant, user, plain(events))
        return InteractionBatch(
            results=[InteractionOutcome.from_model(r) for r in results],
            recorded=sum(1 for r in results if r.status == "recorded"),
            duplicate=sum(1 for r in results if r.status == "duplicate"),
            rejected=sum(1 for r in results if r.status == "rejected"),
        )

    @strawberry.mutation(
        description="Create or replace one catalog item (needs a `write` key), as "
        "`PUT /v1/media/{id}`; searchable once it returns.",
        metadata={COST_WEIGHT: WEIGHT_WRITE},
    )
    async def upsert_media(self, info: Info, media: MediaInput) -> MediaUpsert:
        allow(info)
        ctx = info.context
        item, status = await call(ctx.runtime.catalog.put, media.id, media.to_body(), ctx.tenant)
        return MediaUpsert(status=status, media=Media.from_item(item))

    @strawberry.mutation(
        description="Replace a user's preferences, as `PUT /v1/users/{id}/preferences`.",
        metadata={COST_WEIGHT: WEIGHT_WRITE},
    )
    async def set_preferences(
        self, info: Info, user: str, preferences: PreferencesInput
    ) -> Preferences:
        allow(info, user)
        ctx = info.context
        saved = await call(ctx.runtime.users.set_preferences, ctx.tenant, user, plain(preferences))
        return Preferences.from_model(saved)

    @strawberry.mutation(
        description="Create a user (idempotent), optionally with preferences, as "
        "`PUT /v1/users/{id}`.",
        metadata={COST_WEIGHT: WEIGHT_WRITE},
    )
    async def upsert_user(
        self, info: Info, id: str, preferences: PreferencesInput | None = None
    ) -> User:
        allow(info, id)
        ctx = info.context
        prefs = plain(preferences) if preferences is not None else None
        return User.from_record(await call(ctx.runtime.users.upsert, ctx.tenant, id, prefs))


def build_schema(
    max_depth: int, max_cost: int, budget: CostBudget | None = None
) -> strawberry.Schema:
    """The schema with its document limits and error codes; every root field must
    declare its access rule in `GRAPHQL_RULES`, or the schema is not built."""
    verify_fields_declared(Query, Mutation)
    return ProductSchema(
        query=Query,
        mutation=Mutation,
        extensions=[*limit_extensions(max_depth, max_cost, budget), ErrorCodes],
    )


def graphql_router(settings: Settings) -> GraphQLRouter[GraphQLContext, None]:
    """`/graphql`: POST (and GET for queries) plus GraphiQL in a browser."""
    budget = CostBudget(
        settings.graphql_budget_per_minute,
        settings.graphql_key_budget_per_minute,
        settings.redis_url,
        settings.resolved_database_url,
    )
    schema = build_schema(settings.graphql_max_depth, settings.graphql_max_cost, budget)
    # No subscriptions: the WebSocket protocols stay off, so every operation is an
    # HTTP request whose caller `metamedia.api.access` resolved.
    return GraphQLRouter(
        schema,
        path="/graphql",
        context_getter=get_context,
        tags=["graphql"],
        subscription_protocols=(),
    )
