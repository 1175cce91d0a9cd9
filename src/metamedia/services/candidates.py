"""Feed candidate sources: small named units over the storage roles.

Each source answers one question ("what is popular?", "what is newest?") for one
viewer, inside the filter of what that viewer may see, and returns item pks with
the source's own score. None of them reads an index position: catalog sources
rank in SQL by stored attributes (`CatalogStore.most_popular`, `newest`), the
trending one asks `UserStore.trending`, and the two that need a model (content:
the vector index; collaborative: the EASE matrix) turn its answer into pks and
check them against the filter. The feed (`services/recommend.py`) merges them,
remembers which sources proposed each item (its reasons) and ranks the union.

A source never returns an item the viewer has already seen: it asks for that many
more and drops them, so a long history does not empty a source.

The catalog rankings depend only on the filter and the catalog, not on the user's
history, so `CatalogRankings` keeps them until the catalog's change log moves: a
feed re-ranked after each interaction does not rank the catalog again.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt

from metamedia.domain.users import Preferences
from metamedia.engine.collaborative import EaseModel
from metamedia.engine.payload import AttributeFilter
from metamedia.engine.vectors import FloatArray
from metamedia.services.indexing import IndexManager
from metamedia.storage.records import EventRow, RankingRow
from metamedia.storage.roles import CatalogStore, UserStore

TRENDING_WINDOW_S = 7 * 86_400.0
TRENDING_TTL_S = 5.0  # how long a tenant's trending counts serve feeds (see TrendingSource)


@dataclass(frozen=True)
class Candidate:
    """One item a source proposes; `score` is comparable only within its source."""

    pk: int
    score: float
    source: str


@dataclass
class CandidateContext:
    """What every source may know about the viewer of one feed computation.

    `flt` is what the viewer may see (tenant, private items, maturity limit,
    blocked owners); `events` their interactions, oldest first; `seen` what they
    have already engaged with; `history` the items they consumed, in order (what
    the collaborative model scores from).
    Model answers shared by a source and the scorer are computed once, on first use.
    """

    tenant: str
    user: str
    prefs: Preferences
    flt: AttributeFilter
    events: list[EventRow]
    seen: frozenset[int]
    history: list[int]
    direction: FloatArray | None
    now: float
    catalog_version: int = 0  # CatalogStore.last_change(): rankings older than it are stale
    ease: EaseModel | None = None
    trending_counts: dict[int, int] | None = None  # filled by TrendingSource.counts
    shares_private: bool | None = None  # filled by CatalogRankings.top, once per feed
    # Scores the EASE model from a history (`EaseScores.score` for this viewer); None:
    # `ease.score`.
    ease_scores: Callable[[EaseModel, list[int]], FloatArray] | None = None

    @cached_property
    def _collab_all(self) -> tuple[FloatArray, npt.NDArray[np.bool_]] | None:
        """EASE scores of every model item (in model key order) and which of them the
        viewer has not consumed; None when untrained or without history."""
        if self.ease is None or not self.history:
            return None
        if self.ease_scores is not None:
            scores = self.ease_scores(self.ease, self.history)
        else:
            scores = self.ease.score(self.history)
        keep = ~np.isin(self.ease.keys, np.asarray(self.history, dtype=np.int64))
        return scores, keep

    @cached_property
    def collab_ranked(self) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Model items the viewer has not consumed and their EASE scores, best first
        (ties: lower pk); empty when untrained or without history."""
        if self._collab_all is None or self.ease is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        scores, keep = self._collab_all
        keys, scores = self.ease.keys[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")  # model keys are sorted ascending
        return keys[order], scores[order]

    @cached_property
    def collab_scores(self) -> dict[int, float]:
        """`collab_ranked` by pk: the collaborative feature of any candidate."""
        keys, scores = self.collab_ranked
        return dict(zip(keys.tolist(), scores.tolist(), strict=True))

    def collab_feature(self, keys: list[int]) -> FloatArray:
        """`collab_scores.get(key, 0.0)` for each of `keys`, looked up in the model's
        sorted keys instead of a dict of every model item."""
        out = np.zeros(len(keys), dtype=np.float32)
        if self._collab_all is None or self.ease is None or not keys:
            return out
        scores, keep = self._collab_all
        model_keys = self.ease.keys
        wanted = np.asarray(keys, dtype=np.int64)
        at = np.minimum(np.searchsorted(model_keys, wanted), model_keys.shape[0] - 1)
        hit = (model_keys[at] == wanted) & keep[at]
        out[hit] = scores[at[hit]]
        return out


class EaseScores:
    """Each user's EASE scores, updated by the rows of what their history gained.

    A user's score is the sum of the model's rows for their history items: for a
    thousand items that is a gather of a thousand rows of the item-item matrix, a
    fifth of a feed. The sum is kept per user with the history it was summed from
    (as distinct model columns and their counts); when the new history holds the
    old one (events are only ever added), only the added rows are summed. Anything
    else (a new model, a history that lost items) sums every row again. Sums are
    float64, so adding a few rows at a time never drifts from summing them all.
    Bounded, least recently used users out.
    """

    def __init__(self, entries: int = 256) -> None:
        self.entries = entries
        self._lock = threading.Lock()
        self._model: weakref.ref[EaseModel] | None = None
        self._data: OrderedDict[
            Hashable, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]
        ] = OrderedDict()

    def score(self, key: Hashable, ease: EaseModel, history: list[int]) -> FloatArray:
        """`ease.score(history)` for the user `key` (computed as a float64 sum)."""
        cols = ease.column_array(history)
        if cols.shape[0] == 0:
            return np.zeros(ease.keys.shape[0], dtype=np.float32)
        distinct, counts = np.unique(cols, return_counts=True)
        with self._lock:
            if self._model is None or self._model() is not ease:
                self._data.clear()
                self._model = weakref.ref(ease)
            hit = self._data.get(key)
        total = None
        if hit is not None:
            old_distinct, old_counts, old_total = hit
            at = np.searchsorted(distinct, old_distinct)
            inside = at < distinct.shape[0]
            if inside.all() and (distinct[at] == old_distinct).all():
                added = counts.copy()
                added[at] -= old_counts
                if (added >= 0).all() and int(added.sum()) < cols.shape[0] // 2:
                    new_cols = np.repeat(distinct, added)
                    total = old_total + ease.weights[new_cols].sum(axis=0, dtype=np.float64)
        if total is None:
            total = ease.weights[cols].sum(axis=0, dtype=np.float64)
        with self._lock:
            if self._model is not None and self._model() is ease:
                self._data[key] = (distinct, counts, total)
                self._data.move_to_end(key)
                while len(self._data) > self.entries:
                    self._data.popitem(last=False)
        scores: FloatArray = total.astype(np.float32)
        return scores

    def forget(self, tenant: str, user: str) -> None:
        """Drop the user's sums (erasure; keys are (tenant, user, ...) tuples)."""
        with self._lock:
            for key in [k for k in self._data if isinstance(k, tuple) and k[:2] == (tenant, user)]:
                del self._data[key]


class CandidateSource(Protocol):
    """A named way of proposing feed items."""

    name: str

    def candidates(self, ctx: CandidateContext, limit: int) -> list[Candidate]:
        """At most `limit` unseen items the viewer may see, strongest first."""
        ...


def _unseen(pks: list[int], ctx: CandidateContext, limit: int) -> list[int]:
    return [pk for pk in pks if pk not in ctx.seen][:limit]


Visible = Callable[[AttributeFilter, list[int]], set[int]]  # which of these pass a filter


class CatalogRankings:
    """Catalog rankings (pks, best first) by (ranking, shared filter, catalog version).

    A ranking is computed once for the filter without the viewer's own parts
    (maturity limit, blocked owners, and visibility as the viewer unless some
    private item is visible to them), so the users of a tenant share it; each
    user's list is that one with their filter applied by `visible`. Each entry
    keeps the longest list asked for; a longer request ranks again for twice as
    many. Bounded, least recently used out.
    """

    def __init__(
        self,
        visible: Visible,
        shares_private: Callable[[AttributeFilter], bool],
        entries: int = 512,
    ) -> None:
        self.visible = visible
        self.shares_private = shares_private
        self.entries = entries
        self._lock = threading.Lock()
        self._data: OrderedDict[tuple[str, AttributeFilter, int], tuple[int, list[int]]] = (
            OrderedDict()
        )

    def top(
        self,
        name: str,
        ctx: CandidateContext,
        flt: AttributeFilter,
        n: int,
        rank: Callable[[AttributeFilter, int], list[int]],
    ) -> list[int]:
        """The first `n` of `rank` within `flt`, from the cache while the catalog is unchanged."""
        if ctx.shares_private is None:
            # Asked of the viewer's whole filter once: a source's narrower filter passes
            # no private item the whole one does not.
            ctx.shares_private = ctx.flt.viewer is not None and self.shares_private(ctx.flt)
        viewer = flt.viewer if ctx.shares_private else None
        shared = replace(flt, viewer=viewer, max_maturity=None, blocked_owners=())
        asked = n
        while True:
            pks, whole = self._ranked(name, shared, ctx.catalog_version, asked, rank)
            if shared == flt:
                return pks[:n]
            allowed = self.visible(flt, pks)
            kept = [pk for pk in pks if pk in allowed]
            if len(kept) >= n or whole:
                return kept[:n]
            asked = 2 * len(pks)

    def _ranked(
        self,
        name: str,
        flt: AttributeFilter,
        version: int,
        n: int,
        rank: Callable[[AttributeFilter, int], list[int]],
    ) -> tuple[list[int], bool]:
        """At least the first `n` of the ranking (more when cached), and whether that is
        every item the filter passes."""
        key = (name, flt, version)
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
        if hit is not None and (hit[0] >= n or len(hit[1]) < hit[0]):
            return hit[1], len(hit[1]) < hit[0]
        asked = max(n, 2 * hit[0]) if hit is not None else n
        pks = rank(flt, asked)
        with self._lock:
            self._data[key] = (asked, pks)
            self._data.move_to_end(key)
            while len(self._data) > self.entries:
                self._data.popitem(last=False)
        return pks, len(pks) < asked


class RankingRows:
    """`CatalogStore.ranking_rows` for the current catalog version, kept in memory.

    The same popular, fresh and liked-genre items are scored in feed after feed;
    their rows change only with the catalog, so a newer version clears them all
    (a request that still holds an older version reads through, caching nothing).
    """

    def __init__(self, media: CatalogStore, entries: int = 50_000) -> None:
        self.media = media
        self.entries = entries
        self._lock = threading.Lock()
        self._version = -1
        self._rows: OrderedDict[int, RankingRow] = OrderedDict()

    def get(self, version: int, pks: list[int]) -> dict[int, RankingRow]:
        with self._lock:
            if version > self._version:
                self._rows.clear()
                self._version = version
            current = version == self._version
            found = {pk: self._rows[pk] for pk in pks if current and pk in self._rows}
        missing = [pk for pk in pks if pk not in found]
        fetched = self.media.ranking_rows(missing) if missing else {}
        if fetched and current:
            with self._lock:
                if self._version == version:
                    self._rows.update(fetched)
                    while len(self._rows) > self.entries:
                        self._rows.popitem(last=False)
        return found | fetched


class ContentSource:
    """Nearest items to the viewer's preference vector (no vector: nothing)."""

    name = "content"

    def __init__(self, indexes: IndexManager) -> None:
        self.indexes = indexes

    def candidates(self, ctx: CandidateContext, limit: int) -> list[Candidate]:
        if ctx.direction is None:
            return []
        # The nearest-neighbour step runs inside the viewer's filter with the seen items
        # left out, so `limit` unseen neighbours come back in one search.
        hits = self.indexes.nearest(ctx.direction, limit, ctx.flt, ctx.seen)
        return [Candidate(pk, score, self.name) for pk, score in hits if pk not in ctx.seen]


class CollaborativeSource:
    """Items the trained item-item model scores highest from the viewer's history."""

    name = "collaborative"

    def __init__(self, visible: Visible) -> None:
        self.visible = visible

    def candidates(self, ctx: CandidateContext, limit: int) -> list[Candidate]:
        keys, scores = ctx.collab_ranked
        if ctx.seen:
            unseen = ~np.isin(keys, np.fromiter(ctx.seen, dtype=np.int64))
            keys, scores = keys[unseen], scores[unseen]
        out: list[Candidate] = []
        # Best first, a batch at a time: most items are visible, so one check.
        batch = limit + max(limit // 4, 25)
        for start in range(0, keys.shape[0] if limit > 0 else 0, batch):
            chunk = keys[start : start + batch].tolist()
            visible = self.visible(ctx.flt, chunk)
            chunk_scores = scores[start : start + batch].tolist()
            out += [
                Candidate(pk, score, self.name)
                for pk, score in zip(chunk, chunk_scores, strict=True)
                if pk in visible
            ]
            if len(out) >= limit:
                break
        return out[:limit]


class PopularSource:
    """Most popular items by their stored popularity."""

    name = "popular"

    def __init__(self, media: CatalogStore, rankings: CatalogRankings) -> None:
        self.media = media
        self.rankings = rankings

    def candidates(self, ctx: CandidateContext, limit: int) -> list[Candidate]:
        n = limit + len(ctx.seen)
        ranked = self.rankings.top("popular", ctx, ctx.flt, n, self.media.most_popular)
        pks = _unseen(ranked, ctx, limit)
        return [Candidate(pk, float(limit - rank), self.name) for rank, pk in enumerate(pks)]


class TrendingSource:
    """Items with the most distinct users interacting this week (`UserStore.trending`).

    The tenant's counts are one query over a week of events, the same for every
    viewer, so they are kept per tenant for `ttl_s` seconds: a feed a few seconds
    behind a week's counts ranks the same, and the viewer's own new events never
    reach their feed anyway (seen items are left out).
    """

    name = "trending"

    def __init__(self, users: UserStore, visible: Visible, ttl_s: float = TRENDING_TTL_S) -> None:
        self.users = users
        self.visible = visible
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        # tenant -> (fetched at, rows asked for, (pk, count) best first)
        self._counts: dict[str, tuple[float, int, list[tuple[int, int]]]] = {}

    def counts(self, ctx: CandidateContext, limit: int) -> dict[int, int]:
        """This week's counts for the tenant, visible or not, fetched once per context:
        the scorer reads them as a feature of every candidate, whatever proposed it."""
        if ctx.trending_counts is None:
            ctx.trending_counts = dict(self._ranked(ctx.tenant, ctx.now, limit + len(ctx.seen)))
        return ctx.trending_counts

    def _ranked(self, tenant: str, now: float, n: int) -> list[tuple[int, int]]:
        clock = time.monotonic()
        with self._lock:
            hit = self._counts.get(tenant)
        fresh = hit is not None and clock - hit[0] < self.ttl_s
        if hit is not None and fresh and (hit[1] >= n or len(hit[2]) < hit[1]):
            return hit[2][:n]
        # Grow geometrically only when fresh counts were too short for this viewer; an
        # expired entry is re-read at the size it had. Doubling on every expiry made the
        # LIMIT grow without bound under steady traffic (2^31 after ~2 minutes of feeds,
        # which PostgreSQL refuses as an integer out of range).
        if hit is None:
            asked = n
        elif fresh:
            asked = max(n, 2 * hit[1])
        else:
            asked = max(n, hit[1])
        rows = list(self.users.trending(tenant, now - TRENDING_WINDOW_S, asked))
        with self._lock:
            self._counts[tenant] = (clock, asked, rows)
        return rows[:n]

    def candidates(self, ctx: CandidateContext, limit: int) -> list[Candidate]:
        counts = self.counts(ctx, limit)
        ranked = [pk for pk in counts if pk not in ctx.seen]
        visible = self.visible(ctx.flt, ranked) if ranked else set()
        kept = [pk for pk in ranked if pk in visible][:limit]
        return [Candidate(pk, float(counts[pk]), self.name) for pk in kept]


class FreshSource:
    """The newest items by their own date (release date, else year), not by when
    they were ingested or where they sit in an index."""

    name = "fresh"

    def __init__(self, media: CatalogStore, rankings: CatalogRankings) -> None:
        self.media = media
        self.rankings = rankings

    def candidates(self, ctx: CandidateContext, limit: int) -> list[Candidate]:
        n = limit + len(ctx.seen)
        pks = _unseen(self.rankings.top("newest", ctx, ctx.flt, n, self.media.newest), ctx, limit)
        return [Candidate(pk, float(limit - rank), self.name) for rank, pk in enumerate(pks)]


class PreferenceSource:
    """The most popular items matching what the viewer said they like: any liked
    genre, any of their platforms, any of their languages (each a narrower filter)."""

    name = "preference"

    def __init__(self, media: CatalogStore, rankings: CatalogRankings) -> None:
        self.media = media
        self.rankings = rankings

    def candidates(self, ctx: CandidateContext, limit: int) -> list[Candidate]:
        prefs = ctx.prefs
        narrowed = []
        if prefs.liked_genres:
            narrowed.append(replace(ctx.flt, genres=tuple(prefs.liked_genres)))
        if prefs.platforms:
            narrowed.append(replace(ctx.flt, platforms=tuple(prefs.platforms)))
        if prefs.languages:
            narrowed.append(replace(ctx.flt, languages=tuple(prefs.languages)))
        # Round-robin over the stated preferences, each list most popular first, so
        # a liked genre is not crowded out by a platform that carries everything.
        n = limit + len(ctx.seen)
        lists = [
            _unseen(self.rankings.top("popular", ctx, f, n, self.media.most_popular), ctx, limit)
            for f in narrowed
        ]
        merged: dict[int, None] = {}
        for rank in range(limit):
            for pks in lists:
                if rank < len(pks):
                    merged.setdefault(pks[rank], None)
        pks = list(merged)[:limit]
        return [Candidate(pk, float(limit - rank), self.name) for rank, pk in enumerate(pks)]
