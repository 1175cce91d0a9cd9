"""Discovery feed and "more like this".

Candidates come from small named sources (`services/candidates.py`: content ANN
on the preference vector, collaborative, popular, trending, fresh, explicit
preferences), each inside the viewer's filter and without what they have seen.
The union is scored by a weighted blend of features read from stored attributes,
and diversified with MMR. Each item carries the reasons that put it there.
"""

from __future__ import annotations

import base64
import functools
import itertools
import secrets
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, Field

from metamedia.domain.users import Preferences
from metamedia.engine.payload import MATURITY_LEVELS, AttributeFilter
from metamedia.engine.rank import minmax, mmr
from metamedia.engine.vectors import FloatArray, normalize
from metamedia.errors import InvalidRequestError, NotFoundError
from metamedia.services.caching import Caches
from metamedia.services.candidates import (
    TRENDING_WINDOW_S as TRENDING_WINDOW_S,  # the trending window, where it always was
)
from metamedia.services.candidates import (
    CandidateContext,
    CandidateSource,
    CatalogRankings,
    CollaborativeSource,
    ContentSource,
    EaseScores,
    FreshSource,
    PopularSource,
    PreferenceSource,
    RankingRows,
    TrendingSource,
)
from metamedia.services.indexing import IndexManager
from metamedia.services.training import ModelRegistry
from metamedia.services.users import UserService
from metamedia.storage.records import EventRow, RankingRow
from metamedia.storage.roles import CatalogStore, UserStore

NOT_CONSUMED = frozenset({"dislike", "skip", "impression", "unfavorite"})
# Anything the user already engaged with leaves the discovery feed (it shows new things).
SEEN_TYPES = frozenset({"view", "complete", "rate", "dislike", "skip", "like", "favorite", "share"})
POSITIVE_TYPES = frozenset({"like", "favorite", "complete", "share"})
IMPRESSION_WINDOW_S = 86_400.0
CANDIDATE_SOURCES = frozenset(
    {"content", "popular", "trending", "fresh", "collaborative", "preference"}
)
# Which sources proposed an item, as bits of an int: a set per candidate was a
# thousand containers per feed for the cyclic garbage collector to track.
_SOURCE_BIT = {name: 1 << i for i, name in enumerate(sorted(CANDIDATE_SOURCES))}
FEED_DEPTH = 100  # five pages of twenty per snapshot
POOL = 300
CONTENT_POOL = 150  # ANN cost grows with k (efSearch >= 2k)
# How many items each source proposes.
SOURCE_POOLS = {
    "content": CONTENT_POOL,
    "collaborative": POOL,
    "popular": POOL,
    "trending": POOL,
    "fresh": 50,
    "preference": POOL,
}


@dataclass(frozen=True)
class FeedWeights:
    """Blend of features; a variant of an experiment can swap these."""

    content: float = 0.30
    collaborative: float = 0.45
    popularity: float = 0.08
    trending: float = 0.04
    freshness: float = 0.03
    preference: float = 0.07
    platform: float = 0.03
    diversity: float = 0.10
    cold_start_diversity: float = 0.5  # with no history, breadth matters more than fit
    theme_cap: int = 4  # at most this many of one theme in any window of ten
    sources: frozenset[str] = CANDIDATE_SOURCES


class FeedItem(BaseModel):
    id: str
    title: str
    score: float
    reasons: list[str]


class FeedPage(BaseModel):
    items: list[FeedItem]
    next_cursor: str | None
    cached: bool = False
    experiments: dict[str, str] = Field(
        default_factory=dict, description="Experiment -> variant this page was ranked under."
    )


class RecommendService:
    def __init__(
        self,
        media: CatalogStore,
        users: UserStore,
        user_service: UserService,
        indexes: IndexManager,
        caches: Caches,
        registry: ModelRegistry | None = None,
        weights: FeedWeights | None = None,
    ) -> None:
        self.media = media
        self.users = users
        self.user_service = user_service
        self.indexes = indexes
        self.registry = registry
        self.weights = weights or FeedWeights()
        self.caches = caches
        self.trending = TrendingSource(users, indexes.visible)
        rankings = CatalogRankings(indexes.visible, indexes.shares_private)
        self.rows = RankingRows(media)
        self.ease_scores = EaseScores()
        self.sources: list[CandidateSource] = [
            ContentSource(indexes),
            CollaborativeSource(indexes.visible),
            PopularSource(media, rankings),
            self.trending,
            FreshSource(media, rankings),
            PreferenceSource(media, rankings),
        ]

    def forget_user(self, tenant: str, user: str) -> None:
        """Drop a user's cached pages, snapshots and collaborative scores (erasure must
        leave no ranked list)."""
        self.ease_scores.forget(tenant, user)
        self.caches.feed.drop_where(lambda key: key[1:3] == (tenant, user))  # type: ignore[index]
        self.caches.feed_snapshot.drop_where(lambda key: key[:2] == (tenant, user))  # type: ignore[index]

    def user_changed(self, tenant: str, user: str) -> None:
        """A new event or preference: the next first page is recomputed. Open cursors
        keep paging their snapshot so a page turn never repeats or skips items."""
        self.caches.feed.drop_where(
            lambda key: key[0] == "page" and key[1:3] == (tenant, user)  # type: ignore[index]
        )

    # -- feed -----------------------------------------------------------------

    def feed(
        self,
        tenant: str,
        user: str,
        limit: int = 20,
        cursor: str | None = None,
        weights: FeedWeights | None = None,
    ) -> FeedPage:
        """One page of the user's feed; `weights` overrides the blend (experiment variants)."""
        if not 1 <= limit <= 100:
            raise InvalidRequestError(f"limit must be between 1 and 100, got {limit}")
        self.indexes.sync()
        record = self.user_service.require(tenant, user)
        weights = weights or self.weights
        page_key = ("page", tenant, user, record.updated_at, self.indexes.watermark, weights, limit)
        if not cursor:
            hit: FeedPage | None = self.caches.feed.get(page_key)
            if hit is not None:
                return FeedPage.model_copy(hit, update={"cached": True})
        if cursor:
            snapshot_id, offset = _decode_cursor(cursor)
            ranked = self.caches.feed_snapshot.get((tenant, user, snapshot_id))
            if ranked is None:
                raise InvalidRequestError(
                    "the feed cursor has expired; request the first page again"
                )
        else:
            snapshot_id, offset = secrets.token_hex(6), 0
            ranked = self._rank(tenant, user, weights)
            self.caches.feed_snapshot.set((tenant, user, snapshot_id), ranked)
        result = self._page(ranked, snapshot_id, offset, limit)
        if not cursor:
            self.caches.feed.set(page_key, result)
            self.caches.govern_memory()
        return result

    def _page(
        self, ranked: list[tuple[int, float, list[str]]], snapshot_id: str, offset: int, limit: int
    ) -> FeedPage:
        page = ranked[offset : offset + limit]
        # Ids and titles from the ranking rows (columns, cached per catalog version):
        # parsing whole documents for two fields was a sixth of a feed's time.
        rows = self.rows.get(self.media.last_change(), [key for key, _, _ in page])
        out = [
            FeedItem(id=rows[key].external_id, title=rows[key].title, score=score, reasons=reasons)
            for key, score, reasons in page
            if key in rows
        ]
        end = offset + limit
        next_cursor = _encode_cursor(snapshot_id, end) if end < len(ranked) else None
        return FeedPage(items=out, next_cursor=next_cursor)

    def candidate_context(self, tenant: str, user: str) -> CandidateContext:
        """What the candidate sources know about `user`: their filter (tenant, private
        items, maturity limit, blocked owners), what they have seen and consumed,
        their preference vector and the tenant's trained model."""
        record = self.user_service.require(tenant, user)
        prefs = Preferences.model_validate(record.preferences)
        events = self.user_service.histories.events(record)
        now = time.time()
        return CandidateContext(
            tenant=tenant,
            user=user,
            prefs=prefs,
            flt=_filter_for(tenant, user, prefs),
            events=events,
            seen=frozenset(_seen(events, now)),
            history=[e.media_pk for e in events if e.type not in NOT_CONSUMED],
            direction=self.user_service.preference_direction(record),
            now=now,
            catalog_version=self.media.last_change(),
            ease=self.registry.ease(tenant) if self.registry is not None else None,
            ease_scores=functools.partial(
                self.ease_scores.score, (tenant, user, record.pk, record.created_at)
            ),
        )

    def _rank(self, tenant: str, user: str, w: FeedWeights) -> list[tuple[int, float, list[str]]]:
        ctx = self.candidate_context(tenant, user)
        proposed = self._candidates(ctx, w.sources)
        # The candidates' vectors as one matrix, in key order (stacking a dict of rows
        # cost a millisecond per feed).
        keys, matrix = self.indexes.vector_matrix(sorted(proposed))
        rows = self.rows.get(ctx.catalog_version, keys)
        if len(rows) < len(keys):
            kept = [i for i, k in enumerate(keys) if k in rows]
            keys, matrix = [keys[i] for i in kept], matrix[kept]
        if not keys:
            return []
        ranked_rows = [rows[k] for k in keys]
        score = self._score(ctx, keys, matrix, ranked_rows, w)
        best = np.argsort(-score, kind="stable")[: FEED_DEPTH * 2]
        personal = ctx.direction is not None or ctx.collab_ranked[0].shape[0] > 0
        diversity = w.diversity if personal else w.cold_start_diversity
        picked = best[mmr(score[best], normalize(matrix[best]), FEED_DEPTH, diversity)]
        if self.registry is not None:
            picked = _cap_themes(picked, keys, self.registry.theme_of(tenant), w.theme_cap)
        order = picked.tolist()
        explain = _Explainer(self, ctx, proposed, ranked_rows, keys, order, matrix)
        return [(keys[i], round(float(score[i]), 6), explain.reasons(i)) for i in order]

    def _candidates(self, ctx: CandidateContext, enabled: frozenset[str]) -> dict[int, int]:
        """Union of the enabled sources: each item with the sources that proposed it
        (its reasons), as `_SOURCE_BIT` bits."""
        proposed: dict[int, int] = {}
        get = proposed.get
        for source in self.sources:
            if source.name not in enabled:
                continue
            bit = _SOURCE_BIT[source.name]
            for candidate in source.candidates(ctx, SOURCE_POOLS[source.name]):
                proposed[candidate.pk] = get(candidate.pk, 0) | bit
        return proposed

    def _score(
        self,
        ctx: CandidateContext,
        keys: list[int],
        matrix: FloatArray,
        rows: list[RankingRow],
        w: FeedWeights,
    ) -> FloatArray:
        """Weighted blend of per-candidate features, each scaled to [0, 1] (or -1..1),
        all read from stored attributes (never from where an item sits in an index)."""
        prefs = ctx.prefs
        content = matrix @ ctx.direction if ctx.direction is not None else np.zeros(len(keys))
        popularity = np.array([r.popularity for r in rows], dtype=np.float32)
        pop = minmax(np.log1p(popularity).astype(np.float32))
        trending = self.trending.counts(ctx, POOL)
        trend = minmax(np.array([trending.get(k, 0) for k in keys], dtype=np.float32))
        # Newer by the item's own date ranks higher (undated items lowest).
        by_date = _date_order(rows)
        order = np.empty(len(rows), dtype=np.int64)
        order[by_date] = np.arange(len(rows))
        fresh = (order / max(len(keys) - 1, 1)).astype(np.float32)
        liked, disliked = set(prefs.liked_genres), set(prefs.disliked_genres)
        languages, platforms = set(prefs.languages), set(prefs.platforms)
        # Without stated preferences both features are zero for every row: no loop.
        pref = (
            np.array(
                [
                    float(not liked.isdisjoint(r.genres))
                    - float(not disliked.isdisjoint(r.genres))
                    + 0.5 * float(r.language in languages)
                    for r in rows
                ],
                dtype=np.float32,
            )
            if liked or disliked or languages
            else np.zeros(len(rows), dtype=np.float32)
        )
        platform = (
            np.array([float(not platforms.isdisjoint(r.platforms)) for r in rows], dtype=np.float32)
            if platforms
            else np.zeros(len(rows), dtype=np.float32)
        )
        collab = ctx.collab_feature(keys)
        score = (
            (w.content * minmax(content.astype(np.float32)) if ctx.direction is not None else 0.0)
            + (w.collaborative * minmax(collab) if ctx.collab_ranked[0].shape[0] else 0.0)
            + w.popularity * pop
            + w.trending * trend
            + w.freshness * fresh
            + w.preference * pref
            + w.platform * platform
        )
        return np.asarray(score, dtype=np.float32)

    # -- more like this ---------------------------------------------------------

    def similar(
        self,
        tenant: str,
        media_id: str,
        *,
        user: str | None = None,
        positive: list[str] | None = None,
        negative: list[str] | None = None,
        limit: int = 10,
    ) -> list[FeedItem]:
        """Items like `media_id` (plus positive examples, minus negative ones).

        With a user, results lean toward their preference vector and skip what
        they have already seen.
        """
        if not 1 <= limit <= 100:
            raise InvalidRequestError(f"limit must be between 1 and 100, got {limit}")
        self.indexes.sync()
        names = [media_id, *(positive or []), *(negative or [])]
        stored = {n: self.media.get(tenant, n) for n in dict.fromkeys(names)}
        for name, entry in stored.items():
            if entry is None or not entry.item.visible_to(user):
                raise NotFoundError(f"media item {name!r} not found in tenant {tenant!r}")
        pk_of = {n: s.pk for n, s in stored.items() if s is not None}
        vectors = self.indexes.vectors_of(list(pk_of.values()))
        pos = [vectors[pk_of[n]] for n in [media_id, *(positive or [])] if pk_of[n] in vectors]
        neg = [vectors[pk_of[n]] for n in negative or [] if pk_of[n] in vectors]
        if not pos:
            raise NotFoundError(f"media item {media_id!r} has no vector yet; run index rebuild")
        query = np.mean(pos, axis=0)
        if neg:
            query = query - 0.5 * np.mean(neg, axis=0)
        excluded = set(pk_of.values())
        direction = None
        if user is not None:
            record = self.user_service.require(tenant, user)
            excluded |= _seen(self.users.events(record.pk), time.time())
            direction = self.user_service.preference_direction(record)
            if direction is not None:
                query = query + 0.3 * direction
        query_unit = normalize(query)[0]
        flt = AttributeFilter(tenant=tenant, viewer=user)
        hits = self.indexes.nearest(query_unit, limit, flt, excluded)
        items = self.media.get_many([pk for pk, _ in hits])
        anchor = stored[media_id]
        title = anchor.item.title if anchor is not None else media_id
        reasons = [f"similar to {title}"]
        if direction is not None:
            reasons.append("tuned to your taste")
        return [
            FeedItem(id=items[key].id, title=items[key].title, score=score, reasons=reasons)
            for key, score in hits
            if key in items
        ]


class _Explainer:
    """Reasons for each ranked item, from the sources that proposed it and its attributes."""

    def __init__(
        self,
        service: RecommendService,
        ctx: CandidateContext,
        proposed: dict[int, int],
        rows: list[RankingRow],
        keys: list[int],
        picked: list[int],
        matrix: FloatArray,
    ) -> None:
        """`picked`: the indices (into `keys`, `rows` and the rows of `matrix`, the
        candidates' vectors) that will be asked for reasons."""
        self.proposed, self.keys, self.rows = proposed, keys, rows
        prefs = ctx.prefs
        recent = list(
            itertools.islice(
                (
                    e.media_pk
                    for e in reversed(ctx.events)
                    if e.type in POSITIVE_TYPES or (e.type == "rate" and (e.value or 0) >= 4.0)
                ),
                20,
            )
        )
        positives = service.indexes.vectors_of(list(dict.fromkeys(recent)))
        self.positive_keys = list(positives)
        # The liked item nearest each picked candidate, for all of them in one product.
        self.nearest_positive: dict[int, int] = {}
        if positives:
            positive_matrix = np.vstack([positives[k] for k in self.positive_keys])
            content = [i for i in picked if proposed[keys[i]] & _SOURCE_BIT["content"]]
            if content:
                best = np.argmax(positive_matrix @ matrix[content].T, axis=0).tolist()
                self.nearest_positive = {
                    i: self.positive_keys[b] for i, b in zip(content, best, strict=True)
                }
        self.liked = prefs.liked_genres[:10]
        self.platforms = set(prefs.platforms)
        self.collab_anchor: dict[int, int] = {}
        if ctx.ease is not None:
            # Only the items that are explained: the anchors of every collaborative
            # candidate were a history x candidates block, most of it never quoted.
            collab = _SOURCE_BIT["collaborative"]
            collab_keys = [keys[i] for i in picked if proposed[keys[i]] & collab]
            self.collab_anchor = ctx.ease.strongest_links(ctx.history, collab_keys)
        anchors = sorted(set(self.positive_keys) | set(self.collab_anchor.values()))
        # An anchor the user may no longer see (made private since) is never quoted.
        visible = service.indexes.visible(ctx.flt, anchors) if anchors else set()
        anchor_rows = service.rows.get(ctx.catalog_version, [k for k in anchors if k in visible])
        self.titles = {k: row.title for k, row in anchor_rows.items()}

    def reasons(self, i: int) -> list[str]:
        key = self.keys[i]
        sources = self.proposed[key]
        reasons = []
        if key in self.collab_anchor and self.collab_anchor[key] in self.titles:
            title = self.titles[self.collab_anchor[key]]
            reasons.append(f"people who watched {title} also watched this")
        if i in self.nearest_positive:
            anchor = self.nearest_positive[i]
            if anchor in self.titles:
                reasons.append(f"because you liked {self.titles[anchor]}")
        row = self.rows[i]
        shared_genre = next((g for g in self.liked if g in row.genres), None)
        if shared_genre is not None:
            reasons.append(f"matches your taste in {shared_genre}")
        if not self.platforms.isdisjoint(row.platforms):
            reasons.append("available on your platforms")
        if sources & _SOURCE_BIT["trending"]:
            reasons.append("trending this week")
        if sources & _SOURCE_BIT["popular"] and not reasons:
            reasons.append("popular")
        if sources & _SOURCE_BIT["fresh"] and not reasons:
            reasons.append("new release")
        return reasons or ["recommended for you"]


def _date_key(row: RankingRow) -> tuple[bool, str, float, int]:
    """Oldest first by the item's own date, as `CatalogStore.newest` orders (reversed):
    undated items first, a year-only item before the dated ones of its year."""
    return (row.released is not None, row.released or "", row.created_at, row.pk)


def _date_order(rows: list[RankingRow]) -> npt.NDArray[np.intp]:
    """Indices of `rows` sorted by `_date_key`, as one lexsort of columns (last key
    first) instead of a tuple per row; the keys end in the pk, so nothing ties."""
    released = [r.released for r in rows]
    return np.lexsort(
        (
            np.array([r.pk for r in rows], dtype=np.int64),
            np.array([r.created_at for r in rows], dtype=np.float64),
            np.array([d or "" for d in released], dtype=np.str_),
            np.array([d is not None for d in released], dtype=bool),
        )
    )


def _cap_themes(
    picked: np.ndarray, keys: list[int], theme_of: dict[int, int], cap: int, window: int = 10
) -> np.ndarray:
    """Defer an item whose theme already fills `cap` of the last `window` places."""
    if not theme_of:
        return picked
    accepted: list[int] = []
    deferred: list[int] = []
    for i in picked.tolist():
        theme = theme_of.get(keys[i])
        recent = [theme_of.get(keys[j]) for j in accepted[-window:]]
        if theme is not None and recent.count(theme) >= cap:
            deferred.append(i)
        else:
            accepted.append(i)
    return np.array(accepted + deferred, dtype=np.int64)


def _filter_for(tenant: str, user: str, prefs: Preferences) -> AttributeFilter:
    limit = None
    if prefs.maturity_limit:
        limit = MATURITY_LEVELS.get(prefs.maturity_limit.strip().lower())
    return AttributeFilter(
        tenant=tenant,
        viewer=user,
        max_maturity=limit,
        blocked_owners=tuple(prefs.blocked_owners),
    )


def _seen(events: list[EventRow], now: float) -> set[int]:
    seen = set()
    for event in events:
        if (
            event.type in SEEN_TYPES
            or (event.type == "progress" and (event.value or 0) >= 90)
            or (event.type == "impression" and event.ts >= now - IMPRESSION_WINDOW_S)
        ):
            seen.add(event.media_pk)
    return seen


def _encode_cursor(snapshot: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{snapshot}:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        snapshot, _, offset = base64.urlsafe_b64decode(padded).decode().partition(":")
        return snapshot, int(offset)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"malformed feed cursor {cursor[:40]!r}") from exc
