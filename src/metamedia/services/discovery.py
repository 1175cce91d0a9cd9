"""The one entry point every interface (REST, GraphQL, WebSocket, web UI) uses for
search and the discovery feed.

It is where per-user decisions that sit above the ranking code are made
(experiment variants today), so that all interfaces behave the same.
"""

from __future__ import annotations

from metamedia.domain import SearchRequest, SearchResponse
from metamedia.services.recommend import FeedPage, RecommendService
from metamedia.services.search import SearchService


class DiscoveryService:
    def __init__(self, search: SearchService, recommend: RecommendService) -> None:
        self._search = search
        self._recommend = recommend

    def search(self, request: SearchRequest, *, region: str | None = None) -> SearchResponse:
        return self._search.search(request)

    def feed(
        self,
        tenant: str,
        user: str,
        limit: int = 20,
        cursor: str | None = None,
        *,
        region: str | None = None,
    ) -> FeedPage:
        return self._recommend.feed(tenant, user, limit, cursor)
