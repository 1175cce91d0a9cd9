"""Hybrid search: keyword (FTS5 BM25) + semantic (faiss) lists, fused and explained.

Filters are evaluated before retrieval on both sides: as SQL predicates in the
keyword query and as a position mask inside the vector search, so a selective
filter still fills the page whenever enough items pass it.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from metamedia.config import Settings
from metamedia.domain import (
    Explanation,
    FusionSettings,
    MediaItem,
    SearchHit,
    SearchRequest,
    SearchResponse,
)
from metamedia.engine.embed import Embedder
from metamedia.engine.payload import AttributeFilter
from metamedia.engine.rank import Fused, RankedList, reciprocal_rank_fusion, weighted_fusion
from metamedia.engine.vectors import FloatArray
from metamedia.services.batching import QueryBatcher
from metamedia.services.caching import Caches
from metamedia.services.indexing import IndexManager
from metamedia.storage.base import KeywordHit, MediaRepository

DESCRIPTION_PREVIEW_CHARS = 300


class SearchService:
    def __init__(
        self,
        repo: MediaRepository,
        embedder: Embedder,
        indexes: IndexManager,
        settings: Settings,
        caches: Caches,
    ) -> None:
        self.repo = repo
        self.embedder = embedder
        self.indexes = indexes
        self.settings = settings
        self._keyword_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="keyword")
        self.caches = caches
        self.batcher = QueryBatcher(embedder.encode)

    def default_fusion(self) -> FusionSettings:
        s = self.settings
        return FusionSettings(
            method="weighted" if s.fusion_method == "weighted" else "rrf",
            keyword_weight=s.keyword_weight,
            semantic_weight=s.semantic_weight,
            rrf_k=s.rrf_k,
        )

    def embed_query(self, query: str) -> FloatArray:
        key = (self.embedder.name, query)
        cached = self.caches.query_embedding.get(key)
        if cached is not None:
            return cached
        vector = self.batcher.encode_one(query)
        self.caches.query_embedding.set(key, vector)
        return vector

    def search(self, request: SearchRequest) -> SearchResponse:
        """Results for one request; a repeat within the TTL at the same catalog version
        is served from the result cache (any catalog write changes the version)."""
        started = time.perf_counter()
        self.indexes.sync()
        key = (self.indexes.watermark, request.model_dump_json())
        hit: SearchResponse | None = self.caches.search.get(key)
        if hit is not None:
            took = (time.perf_counter() - started) * 1000
            return SearchResponse.model_copy(
                hit, update={"took_ms": took, "embedding_ms": 0.0, "cached": True}
            )
        response = self._search(request, started)
        self.caches.search.set(key, response)
        self.caches.govern_memory()
        return response

    def _search(self, request: SearchRequest, started: float) -> SearchResponse:
        fusion = request.fusion or self.default_fusion()
        pool = max(self.settings.candidate_pool, request.offset + request.limit)
        filters = request.filters
        flt = AttributeFilter(
            tenant=request.tenant,
            viewer=request.user,
            types=tuple(filters.types),
            genres=tuple(filters.genres),
            platforms=tuple(filters.platforms),
            languages=tuple(filters.languages),
            year_min=filters.year_min,
            year_max=filters.year_max,
            min_rating=filters.min_rating,
        )

        lists: list[RankedList] = []
        names: list[str] = []
        embedding_ms = 0.0
        query_vector: FloatArray | None = None
        mask = self.indexes.mask(flt)
        keyword: Future[list[KeywordHit]] | None = None
        if request.mode in ("hybrid", "keyword"):
            # SQLite releases the GIL while it runs: the keyword query overlaps with
            # embedding the query and the vector search below.
            keyword = self._keyword_pool.submit(
                self.repo.keyword_search, request.tenant, request.user, request.query, filters, pool
            )
        if request.mode in ("hybrid", "semantic"):
            t0 = time.perf_counter()
            query_vector = self.embed_query(request.query)
            embedding_ms = (time.perf_counter() - t0) * 1000
            found = self.indexes.search(query_vector, pool, mask)
            lists.append(RankedList(found.keys, found.scores, fusion.semantic_weight))
            names.append("vector")
        if keyword is not None:
            hits = keyword.result()
            lists.append(
                RankedList(
                    np.array([h.pk for h in hits], dtype=np.int64),
                    np.array([h.score for h in hits], dtype=np.float32),
                    fusion.keyword_weight,
                )
            )
            names.append("keyword")

        fused = self._fuse(lists, request.mode, fusion)
        end = request.offset + request.limit
        page_keys = [int(k) for k in fused.keys[request.offset : end]]
        items = self.repo.get_many(page_keys)
        sims: dict[int, float] = {}
        if query_vector is not None:
            sims = self.indexes.similarities(query_vector, page_keys)
        method = fusion.method if request.mode == "hybrid" else request.mode
        results = []
        for row, key in enumerate(page_keys, start=request.offset):
            item = items.get(key)
            if item is None:  # deleted between retrieval and hydration
                continue
            results.append(self._hit(item, fused, row, names, sims.get(key), method))
        return SearchResponse(
            results=results,
            took_ms=(time.perf_counter() - started) * 1000,
            embedding_ms=embedding_ms,
            matched=None if filters.is_empty() else int(mask.sum()),
            next_offset=end if fused.keys.shape[0] > end else None,
        )

    @staticmethod
    def _fuse(lists: list[RankedList], mode: str, fusion: FusionSettings) -> Fused:
        if mode != "hybrid":
            # One list: keep its own order; fused score is its raw score.
            only = lists[0]
            n = only.keys.shape[0]
            return Fused(
                only.keys,
                only.scores,
                np.arange(1, n + 1, dtype=np.int32).reshape(n, 1),
                only.scores.reshape(n, 1),
            )
        if fusion.method == "weighted":
            return weighted_fusion(lists)
        return reciprocal_rank_fusion(lists, fusion.rrf_k)

    @staticmethod
    def _hit(
        item: MediaItem,
        fused: Fused,
        row: int,
        names: list[str],
        similarity: float | None,
        method: str,
    ) -> SearchHit:
        explanation = Explanation(fused_score=float(fused.scores[row]), method=method)
        for column, name in enumerate(names):
            rank = int(fused.ranks[row, column])
            raw = float(fused.raw_scores[row, column])
            if name == "keyword" and rank:
                explanation.keyword_rank, explanation.keyword_score = rank, raw
            if name == "vector" and rank:
                explanation.vector_rank = rank
        if similarity is not None:
            explanation.vector_similarity = similarity
        description = item.description
        if len(description) > DESCRIPTION_PREVIEW_CHARS:
            description = description[:DESCRIPTION_PREVIEW_CHARS].rsplit(" ", 1)[0] + "…"
        return SearchHit(
            id=item.id,
            title=item.title,
            year=item.year,
            type=item.type,
            genres=item.genres,
            language=item.language,
            platforms=item.platform_names(),
            rating=item.rating,
            description=description,
            image_url=item.image_url,
            score=float(fused.scores[row]),
            explanation=explanation,
        )
