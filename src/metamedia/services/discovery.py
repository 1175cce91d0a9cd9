"""The one entry point every interface (REST, GraphQL, WebSocket, web UI) uses for
search and the discovery feed.

It is where per-user decisions that sit above the ranking code are made
(experiment variants today), so that all interfaces behave the same: the user is
assigned through the experiments service (OpenFeature underneath), the variant's
params become the ranking settings of this one call, the exposure is counted
once the response exists, and the response names the variants it was ranked
under (`experiments`).

Rules kept deliberately simple:
- Assignment hashes the user id, so anonymous searches (no `X-User`) are never
  assigned; a client that wants its anonymous visitors in tests sends a stable
  device id as the user.
- Search experiments change fusion, which only hybrid search uses, and stay out
  of the way when the caller set `fusion` itself: those searches are neither
  changed nor counted as exposures.
- `region` is the caller's (e.g. from a geo header); without it, targeting uses
  the region saved in the user's preferences.
"""

from __future__ import annotations

import time

from metamedia.domain import SearchRequest, SearchResponse
from metamedia.observability.metrics import observe_current
from metamedia.services.experiments import ExperimentService, feed_weights, fusion_settings
from metamedia.services.recommend import FeedPage, RecommendService
from metamedia.services.search import SearchService


class DiscoveryService:
    def __init__(
        self,
        search: SearchService,
        recommend: RecommendService,
        experiments: ExperimentService | None = None,
    ) -> None:
        self._search = search
        self._recommend = recommend
        self._experiments = experiments

    def search(self, request: SearchRequest, *, region: str | None = None) -> SearchResponse:
        response = self._search_with_experiments(request, region)
        # Timed here, not in an interface, so REST, GraphQL, WebSocket and the web UI
        # all feed the same stage metrics and latency alerts.
        observe_current("search", response.took_ms / 1000)
        if response.embedding_ms:
            observe_current("query_embedding", response.embedding_ms / 1000)
        return response

    def _search_with_experiments(
        self, request: SearchRequest, region: str | None
    ) -> SearchResponse:
        experiments = self._experiments
        if (
            experiments is None
            or request.user is None
            or request.fusion is not None
            or request.mode != "hybrid"
        ):
            return self._search.search(request)
        treatment = experiments.treatment("search", request.tenant, request.user, region)
        if treatment.params:
            fusion = fusion_settings(self._search.default_fusion(), treatment.params)
            request = request.model_copy(update={"fusion": fusion})
        response = self._search.search(request)
        experiments.expose(treatment)
        if not treatment.assignments:
            return response
        return response.model_copy(update={"experiments": dict(treatment.assignments)})

    def feed(
        self,
        tenant: str,
        user: str,
        limit: int = 20,
        cursor: str | None = None,
        *,
        region: str | None = None,
        expose: bool = True,
    ) -> FeedPage:
        """`expose=False` ranks without counting an experiment exposure (precomputes)."""
        started = time.perf_counter()
        page = self._feed_with_experiments(tenant, user, limit, cursor, region, expose)
        observe_current("feed", time.perf_counter() - started)
        return page

    def _feed_with_experiments(
        self,
        tenant: str,
        user: str,
        limit: int,
        cursor: str | None,
        region: str | None,
        expose: bool,
    ) -> FeedPage:
        experiments = self._experiments
        if experiments is None:
            return self._recommend.feed(tenant, user, limit, cursor)
        treatment = experiments.treatment("feed", tenant, user, region)
        weights = (
            feed_weights(self._recommend.weights, treatment.params) if treatment.params else None
        )
        page = self._recommend.feed(tenant, user, limit, cursor, weights=weights)
        if expose:
            experiments.expose(treatment)
        if not treatment.assignments:
            return page
        return page.model_copy(update={"experiments": dict(treatment.assignments)})
