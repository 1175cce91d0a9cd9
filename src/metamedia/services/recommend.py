"""Discovery feed and "more like this".

Candidates come from several small sources (content ANN on the preference
vector, popular, trending, fresh, explicit-preference match), are scored by a
weighted blend of features, cleaned of anything seen, private or blocked, and
diversified with MMR. Each item carries the reasons that put it there.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, Field

from metamedia.domain.users import Preferences
from metamedia.engine.collaborative import EaseModel
from metamedia.engine.payload import MATURITY_LEVELS, AttributeFilter
from metamedia.engine.rank import minmax, mmr
from metamedia.engine.vectors import FloatArray, normalize
from metamedia.errors import InvalidRequestError, NotFoundError
from metamedia.services.caching import Caches
from metamedia.services.indexing import IndexManager
from metamedia.services.training import ModelRegistry
from metamedia.services.users import UserService
from metamedia.storage.records import EventRow
from metamedia.storage.roles import CatalogStore, UserStore

NOT_CONSUMED = frozenset({"dislike", "skip", "impression", "unfavorite"})
# Anything the user already engaged with leaves the discovery feed (it shows new things).
SEEN_TYPES = frozenset({"view", "complete", "rate", "dislike", "skip", "like", "favorite", "share"})
POSITIVE_TYPES = frozenset({"like", "favorite", "complete", "share"})
IMPRESSION_WINDOW_S = 86_400.0
TRENDING_WINDOW_S = 7 * 86_400.0
CANDIDATE_SOURCES = frozenset(
    {"content", "popular", "trending", "fresh", "collaborative", "preference"}
)
FEED_DEPTH = 100  # five pages of twenty per snapshot
POOL = 300
CONTENT_POOL = 150  # ANN cost grows with k (efSearch >= 2k)


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


@dataclass
class _Candidates:
    enabled: frozenset[str]
    keys: dict[int, set[str]] = field(default_factory=dict)

    def add(self, keys: np.ndarray, source: str) -> None:
        if source not in self.enabled:
            return
        for key in keys.tolist():
            self.keys.setdefault(int(key), set()).add(source)


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

    def forget_user(self, tenant: str, user: str) -> None:
        """Drop a user's cached pages and snapshots (erasure must leave no ranked list)."""
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
        items = self.media.get_many([key for key, _, _ in page])
        out = [
            FeedItem(id=items[key].id, title=items[key].title, score=score, reasons=reasons)
            for key, score, reasons in page
            if key in items
        ]
        end = offset + limit
        next_cursor = _encode_cursor(snapshot_id, end) if end < len(ranked) else None
        return FeedPage(items=out, next_cursor=next_cursor)

    def _rank(self, tenant: str, user: str, w: FeedWeights) -> list[tuple[int, float, list[str]]]:
        record = self.user_service.require(tenant, user)
        ctx = _Context(
            tenant=tenant,
            prefs=Preferences.model_validate(record.preferences),
            events=self.users.events(record.pk),
            direction=self.user_service.preference_direction(record),
            now=time.time(),
            user=user,
        )
        mask = self.indexes.mask(_filter_for(tenant, user, ctx.prefs))
        for pos in self.indexes.positions_of(sorted(_seen(ctx.events, ctx.now))).values():
            mask[pos] = False
        if not mask.any():
            return []
        cands = self._candidates(ctx, mask, w.sources)
        keys = sorted(cands.keys)
        vectors = self.indexes.vectors_of(keys)
        keys = [k for k in keys if k in vectors]
        if not keys:
            return []
        matrix = np.vstack([vectors[k] for k in keys])
        positions = self.indexes.positions_of(keys)
        pos_arr = np.array([positions[k] for k in keys], dtype=np.int64)
        score = self._score(ctx, keys, matrix, pos_arr, w)
        best = np.argsort(-score, kind="stable")[: FEED_DEPTH * 2]
        personal = ctx.direction is not None or bool(ctx.collab)
        diversity = w.diversity if personal else w.cold_start_diversity
        picked = best[mmr(score[best], normalize(matrix[best]), FEED_DEPTH, diversity)]
        if self.registry is not None:
            picked = _cap_themes(picked, keys, self.registry.theme_of(tenant), w.theme_cap)
        explain = _Explainer(self, ctx, cands, pos_arr, keys)
        return [
            (keys[i], round(float(score[i]), 6), explain.reasons(i, matrix[i]))
            for i in picked.tolist()
        ]

    def _candidates(self, ctx: _Context, mask: np.ndarray, sources: frozenset[str]) -> _Candidates:
        """Merge the candidate sources; each remembers which sources proposed an item."""
        cands = _Candidates(sources)
        popularity = self.indexes.popularity()
        ctx.popularity = popularity
        if ctx.direction is not None:
            cands.add(self.indexes.search(ctx.direction, CONTENT_POOL, mask).keys, "content")
        allowed = np.flatnonzero(mask)
        top_pop = allowed[_top(popularity[allowed], POOL)]
        cands.add(self.indexes.keys_at(top_pop), "popular")
        ctx.trending = dict(self.users.trending(ctx.tenant, ctx.now - TRENDING_WINDOW_S, POOL))
        trend_keys = np.array(list(ctx.trending), dtype=np.int64)
        cands.add(trend_keys[np.isin(trend_keys, self.indexes.keys_at(allowed))], "trending")
        cands.add(self.indexes.keys_at(allowed[-50:]), "fresh")
        ctx.ease = self.registry.ease(ctx.tenant) if self.registry is not None else None
        ctx.history = [e.media_pk for e in ctx.events if e.type not in NOT_CONSUMED]
        if ctx.ease is not None and ctx.history:
            ctx.collab = self._collaborative(ctx.ease, ctx.history, mask)
            best_collab = sorted(ctx.collab, key=lambda k: -ctx.collab[k])[:POOL]
            cands.add(np.array(best_collab, dtype=np.int64), "collaborative")
        if ctx.prefs.liked_genres:
            liked_mask = self.indexes.label_mask("genre", tuple(ctx.prefs.liked_genres))
            # Items written since `mask` was made sit past its end: not candidates now.
            liked = np.flatnonzero(mask & liked_mask[: mask.shape[0]])
            by_pop = liked[_top(popularity[liked], POOL)]
            cands.add(self.indexes.keys_at(by_pop), "preference")
        return cands

    def _score(
        self,
        ctx: _Context,
        keys: list[int],
        matrix: FloatArray,
        pos_arr: np.ndarray,
        w: FeedWeights,
    ) -> FloatArray:
        """Weighted blend of per-candidate features, each scaled to [0, 1] (or -1..1)."""
        prefs = ctx.prefs
        content = matrix @ ctx.direction if ctx.direction is not None else np.zeros(len(keys))
        pop = minmax(np.log1p(ctx.popularity[pos_arr]).astype(np.float32))
        trend = minmax(np.array([ctx.trending.get(k, 0) for k in keys], dtype=np.float32))
        order = np.argsort(np.argsort(pos_arr))  # newer positions = more recently added
        fresh = (order / max(len(keys) - 1, 1)).astype(np.float32)
        pref = np.zeros(len(keys), dtype=np.float32)
        if prefs.liked_genres:
            pref += self.indexes.label_mask("genre", tuple(prefs.liked_genres))[pos_arr]
        if prefs.disliked_genres:
            pref -= self.indexes.label_mask("genre", tuple(prefs.disliked_genres))[pos_arr]
        if prefs.languages:
            pref += 0.5 * self.indexes.label_mask("language", tuple(prefs.languages))[pos_arr]
        platform = np.zeros(len(keys), dtype=np.float32)
        if prefs.platforms:
            platform += self.indexes.label_mask("platform", tuple(prefs.platforms))[pos_arr]
        collab = np.array([ctx.collab.get(k, 0.0) for k in keys], dtype=np.float32)
        score = (
            (w.content * minmax(content.astype(np.float32)) if ctx.direction is not None else 0.0)
            + (w.collaborative * minmax(collab) if ctx.collab else 0.0)
            + w.popularity * pop
            + w.trending * trend
            + w.freshness * fresh
            + w.preference * pref
            + w.platform * platform
        )
        return np.asarray(score, dtype=np.float32)

    def _collaborative(
        self, ease: EaseModel, history: list[int], mask: np.ndarray
    ) -> dict[int, float]:
        """EASE scores of the items the viewer may see, excluding what they have consumed."""
        scores = ease.score(history)
        positions = self.indexes.positions_array(ease.keys)
        visible = positions >= 0
        visible[visible] = mask[positions[visible]]
        visible &= ~np.isin(ease.keys, np.asarray(history, dtype=np.int64))
        return dict(zip(ease.keys[visible].tolist(), scores[visible].tolist(), strict=True))

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
        mask = self.indexes.mask(AttributeFilter(tenant=tenant, viewer=user))
        excluded = set(pk_of.values())
        direction = None
        if user is not None:
            record = self.user_service.require(tenant, user)
            excluded |= _seen(self.users.events(record.pk), time.time())
            direction = self.user_service.preference_direction(record)
            if direction is not None:
                query = query + 0.3 * direction
        for p in self.indexes.positions_of(sorted(excluded)).values():
            mask[p] = False
        query_unit = normalize(query)[0]
        hits = self.indexes.search(query_unit, limit, mask)
        items = self.media.get_many(hits.keys.tolist())
        anchor = stored[media_id]
        title = anchor.item.title if anchor is not None else media_id
        reasons = [f"similar to {title}"]
        if direction is not None:
            reasons.append("tuned to your taste")
        return [
            FeedItem(id=items[key].id, title=items[key].title, score=score, reasons=reasons)
            for key, score in zip(hits.keys.tolist(), hits.scores.tolist(), strict=True)
            if key in items
        ]


@dataclass
class _Context:
    """What one feed computation knows about the viewer, filled in as it goes."""

    tenant: str
    prefs: Preferences
    events: list[EventRow]
    direction: FloatArray | None
    now: float
    popularity: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    trending: dict[int, int] = field(default_factory=dict)
    ease: EaseModel | None = None
    history: list[int] = field(default_factory=list)
    collab: dict[int, float] = field(default_factory=dict)
    user: str | None = None  # whose feed: reasons quote only titles they may see


class _Explainer:
    """Reasons for each ranked item, from the sources that proposed it and its attributes."""

    def __init__(
        self,
        service: RecommendService,
        ctx: _Context,
        cands: _Candidates,
        pos_arr: np.ndarray,
        keys: list[int],
    ) -> None:
        self.ctx, self.cands, self.keys = ctx, cands, keys
        indexes, prefs = service.indexes, ctx.prefs
        recent = [
            e.media_pk
            for e in reversed(ctx.events)
            if e.type in POSITIVE_TYPES or (e.type == "rate" and (e.value or 0) >= 4.0)
        ][:20]
        positives = indexes.vectors_of(list(dict.fromkeys(recent)))
        self.positive_keys = list(positives)
        self.positive_matrix = (
            np.vstack([positives[k] for k in self.positive_keys]) if positives else None
        )
        self.genre_hits = {
            g: indexes.label_mask("genre", (g,))[pos_arr] for g in prefs.liked_genres[:10]
        }
        self.on_platform = (
            indexes.label_mask("platform", tuple(prefs.platforms))[pos_arr]
            if prefs.platforms
            else np.zeros(len(keys), dtype=np.bool_)
        )
        self.collab_anchor: dict[int, int] = {}
        if ctx.ease is not None:
            collab_keys = [k for k in keys if "collaborative" in cands.keys[k]]
            self.collab_anchor = ctx.ease.strongest_links(ctx.history, collab_keys)
        anchors = set(self.positive_keys) | set(self.collab_anchor.values())
        # An anchor the user may no longer see (made private since) is never quoted.
        self.titles = {
            k: v.title
            for k, v in service.media.get_many(sorted(anchors)).items()
            if v.tenant == ctx.tenant and v.visible_to(ctx.user)
        }

    def reasons(self, i: int, vector: FloatArray) -> list[str]:
        key = self.keys[i]
        sources = self.cands.keys[key]
        reasons = []
        if key in self.collab_anchor and self.collab_anchor[key] in self.titles:
            title = self.titles[self.collab_anchor[key]]
            reasons.append(f"people who watched {title} also watched this")
        if self.positive_matrix is not None and "content" in sources:
            anchor = self.positive_keys[int(np.argmax(self.positive_matrix @ vector))]
            if anchor in self.titles:
                reasons.append(f"because you liked {self.titles[anchor]}")
        shared = [g for g, hits in self.genre_hits.items() if hits[i]]
        if shared:
            reasons.append(f"matches your taste in {shared[0]}")
        if self.on_platform[i]:
            reasons.append("available on your platforms")
        if "trending" in sources:
            reasons.append("trending this week")
        if "popular" in sources and not reasons:
            reasons.append("popular")
        if "fresh" in sources and not reasons:
            reasons.append("new in the catalog")
        return reasons or ["recommended for you"]


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, best first (partition first: O(n))."""
    if values.shape[0] <= k:
        return np.argsort(-values, kind="stable")
    part = np.argpartition(-values, k - 1)[:k]
    return part[np.argsort(-values[part], kind="stable")]


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
