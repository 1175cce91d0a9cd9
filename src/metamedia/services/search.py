"""Hybrid search: BM25, passage vectors and exact titles, ranked by a learned model.

Three candidate lists are merged (see `search_features`): the in-memory BM25
top-k, the items whose best passage is nearest the query, and every item
whose title or alternate title is the query. The learned linear ranker
(`engine.ranker`, trained by `python -m bench train-ranker`) orders the
union; reciprocal-rank or weighted fusion of the two lists remain available
per request or experiment. Filters are one position mask applied inside every
retrieval, so a selective filter still fills the page.

Long requests are read whole: the query is cut into windows the model can
read, each window embedded, and an item's dense score is its best passage
against its best window.
"""

from __future__ import annotations

import logging
import time

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
from metamedia.engine.passages import query_windows
from metamedia.engine.payload import AttributeFilter
from metamedia.engine.rank import Fused, RankedList, reciprocal_rank_fusion, weighted_fusion
from metamedia.engine.ranker import LinearRanker
from metamedia.engine.vectors import FloatArray
from metamedia.errors import StoreUnavailableError
from metamedia.services.batching import QueryBatcher
from metamedia.services.caching import Caches
from metamedia.services.indexing import IndexManager
from metamedia.services.parallel import core_pool
from metamedia.services.ranker_model import load_ranker
from metamedia.services.search_features import Candidates, build_candidates
from metamedia.storage.roles import CatalogStore

log = logging.getLogger(__name__)

DESCRIPTION_PREVIEW_CHARS = 300


class SearchService:
    def __init__(
        self,
        repo: CatalogStore,
        embedder: Embedder,
        indexes: IndexManager,
        settings: Settings,
        caches: Caches,
    ) -> None:
        self.repo = repo
        self.embedder = embedder
        self.indexes = indexes
        self.settings = settings
        self.caches = caches
        self.batcher = QueryBatcher(embedder.encode)
        self.ranker: LinearRanker | None = load_ranker()

    def default_fusion(self) -> FusionSettings:
        s = self.settings
        return FusionSettings(
            method=s.fusion_method,  # type: ignore[arg-type]
            keyword_weight=s.keyword_weight,
            semantic_weight=s.semantic_weight,
            rrf_k=s.rrf_k,
        )

    def embed_query(self, query: str) -> FloatArray:
        """One unit vector per window of the query (one row for everyday queries)."""
        key = (self.embedder.name, query)
        cached = self.caches.query_embedding.get(key)
        if cached is not None:
            return cached
        windows = query_windows(query)
        if len(windows) == 1:
            matrix = self.batcher.encode_one(windows[0]).reshape(1, -1)
        else:
            # One window per model call: no slower than one padded batch (the last
            # window is shorter), and the runtime's memory arena, which keeps its
            # largest activations for good, stays at a few windows'. Batches of a
            # dozen windows had grown the serving process by ~40 MB. The calls run
            # side by side, a core each: `serve` gives the model one thread per
            # call, so a long request would otherwise leave the other cores idle.
            matrix = np.vstack(list(core_pool().map(self._encode_window, windows)))
        self.caches.query_embedding.set(key, matrix)
        return matrix

    def _encode_window(self, window: str) -> FloatArray:
        return self.embedder.encode([window])

    def search(self, request: SearchRequest) -> SearchResponse:
        """Results for one request; a repeat within the TTL at the same catalog version
        is served from the result cache (any catalog write changes the version)."""
        started = time.perf_counter()
        try:
            self.indexes.sync()
        except StoreUnavailableError:
            # The index answers as of its last sync; cached answers stay valid for it.
            log.warning("catalog unavailable: searching the index as last synced")
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
        flt = AttributeFilter.from_search(request.tenant, request.user, filters)
        mask = self.indexes.mask(flt)
        embedding_ms = 0.0
        query_vectors: FloatArray | None = None
        if request.mode in ("hybrid", "semantic"):
            t0 = time.perf_counter()
            query_vectors = self.embed_query(request.query)
            embedding_ms = (time.perf_counter() - t0) * 1000
        candidates = build_candidates(
            self.indexes, request.query, query_vectors, request.tenant, pool, mask
        )
        fused, names, method = self._order(candidates, request.mode, fusion)
        end = request.offset + request.limit
        page_keys = [int(k) for k in fused.keys[request.offset : end]]
        items = self.repo.get_many(page_keys)
        dense = dict(zip(candidates.keys.tolist(), candidates.dense_sim.tolist(), strict=True))
        exact = set(candidates.keys[candidates.title_exact].tolist())
        results = []
        for row, key in enumerate(page_keys, start=request.offset):
            item = items.get(key)
            if item is None:  # deleted between retrieval and hydration
                continue
            similarity = dense.get(key) if query_vectors is not None else None
            hit = self._hit(item, fused, row, names, similarity, method)
            hit.explanation.title_match = key in exact
            hit.explanation.vector_plan = candidates.vector_plan
            results.append(hit)
        return SearchResponse(
            results=results,
            took_ms=(time.perf_counter() - started) * 1000,
            embedding_ms=embedding_ms,
            matched=None if filters.is_empty() else int(mask.sum()),
            next_offset=end if fused.keys.shape[0] > end else None,
        )

    def _order(
        self, candidates: Candidates, mode: str, fusion: FusionSettings
    ) -> tuple[Fused, list[str], str]:
        """The candidates in result order, with the per-list ranks the explanation shows."""
        keys = candidates.keys
        n = keys.shape[0]
        ranks = np.column_stack([candidates.keyword_rank, candidates.dense_rank]).astype(np.int32)
        raw = np.column_stack([candidates.keyword_score, candidates.dense_sim]).astype(np.float32)
        names = ["keyword", "vector"]
        if mode == "keyword":
            # Whole-document BM25 (titles included; extra title weight lost on the
            # training sets: MRR@10 0.52 at 0 vs 0.44 at 0.5 on descriptive-train). An
            # exact title scores the best BM25 score on top of its own: first, and
            # scores stay monotone.
            bm25 = candidates.keyword_score
            top = float(bm25.max()) if n else 0.0
            score = bm25 + candidates.title_exact * (top + 1.0)
            present = (score > 0) & ((candidates.keyword_rank > 0) | candidates.title_exact)
            order = np.flatnonzero(present)
            order = order[np.argsort(-score[order], kind="stable")]
            own_rank = np.zeros((n, 1), dtype=np.int32)
            own_rank[order, 0] = np.arange(1, order.shape[0] + 1)
            fused = Fused(
                keys[order],
                score[order].astype(np.float32),
                own_rank[order],
                score[order].reshape(-1, 1).astype(np.float32),
            )
            return fused, ["keyword"], "keyword"
        if mode == "semantic":
            present = candidates.dense_rank > 0
            fused = self._sorted(keys, candidates.dense_sim, present, ranks[:, 1:], raw[:, 1:])
            return fused, ["vector"], "semantic"
        if fusion.method == "learned" and self.ranker is not None and n:
            learned = self.ranker.score(candidates.features)
            fused = self._sorted(keys, learned, np.ones(n, bool), ranks, raw)
            return _titles_first(fused, candidates), names, "learned"
        lists = [
            RankedList(
                *_listed(keys, candidates.keyword_rank, candidates.keyword_score),
                fusion.keyword_weight,
            ),
            RankedList(
                *_listed(keys, candidates.dense_rank, candidates.dense_sim),
                fusion.semantic_weight,
            ),
        ]
        if fusion.method == "weighted":
            return _titles_first(weighted_fusion(lists), candidates), names, "weighted"
        fused = reciprocal_rank_fusion(lists, fusion.rrf_k)
        return _titles_first(fused, candidates), names, "rrf"

    @staticmethod
    def _sorted(
        keys: np.ndarray, score: np.ndarray, present: np.ndarray, ranks: np.ndarray, raw: np.ndarray
    ) -> Fused:
        chosen = np.flatnonzero(present)
        order = chosen[np.argsort(-score[chosen], kind="stable")]
        return Fused(keys[order], score[order].astype(np.float32), ranks[order], raw[order])

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


def _titles_first(fused: Fused, candidates: Candidates) -> Fused:
    """Titles always work: a query that is an item's title (or its title and year)
    puts that item first, whatever the fusion says of the rest; an exact title
    match that neither list retrieved still joins the page."""
    named = candidates.keys[candidates.title_exact | candidates.title_year]
    if named.shape[0] == 0:
        return fused
    missing = named[~np.isin(named, fused.keys)]
    if missing.shape[0]:
        width = fused.ranks.shape[1]
        top = float(fused.scores.max()) if fused.scores.shape[0] else 0.0
        fused = Fused(
            np.concatenate([fused.keys, missing]),
            np.concatenate([fused.scores, np.full(missing.shape[0], top, np.float32)]),
            np.concatenate([fused.ranks, np.zeros((missing.shape[0], width), np.int32)]),
            np.concatenate([fused.raw_scores, np.zeros((missing.shape[0], width), np.float32)]),
        )
    first = np.isin(fused.keys, named)
    order = np.concatenate([np.flatnonzero(first), np.flatnonzero(~first)])
    return Fused(
        fused.keys[order], fused.scores[order], fused.ranks[order], fused.raw_scores[order]
    )


def _listed(
    keys: np.ndarray, ranks: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One retriever's own list (its keys in its rank order, with its scores)."""
    present = np.flatnonzero(ranks > 0)
    order = present[np.argsort(ranks[present], kind="stable")]
    return keys[order], np.asarray(scores[order], dtype=np.float32)
