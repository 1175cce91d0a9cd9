"""Feed candidate sources (services/candidates.py) through the recommend service.

Each source is asked directly (the service's own list, with the context it builds
for a viewer) and through the feed with only that source enabled: "fresh" is the
newest by the item's own date whatever the ingest order, no source ever proposes
what the viewer may not see, and every source shows up in the feed's reasons.
"""

from __future__ import annotations

from typing import Any

from metamedia.services.candidates import CandidateSource, TrendingSource
from metamedia.services.recommend import FeedWeights
from metamedia.services.runtime import Runtime

SPACE = "A crew on a failing orbital station rations oxygen while a rescue ship races a storm."


def _put(rt: Runtime, media_id: str, tenant: str = "default", **fields: Any) -> None:
    rt.catalog.put(media_id, {"title": media_id, "description": SPACE, **fields}, tenant)


def _source(rt: Runtime, name: str) -> CandidateSource:
    return next(s for s in rt.recommend.sources if s.name == name)


def _ids(rt: Runtime, pks: list[int]) -> list[str]:
    items = rt.repo.get_many(pks)
    return [items[pk].id for pk in pks]


def _only(name: str) -> FeedWeights:
    return FeedWeights(sources=frozenset({name}))


def test_fresh_is_newest_by_the_items_own_date_not_by_ingest_order(runtime: Runtime) -> None:
    # The newest items are ingested first; sixty older ones follow, so the last
    # items written (what an insertion-order "fresh" would take) are all old.
    _put(runtime, "june-2025", release_date="2025-06-01")
    _put(runtime, "year-2025", year=2025)
    _put(runtime, "january-2025", release_date="2025-01-15")
    _put(runtime, "same-year-first", year=2024)
    _put(runtime, "same-year-second", year=2024)
    for n in range(60):
        _put(runtime, f"old-{n}", year=1950 + n % 40, description=f"{SPACE} Part {n}.")
    runtime.users.upsert("default", "newcomer", None)

    ctx = runtime.recommend.candidate_context("default", "newcomer")
    fresh = [c.pk for c in _source(runtime, "fresh").candidates(ctx, 6)]
    assert _ids(runtime, fresh)[:5] == [
        "june-2025",
        "january-2025",
        "year-2025",  # a year-only item is older than the dated ones of its year
        "same-year-second",  # same date: the later-written row is newer
        "same-year-first",
    ]

    page = runtime.recommend.feed("default", "newcomer", limit=50, weights=_only("fresh"))
    by_id = {item.id: item for item in page.items}
    assert {"june-2025", "january-2025", "year-2025"} <= set(by_id)
    assert by_id["june-2025"].reasons == ["new release"]

    # An undated item comes after every dated one; a newer item written later leads
    # at once (the cached ranking is keyed by the catalog's change log).
    _put(runtime, "undated")
    _put(runtime, "july-2025", release_date="2025-07-04")
    ctx = runtime.recommend.candidate_context("default", "newcomer")
    fresh = _ids(runtime, [c.pk for c in _source(runtime, "fresh").candidates(ctx, 100)])
    assert fresh[0] == "july-2025" and fresh[-1] == "undated" and len(fresh) == 67


def test_every_source_keeps_to_what_the_viewer_may_see(runtime: Runtime) -> None:
    prefs = {
        "liked_genres": ["sci-fi"],
        "languages": ["en"],
        "platforms": ["netflix"],
        "maturity_limit": "PG",
        "blocked_owners": ["spammer"],
    }
    common = {
        "genres": ["sci-fi"],
        "language": "en",
        "platforms": [{"name": "netflix"}],
        "maturity_rating": "PG",
    }
    for n in range(8):
        _put(runtime, f"ok-{n}", year=1990 + n, popularity=float(n), **common)
    # Each forbidden item is the most popular, the newest, trending and liked
    # alongside what the viewer liked: every source would pick it if it could.
    bait = {**common, "release_date": "2030-01-01", "popularity": 1000.0}
    _put(runtime, "private", visibility="private", owner="other", allowed_users=["friend"], **bait)
    _put(runtime, "mature", **{**bait, "maturity_rating": "R"})
    _put(runtime, "blocked", owner="spammer", **bait)
    _put(runtime, "elsewhere", tenant="acme", **bait)
    forbidden = {"private", "mature", "blocked", "elsewhere"}

    record = runtime.users.record
    runtime.users.upsert("default", "viewer", prefs)
    record("default", "viewer", [{"item": "ok-0", "type": "like"}])
    for user in ("u1", "u2", "u3"):
        watched = ["ok-0", "ok-3", "ok-4", "mature", "blocked"]
        record("default", user, [{"item": i, "type": "view"} for i in watched], create_user=True)
    watched = ["ok-0", "ok-5", "private"]
    record("default", "other", [{"item": i, "type": "view"} for i in watched], create_user=True)
    assert runtime.train()["collaborative"]["trained"]

    ctx = runtime.recommend.candidate_context("default", "viewer")
    assert ctx.ease is not None and ctx.direction is not None
    names = set()
    for source in runtime.recommend.sources:
        names.add(source.name)
        proposed = _ids(runtime, [c.pk for c in source.candidates(ctx, 100)])
        assert proposed, f"{source.name} proposed nothing: the check would be empty"
        assert not forbidden & set(proposed), (source.name, proposed)
        assert "ok-0" not in proposed, f"{source.name} proposed an item already liked"
    assert names == {"content", "collaborative", "popular", "trending", "fresh", "preference"}

    # Whom the owner shares it with gets it: the filter, not the data, kept it out.
    runtime.users.upsert("default", "friend", None)
    owner_ctx = runtime.recommend.candidate_context("default", "friend")
    assert "private" in _ids(
        runtime, [c.pk for c in _source(runtime, "fresh").candidates(owner_ctx, 5)]
    )

    # Each source is named in the reasons of the feed it alone fills.
    runtime.users.upsert("default", "plain", None)
    expected = {
        ("viewer", "content"): "because you liked ok-0",
        ("viewer", "collaborative"): "people who watched ok-0 also watched this",
        ("viewer", "preference"): "matches your taste in sci-fi",
        ("plain", "trending"): "trending this week",
        ("plain", "popular"): "popular",
        ("plain", "fresh"): "new release",
    }
    for (user, name), reason in expected.items():
        page = runtime.recommend.feed("default", user, limit=20, weights=_only(name))
        assert page.items, name
        # "plain" set no maturity limit and blocks nobody: only private and other-tenant
        # items stay out of their feed.
        hidden = forbidden if user == "viewer" else {"private", "elsewhere"}
        assert not hidden & {item.id for item in page.items}, name
        assert any(reason in item.reasons for item in page.items), (name, page.items)


def test_trending_counts_are_shared_by_a_tenants_feeds_for_their_time_to_live(
    runtime: Runtime,
) -> None:
    """One week-long count per tenant serves every viewer's feed for `ttl_s`; after it,
    new interactions show."""
    for n in range(3):
        _put(runtime, f"t-{n}")
    record = runtime.users.record
    record("default", "a", [{"item": "t-0", "type": "view"}], create_user=True)
    runtime.users.upsert("default", "viewer", None)
    source = TrendingSource(runtime.recommend.users, runtime.indexes.visible, ttl_s=3600)

    def counts() -> dict[str, int]:
        ctx = runtime.recommend.candidate_context("default", "viewer")
        found = source.counts(ctx, 10)
        return dict(zip(_ids(runtime, list(found)), found.values(), strict=True))

    assert counts() == {"t-0": 1}
    for user in ("b", "c"):
        record("default", user, [{"item": "t-1", "type": "view"}], create_user=True)
    assert counts() == {"t-0": 1}  # the tenant's counts, as fetched within the hour
    source.ttl_s = 0.0
    assert counts() == {"t-1": 2, "t-0": 1}


class _CountingTrending:
    """A user store whose `trending` only records the LIMIT it was asked for."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.asked: list[int] = []

    def trending(self, tenant: str, since: float, limit: int) -> list[tuple[int, int]]:
        self.asked.append(limit)
        return [(pk, 1) for pk in range(min(limit, self.rows))]


def test_expired_trending_counts_are_re_read_at_their_size_not_a_doubled_one() -> None:
    """Under steady traffic every expiry re-reads; the LIMIT must stay put (it once
    doubled each time and passed PostgreSQL's integer range within minutes)."""
    users = _CountingTrending(rows=10_000)
    source = TrendingSource(users, lambda _flt, pks: set(pks), ttl_s=0.0)  # type: ignore[arg-type]
    for _ in range(100):
        source._ranked("default", 0.0, 30)
    assert set(users.asked) == {30}
    source.ttl_s = 3600.0
    source._ranked("default", 0.0, 45)  # a viewer with more seen items: grow, once
    assert users.asked[-1] == 60
    assert source._ranked("default", 0.0, 50) and users.asked[-1] == 60
