"""The discovery feed (`/feed`), choosing who you are, recording reactions, and themes.

Reactions go through the same `UserService.record` as `POST
/v1/users/{id}/interactions`, which updates the preference vector in the same
transaction; the feed is then ranked afresh, so a like shows in the very next
render. With JavaScript the buttons post in the background and swap in the new
feed; without it they are plain forms that redirect back.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metamedia.api.abuse import event_gate
from metamedia.api.web.common import (
    TENANT,
    USER_COOKIE,
    WebError,
    active_user,
    catalog_pages_gate,
    clean_user_id,
    render,
    require_csrf,
    runtime_of,
    secure_cookies,
    user_cookie,
)
from metamedia.api.web.search_pages import item_cards, poster_url
from metamedia.errors import InvalidRequestError, MetaMediaError, NotFoundError, RateLimitedError
from metamedia.services.auth import UserToken
from metamedia.services.demo_users import DemoUser, demo_users

router = APIRouter(include_in_schema=False)

FEED_PAGE = 12
HISTORY_SHOWN = 8
THEME_ITEMS = 24
ACTIONS = {"like": "like", "dislike": "dislike", "watched": "complete", "skip": "skip"}
ACTION_WORDS = {
    "like": "Liked",
    "dislike": "Disliked",
    "complete": "Watched",
    "skip": "Skipped",
    "rate": "Rated",
    "view": "Viewed",
    "favorite": "Saved",
}
USER_COOKIE_MAX_AGE = 30 * 86_400


def _personas(request: Request) -> list[DemoUser]:
    """Demo users that exist in this catalog (the demo command creates them)."""
    users = runtime_of(request).users
    present = []
    for persona in demo_users():
        try:
            users.require(TENANT, persona.id)
        except NotFoundError:
            continue
        present.append(persona)
    return present


def _reactions(request: Request, user: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Latest reaction per item (for button states) and the recent history shown aside."""
    history = runtime_of(request).users.history(TENANT, user, limit=200, offset=0)
    latest: dict[str, str] = {}
    for event in history:
        if event.type in ("like", "dislike", "complete", "skip"):
            latest.setdefault(event.item, event.type)
    recent = history[:HISTORY_SHOWN]
    titles = item_cards(request, [e.item for e in recent], user)
    shown = [
        {
            "item": e.item,
            "title": titles[e.item].title if e.item in titles else e.item,
            "what": ACTION_WORDS.get(e.type, e.type.capitalize()),
            "value": e.value,
        }
        for e in recent
    ]
    return latest, shown


def feed_context(request: Request, user: str, cursor: str | None) -> dict[str, Any]:
    runtime = runtime_of(request)
    page = runtime.discovery.feed(TENANT, user, FEED_PAGE, cursor)
    cards = item_cards(request, [i.id for i in page.items], user)
    latest, recent = _reactions(request, user)
    return {
        "user": user,
        "entries": [(entry, cards[entry.id]) for entry in page.items if entry.id in cards],
        "next_cursor": page.next_cursor,
        "latest": latest,
        "recent": recent,
        "poster": poster_url,
        "cursor": cursor,
    }


def _themes(request: Request) -> tuple[list[dict[str, Any]], str | None]:
    try:
        return runtime_of(request).themes.list(TENANT), None
    except NotFoundError as exc:
        return [], exc.message


@router.get("/feed", response_class=HTMLResponse)
def feed_page(request: Request, cursor: str | None = None) -> HTMLResponse:
    """The active user's feed with reasons, or the user picker when nobody is chosen."""
    user = active_user(request)
    themes: list[dict[str, Any]] = []
    themes_note: str | None = "Sign in to browse themes."
    if user is not None or runtime_of(request).settings.anonymous != "off":
        themes, themes_note = _themes(request)
    context: dict[str, Any] = {
        "open_mode": runtime_of(request).settings.anonymous == "open",
        "personas": _personas(request),
        "themes": themes,
        "themes_note": themes_note,
        "feed": None,
        "feed_error": None,
    }
    if user is not None:
        try:
            context["feed"] = feed_context(request, user, cursor)
        except InvalidRequestError as exc:  # an expired cursor: start over
            context["feed_error"] = exc.message
    return render(request, "feed.html", context)


@router.post("/feed/user", dependencies=[Depends(require_csrf)])
def choose_user(
    request: Request,
    user: Annotated[str, Form(max_length=256)] = "",
    token: Annotated[str, Form(max_length=2048)] = "",
) -> RedirectResponse:
    """Sign in with a user token; in the demo's open mode, also act as a demo user or any
    typed id (created on first use, like `PUT /v1/users/{id}`). The browser gets a
    signed cookie either way, so nobody becomes a user by editing a cookie."""
    runtime = runtime_of(request)
    chosen: str | None
    lifetime = USER_COOKIE_MAX_AGE
    if token.strip():
        proven = _token_user(request, token.strip())
        # Signed in no longer than the token itself was good for.
        chosen, proof = proven.user, "token"
        lifetime = max(1, min(lifetime, int(proven.expires - time.time())))
    else:
        _open_mode_only(request)
        chosen, proof = clean_user_id(user), "open"
    if chosen is None:
        raise WebError(
            422, "Choose a user", "Pick a demo user or type a user id (1-256 characters)."
        )
    users = runtime.users
    try:
        users.require(TENANT, chosen)
    except NotFoundError as exc:
        if proof != "open":
            raise WebError(
                404, "No such user", "That token names a user who has no profile."
            ) from exc
        users.upsert(TENANT, chosen, None)
    response = RedirectResponse("/feed", status_code=303)
    response.set_cookie(
        USER_COOKIE,
        user_cookie(request, chosen, proof, lifetime),
        max_age=lifetime,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )
    return response


def _token_user(request: Request, token: str) -> UserToken:
    claims = runtime_of(request).keys.verify_user_token(token)
    if claims is None or claims.tenant != TENANT:
        raise WebError(
            401, "Token not accepted", "That user token is unknown, expired or for another site."
        )
    return claims


def _open_mode_only(request: Request) -> None:
    """Choosing a profile by name is a claim, not a proof: only the demo's open mode
    (METAMEDIA_ANONYMOUS=open, which `metamedia demo` turns on) accepts it."""
    if runtime_of(request).settings.anonymous != "open":
        raise WebError(
            403,
            "Sign in with a user token",
            "This deployment needs proof of who you are: paste the user token your "
            "service gave you (profiles by name are for demos, METAMEDIA_ANONYMOUS=open).",
        )


@router.post("/feed/signout", dependencies=[Depends(require_csrf)])
def sign_out() -> RedirectResponse:
    response = RedirectResponse("/feed", status_code=303)
    response.delete_cookie(USER_COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    """Only local paths: an open redirect would send people anywhere."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/feed"


@router.post("/feed/react", dependencies=[Depends(require_csrf)], response_model=None)
def react(
    request: Request,
    item: Annotated[str, Form(min_length=1, max_length=256)],
    action: Annotated[str, Form()],
    next: Annotated[str, Form(max_length=2000)] = "/feed",
) -> Response:
    """Record like / dislike / watched / skip for the active user (proven by the signed
    cookie), then show the new feed."""
    user = active_user(request)
    if user is None:
        raise WebError(409, "Choose a user first", "Pick who you are on the feed page first.")
    kind = ACTIONS.get(action)
    if kind is None:
        raise WebError(422, "Unknown action", f"action must be one of {', '.join(ACTIONS)}")
    surface = "feed" if next.startswith("/feed") else "item"
    try:
        event_gate(request).pace(TENANT, user, 1)  # a person clicks; a script is paced
    except RateLimitedError as exc:
        raise WebError(429, "Slow down", exc.message) from exc
    results = runtime_of(request).users.record(
        TENANT, user, [{"item": item, "type": kind, "context": {"surface": surface}}]
    )
    if results[0].status == "rejected":
        raise WebError(422, "Not recorded", results[0].error or "the reaction was rejected")
    if request.headers.get("x-requested-with") == "fetch":
        # The script swaps this fragment in: the feed as ranked after the reaction.
        return render(request, "_feed_body.html", {"feed": feed_context(request, user, None)})
    return RedirectResponse(_safe_next(next), status_code=303)


@router.get("/themes", response_class=HTMLResponse, dependencies=[Depends(catalog_pages_gate)])
def themes_page(request: Request) -> HTMLResponse:
    themes, note = _themes(request)
    return render(request, "themes.html", {"themes": themes, "themes_note": note})


@router.get(
    "/themes/{theme_id}", response_class=HTMLResponse, dependencies=[Depends(catalog_pages_gate)]
)
def theme_page(request: Request, theme_id: str) -> HTMLResponse:
    """One theme's most central items."""
    try:
        theme = runtime_of(request).themes.get(TENANT, int(theme_id), THEME_ITEMS)
    except (ValueError, MetaMediaError):
        raise WebError(
            404, "No such theme", "That theme does not exist; pick one from the themes list."
        ) from None
    viewer = active_user(request)
    cards = item_cards(request, [i["id"] for i in theme["items"]], viewer)
    return render(
        request,
        "theme.html",
        {
            "theme": theme,
            "items": [cards[i["id"]] for i in theme["items"] if i["id"] in cards],
            "poster": poster_url,
        },
    )
