"""The web pages over plain HTTP: shareable URLs, error and empty states, 404s, CSRF,
the admin login, and the demo users' loader."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metamedia.api.app import create_app
from metamedia.api.web.dashboard import Sample, bucket_quantile, cache_rows
from metamedia.services.demo_users import demo_users, load_demo_users
from metamedia.services.runtime import Runtime
from tests.conftest import ADMIN_KEY, DEMO_CATALOG

CARD_ID = re.compile(r'<li class="card" data-id="([^"]+)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture()
def client(web_runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime=web_runtime)) as test_client:
        yield test_client


def _ids(html: str) -> list[str]:
    return CARD_ID.findall(html)


def _token(client: TestClient, path: str = "/feed") -> str:
    page = client.get(path)
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_shareable_url_renders_what_the_rest_api_returns(client: TestClient) -> None:
    params = {"q": "space station survival", "genre": "sci-fi", "mode": "semantic"}
    page = client.get("/", params=params)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    api = client.get("/v1/search", params={**params, "limit": 12}).json()
    assert _ids(page.text) == [r["id"] for r in api["results"]]
    assert len(_ids(page.text)) == 12

    second = client.get("/", params={**params, "page": 2})
    api2 = client.get("/v1/search", params={**params, "limit": 12, "offset": 12}).json()
    assert _ids(second.text) == [r["id"] for r in api2["results"]]
    assert not set(_ids(second.text)) & set(_ids(page.text))
    assert 'rel="prev"' in second.text
    # The form shows the URL's choices, so the link reproduces the whole search.
    assert 'value="sci-fi" checked' in page.text
    assert 'value="semantic" checked' in page.text


def test_facet_counts_come_from_the_catalog(client: TestClient) -> None:
    public_drama = sum(
        1
        for line in DEMO_CATALOG.read_text(encoding="utf-8").splitlines()
        if "drama" in json.loads(line).get("genres", [])
        and json.loads(line).get("visibility", "public") == "public"
    )
    page = client.get("/", params={"q": "anything"})
    option = re.search(r'value="drama">\s*drama <span class="n"[^>]*>(\d+)</span>', page.text)
    assert option and int(option.group(1)) == public_drama
    # Counts follow the other filters: movies only leaves fewer dramas.
    narrowed = client.get("/", params={"q": "anything", "type": "movie"})
    option = re.search(r'value="drama">\s*drama <span class="n"[^>]*>(\d+)</span>', narrowed.text)
    assert option and 0 < int(option.group(1)) < public_drama


def test_facet_counts_follow_catalog_changes(client: TestClient, web_runtime: Runtime) -> None:
    def drama_count() -> int:
        page = client.get("/", params={"q": "anything"})
        found = re.search(r'value="drama">\s*drama <span class="n"[^>]*>(\d+)</span>', page.text)
        assert found
        return int(found.group(1))

    before = drama_count()
    web_runtime.catalog.put("new-drama", {"title": "A New Drama", "genres": ["drama"]})
    assert drama_count() == before + 1
    # An update moves the item to a new index position: it must not count twice.
    web_runtime.catalog.put("new-drama", {"title": "A New Drama", "genres": ["drama", "war"]})
    assert drama_count() == before + 1
    web_runtime.catalog.delete("new-drama")
    assert drama_count() == before


def test_inverted_year_range_shows_an_error_that_says_what_to_do(client: TestClient) -> None:
    page = client.get("/", params={"q": "western", "year_min": 2000, "year_max": 1990})
    assert page.status_code == 422
    assert 'role="alert"' in page.text
    assert "backwards" in page.text and "swap" in page.text
    assert 'aria-invalid="true"' in page.text
    bad = client.get("/", params={"q": "western", "year_min": "soon"})
    assert bad.status_code == 422 and "must be a number" in bad.text


def test_empty_state_offers_to_drop_filters(client: TestClient) -> None:
    page = client.get(
        "/", params={"q": "zzzqqq", "mode": "keyword", "genre": "western", "year_min": 1900}
    )
    assert page.status_code == 200
    assert "Nothing matches" in page.text
    assert "Remove filter genre: western" in page.text
    assert "search by meaning instead" in page.text


def test_landing_page_and_unknown_item(client: TestClient) -> None:
    landing = client.get("/")
    assert landing.status_code == 200 and "Find something to watch" in landing.text
    assert "default-src 'self'" in landing.headers["content-security-policy"]
    missing = client.get("/media/no-such-item")
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]
    assert "Not in the catalog" in missing.text


def test_item_page_shows_details_and_similar_items(client: TestClient) -> None:
    page = client.get("/media/mm-0040")
    assert page.status_code == 200
    assert "Station Meridian" in page.text and "More like this" in page.text
    similar = _ids(page.text)
    assert len(similar) == 8 and "mm-0040" not in similar


def test_state_changing_posts_need_the_csrf_token(client: TestClient) -> None:
    form = {"item": "mm-0001", "action": "like"}
    assert client.post("/feed/react", data=form).status_code == 403
    assert client.post("/feed/user", data={"user": "ada"}).status_code == 403
    assert client.post("/admin/login", data={"key": ADMIN_KEY}).status_code == 403
    token = _token(client)
    forged = client.post("/feed/user", data={"user": "ada", "csrf": token + "x"})
    assert forged.status_code == 403
    cross_site = client.post(
        "/feed/user",
        data={"user": "ada", "csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    ok = client.post("/feed/user", data={"user": "ada", "csrf": token}, follow_redirects=False)
    assert ok.status_code == 303 and "mm_user=" in ok.headers["set-cookie"]
    assert "mm_user=ada;" not in ok.headers["set-cookie"]  # signed, not a plain id


def test_reacting_without_javascript_updates_the_feed(client: TestClient) -> None:
    token = _token(client)
    client.post("/feed/user", data={"user": "newcomer", "csrf": token})
    before = _ids(client.get("/feed").text)
    assert before
    for item in before[:3]:
        done = client.post(
            "/feed/react",
            data={"item": item, "action": "watched", "csrf": token},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == "/feed"
    after = _ids(client.get("/feed").text)
    assert not set(before[:3]) & set(after)  # watched items leave the feed at once
    history = client.get("/v1/users/newcomer/history").json()
    assert [h["type"] for h in history] == ["complete"] * 3
    # An open redirect is refused: `next` stays on this site.
    away = client.post(
        "/feed/react",
        data={"item": before[3], "action": "like", "csrf": token, "next": "//evil.example"},
        follow_redirects=False,
    )
    assert away.headers["location"] == "/feed"


def test_admin_needs_a_session(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    assert client.get("/admin", follow_redirects=False).headers["location"] == "/admin/login"
    token = _token(client, "/admin/login")
    caplog.set_level(logging.INFO)
    refused = client.post("/admin/login", data={"key": "wrong-key", "csrf": token})
    assert refused.status_code == 401 and "not accepted" in refused.text
    assert "wrong-key" not in refused.text
    accepted = client.post(
        "/admin/login", data={"key": ADMIN_KEY, "csrf": token}, follow_redirects=False
    )
    assert accepted.status_code == 303 and accepted.headers["location"] == "/admin"
    cookie = accepted.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie
    assert ADMIN_KEY.lower() not in cookie
    dashboard = client.get("/admin")
    assert dashboard.status_code == 200
    assert "Catalog and index" in dashboard.text and "Request latency" in dashboard.text
    assert dashboard.headers["cache-control"] == "no-store"
    assert ADMIN_KEY not in dashboard.text
    assert all(ADMIN_KEY not in record.getMessage() for record in caplog.records)
    assert all(ADMIN_KEY not in str(getattr(r, "fields", "")) for r in caplog.records)
    client.post("/admin/logout", data={"csrf": token})
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_revoking_the_key_ends_its_admin_sessions(client: TestClient, web_runtime: Runtime) -> None:
    issued = web_runtime.keys.create("operator", ["admin"], tenant=None)
    token = _token(client, "/admin/login")
    client.post("/admin/login", data={"key": issued.secret, "csrf": token})
    assert client.get("/admin", follow_redirects=False).status_code == 200
    web_runtime.keys.revoke(issued.record.pk)
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_a_tenant_admin_key_opens_no_dashboard(client: TestClient, web_runtime: Runtime) -> None:
    issued = web_runtime.keys.create("acme-ops", ["admin"], tenant="acme")
    token = _token(client, "/admin/login")
    refused = client.post("/admin/login", data={"key": issued.secret, "csrf": token})
    assert refused.status_code == 401 and "bound to one tenant" in refused.text
    assert client.get("/admin", follow_redirects=False).status_code == 303


def test_changing_the_bootstrap_key_ends_its_admin_sessions(
    web_demo_dir: Path, tmp_path: Path, make_runtime: Any
) -> None:
    copy = tmp_path / "rotated"
    shutil.copytree(web_demo_dir, copy)
    with TestClient(create_app(runtime=make_runtime(copy))) as before:
        token = _token(before, "/admin/login")
        before.post("/admin/login", data={"key": ADMIN_KEY, "csrf": token})
        assert before.get("/admin", follow_redirects=False).status_code == 200
        session = before.cookies.get("mm_admin", path="/admin")
    assert session
    # The same data directory (same signing key) served with a new METAMEDIA_ADMIN_KEY.
    rotated = make_runtime(copy, admin_key="a-new-admin-key")
    with TestClient(create_app(runtime=rotated)) as after:
        after.cookies.set("mm_admin", session, path="/admin")
        assert after.get("/admin", follow_redirects=False).status_code == 303


def test_with_anonymous_off_the_catalog_pages_need_a_signed_in_user(
    web_demo_dir: Path, tmp_path: Path, make_runtime: Any
) -> None:
    copy = tmp_path / "closed"
    shutil.copytree(web_demo_dir, copy)
    runtime = make_runtime(copy, anonymous="off")
    with TestClient(create_app(runtime=runtime)) as closed:
        for path in ("/", "/media/mm-0001", "/themes"):
            page = closed.get(path, params={"q": "heist"} if path == "/" else None)
            assert page.status_code == 401 and "Sign in first" in page.text, path
        feed = closed.get("/feed")
        assert feed.status_code == 200 and "Your user token" in feed.text
        token = _token(closed)
        user_token = runtime.keys.issue_user_token("default", "ada")
        closed.post("/feed/user", data={"token": user_token, "csrf": token})
        assert closed.get("/", params={"q": "heist"}).status_code == 200
        assert closed.get("/media/mm-0001").status_code == 200


def test_profiles_need_proof_unless_the_demo_opened_them(
    web_demo_dir: Path, tmp_path: Path, make_runtime: Any
) -> None:
    copy = tmp_path / "locked"
    shutil.copytree(web_demo_dir, copy)
    runtime = make_runtime(copy)  # `serve`'s default: anonymous may read, nothing more
    with TestClient(create_app(runtime=runtime)) as locked:
        token = _token(locked)
        assert "Your user token" in locked.get("/feed").text
        claimed = locked.post("/feed/user", data={"user": "ada", "csrf": token})
        assert claimed.status_code == 403 and "user token" in claimed.text
        # A hand-made cookie naming a user is ignored: the visitor is nobody.
        locked.cookies.set("mm_user", "ada")
        assert "For ada" not in locked.get("/feed").text
        refused = locked.post(
            "/feed/react", data={"item": "mm-0001", "action": "like", "csrf": token}
        )
        assert refused.status_code == 409 and "Choose a user" in refused.text
        locked.cookies.delete("mm_user")
        # A user token minted by the back end is proof: it signs the visitor in.
        user_token = runtime.keys.issue_user_token("default", "ada", ttl_s=600)
        signed = locked.post(
            "/feed/user", data={"token": user_token, "csrf": token}, follow_redirects=False
        )
        max_age = int(re.search(r"Max-Age=(\d+)", signed.headers["set-cookie"])[1])  # type: ignore[index]
        assert max_age <= 600  # signed in no longer than the token is good for (not 30 days)
        assert "For ada" in locked.get("/feed").text
        liked = locked.post(
            "/feed/react",
            data={"item": "mm-0001", "action": "like", "csrf": token},
            follow_redirects=False,
        )
        assert liked.status_code == 303
        history = runtime.users.history("default", "ada", limit=5, offset=0)
        assert [(h.item, h.type) for h in history][:1] == [("mm-0001", "like")]
        other = runtime.keys.issue_user_token("acme", "ada")
        wrong = locked.post("/feed/user", data={"token": other, "csrf": token})
        assert wrong.status_code == 401


def test_admin_kill_switch_turns_everything_off(client: TestClient, web_runtime: Runtime) -> None:
    service = web_runtime.experiments
    token = _token(client, "/admin/login")
    client.post("/admin/login", data={"key": ADMIN_KEY, "csrf": token})
    page = client.get("/admin")
    assert "Flags and experiments" in page.text and "Per-variant report" in page.text
    assert client.post("/admin/kill-switch", data={}).status_code == 403
    done = client.post("/admin/kill-switch", data={"csrf": token})
    assert done.status_code == 200 and "Kill switch: turned off" in done.text
    assert not any(f.enabled for f in service.flags())
    assert not any(e.enabled for e in service.experiments())
    actions = [e.action for e in web_runtime.keys.history(50)]
    assert any(a.endswith(".kill") or a.endswith(".update") for a in actions), actions


def test_demo_users_load_once(web_runtime: Runtime) -> None:
    again = load_demo_users(web_runtime.users)  # the fixture loaded them already
    assert again.recorded == 0 and again.rejected == 0 and again.duplicates > 0
    ids = [u.id for u in demo_users()]
    assert len(ids) >= 3
    for user in ids:
        assert web_runtime.users.history("default", user, limit=5, offset=0)


def test_theme_pages(client: TestClient) -> None:
    listing = client.get("/themes")
    assert listing.status_code == 200
    first = re.search(r'href="/themes/(\d+)"', listing.text)
    assert first
    theme = client.get(f"/themes/{first.group(1)}")
    assert theme.status_code == 200 and _ids(theme.text)
    assert client.get("/themes/999").status_code == 404


def test_metric_helpers() -> None:
    cumulative = [(0.01, 10.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert bucket_quantile(0.5, cumulative) == pytest.approx(0.01 + 0.09 * 0.5)
    assert bucket_quantile(0.5, []) is None
    rows = cache_rows(
        [
            Sample("metamedia_cache_hits_total", {"cache": "search"}, 3),
            Sample("metamedia_cache_misses_total", {"cache": "search"}, 1),
            Sample("metamedia_query_cache_hits_total", {}, 0),
        ]
    )
    assert [(r.name, r.rate) for r in rows] == [("search", 0.75)]


def test_package_ships_templates_and_static_files() -> None:
    web = Path(__file__).resolve().parents[2] / "src" / "metamedia" / "api" / "web"
    assert (web / "templates" / "base.html").exists() and (web / "static" / "app.css").exists()
