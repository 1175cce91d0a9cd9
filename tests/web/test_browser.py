"""The web UI in a real browser (Debian's chromium via Playwright) against a real server."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ADMIN_KEY
from tests.live_server import ServeThread

XSS_TITLE = "<script>window.__pwned=1</script>"
XSS_DESCRIPTION = '"><img src=x onerror="window.__pwned=2"> pwned trap'


def _card_ids(page: Any) -> list[str]:
    return [
        str(x)
        for x in page.locator("ol.cards > li.card").evaluate_all(
            "cards => cards.map(c => c.dataset.id)"
        )
    ]


def test_search_with_filters_and_paging(page: Any) -> None:
    page.goto("/")
    page.get_by_role("searchbox", name="Search the catalog").fill("a story about family and loss")
    page.get_by_role("radio", name=re.compile(r"^Meaning")).check()
    page.locator("details.filters > summary").click()
    page.get_by_role("checkbox", name=re.compile(r"^drama\b")).check()
    page.get_by_role("checkbox", name=re.compile(r"^movie\b")).check()
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url(re.compile(r"genre=drama"))
    assert "mode=semantic" in page.url and "type=movie" in page.url
    first = _card_ids(page)
    assert len(first) == 12
    genres = page.locator("li.card .genres").all_inner_texts()
    assert all("Drama" in g for g in genres), genres
    assert page.locator("li.card .badge-type").all_inner_texts() == ["Movie"] * 12

    page.get_by_role("link", name="Next →").click()
    page.wait_for_url(re.compile(r"page=2"))
    second = _card_ids(page)
    assert second and not set(second) & set(first)
    assert all("Drama" in g for g in page.locator("li.card .genres").all_inner_texts())
    page.get_by_role("link", name="← Previous").click()
    page.wait_for_url(lambda url: "page=2" not in url)
    assert _card_ids(page) == first

    # The explanation opens in place.
    why = page.locator("li.card details.why").first
    why.locator("summary").click()
    assert "Meaning match" in why.inner_text()


def test_open_an_item_and_its_similar_items(page: Any) -> None:
    page.goto("/?q=space+station+survival")
    first = page.locator("li.card .card-title a").first
    title = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(r"/media/"))
    assert page.locator("h1").inner_text() == title
    similar = page.locator("section.similar li.card .card-title a")
    assert similar.count() == 8
    next_title = similar.first.inner_text()
    similar.first.click()
    page.wait_for_url(re.compile(r"/media/"))
    assert page.locator("h1").inner_text() == next_title != title


def test_liking_items_in_the_feed_changes_it(page: Any, live_server: ServeThread) -> None:
    page.goto("/feed")
    page.get_by_label("Or type a user id").fill("browser-tester")
    page.get_by_role("button", name="Use this profile").click()
    page.wait_for_selector("[data-feed] > li.card")
    before = _card_ids(page)
    assert len(before) == 12
    # A new user's feed is a broad cold start; three likes give it a direction.
    for _ in range(3):
        unliked = page.locator("button[aria-pressed=false][value=like]")
        card = page.locator("[data-feed] > li.card", has=unliked).first
        liked_id = card.get_attribute("data-id")
        with page.expect_response(lambda r: r.url.endswith("/feed/react")) as response:
            card.get_by_role("button", name="Like", exact=True).click()
        assert response.value.status == 200
        page.wait_for_selector("[data-feed-status]:has-text('Feed updated')", state="attached")
        liked = page.locator(f'li.card[data-id="{liked_id}"] button[value=like]')
        if liked.count():  # it may have moved off the first page
            assert liked.get_attribute("aria-pressed") == "true"
    after = _card_ids(page)
    assert after != before
    reasons = " ".join(page.locator("[data-feed] .reasons").all_inner_texts())
    assert "because you liked" in reasons
    history = live_server.runtime.users.history("default", "browser-tester", limit=10, offset=0)
    assert [h.type for h in history] == ["like", "like", "like"]
    assert page.url.endswith("/feed")  # no page load: the feed was swapped in place


def test_demo_profiles_have_different_feeds(page: Any) -> None:
    page.goto("/feed")
    page.get_by_role("button", name=re.compile(r"^Ada\b")).click()
    page.wait_for_selector("[data-feed] > li.card")
    ada = _card_ids(page)
    page.get_by_role("button", name=re.compile(r"^Theo\b")).click()
    page.wait_for_selector("[data-feed] > li.card")
    assert page.locator("h1").inner_text() == "For theo"
    assert set(_card_ids(page)) != set(ada)


def test_admin_login_refused_then_accepted(page: Any) -> None:
    page.goto("/admin")
    page.wait_for_url(re.compile(r"/admin/login$"))
    page.get_by_label("API key").fill("not-the-key")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#login-error")
    assert "not accepted" in page.locator("#login-error").inner_text()
    assert "not-the-key" not in page.content() and "not-the-key" not in page.url
    page.get_by_label("API key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin$"))
    assert ADMIN_KEY not in page.url and ADMIN_KEY not in page.content()
    assert page.get_by_role("heading", name="Catalog and index").is_visible()
    assert page.locator("section[aria-labelledby=stats-title] dd").first.inner_text() == "170"
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["mm_admin"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert ADMIN_KEY not in session["value"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/admin/login$"))
    page.goto("/admin")
    assert page.url.endswith("/admin/login")


def test_catalog_strings_are_shown_as_text_never_run(page: Any, live_server: ServeThread) -> None:
    live_server.runtime.catalog.put(
        "xss-1",
        {"title": XSS_TITLE, "description": XSS_DESCRIPTION, "genres": ["drama"], "year": 2001},
    )
    page.goto("/?q=pwned+trap&mode=keyword")
    card = page.locator('li.card[data-id="xss-1"]')
    assert card.locator(".card-title").inner_text() == XSS_TITLE
    assert XSS_DESCRIPTION.strip() in card.locator(".description").inner_text()
    assert page.locator("main img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    card.locator(".card-title a").click()
    page.wait_for_url(re.compile(r"/media/xss-1$"))
    assert page.locator("h1").inner_text() == XSS_TITLE
    assert page.locator("main img").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs == []


def test_post_without_the_csrf_token_is_refused(page: Any) -> None:
    page.goto("/feed")
    status = page.evaluate(
        """async () => {
            const body = new URLSearchParams({item: "mm-0001", action: "like"});
            const r = await fetch("/feed/react", {method: "POST", body});
            return r.status;
        }"""
    )
    assert status == 403


def test_keyboard_reaches_search_box_and_submit_with_visible_focus(page: Any) -> None:
    page.goto("/?q=heist")
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    assert page.evaluate("document.activeElement.id") == "q"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    page.keyboard.press("Control+A")
    page.keyboard.type("haunted house")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "search-submit"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=haunted\+house"))
    assert _card_ids(page)


def test_screenshots_script_captures_every_page(
    browser: Any, live_server: ServeThread, tmp_path: Path
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        from screenshots import take_screenshots  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    written = take_screenshots(browser, live_server.url, ADMIN_KEY, tmp_path)
    assert sorted(p.name for p in written) == [
        "admin.png",
        "feed.png",
        "item.png",
        "search-mobile.png",
        "search.png",
    ]
    assert all(0 < p.stat().st_size < 300_000 for p in written)
