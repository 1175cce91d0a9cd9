"""What every web page shares: templates, the active user, CSRF tokens, security headers.

Pages are rendered on the server with Jinja2 and autoescaping on, so every
catalog string reaches the browser as text. A strict Content-Security-Policy
(scripts and styles only from this origin, no inline code) is a second wall:
even a string that slipped through could not run.

Cross-site request forgery: every state-changing form carries a token that
must equal the `mm_csrf` cookie, and the token is an HMAC of a random nonce
under a per-process secret, so a value planted by someone else is refused too.
Cookies are `SameSite=Lax` (`Strict` for the admin session) and `HttpOnly`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Form, Header, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from metamedia.errors import NotFoundError
from metamedia.services.runtime import Runtime

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
TENANT = "default"  # the web UI serves the default tenant, as anonymous API callers see
USER_COOKIE = "mm_user"
CSRF_COOKIE = "mm_csrf"
CSRF_FIELD = "csrf"
MAX_USER_ID = 256

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' https: http: data:; style-src 'self'; "
        "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _asset_version() -> str:
    """A hash of the static files: their URLs change when they do, so browsers may cache."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.glob("*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


templates = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals["asset_version"] = _asset_version()


class WebError(Exception):
    """A page-level failure shown as an HTML page that says what to do next."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@dataclass
class WebState:
    """The web UI's signing secret: derived from the data directory's signing key on
    first use, so every worker process of one deployment accepts the same tokens."""

    csrf_secret: bytes = b""

    def sign(self, nonce: str) -> str:
        return hmac.new(self.csrf_secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def new_token(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self.sign(nonce)}"

    def token_valid(self, token: str | None) -> bool:
        if not token or len(token) > 128:
            return False
        nonce, _, signature = token.partition(".")
        return bool(nonce) and hmac.compare_digest(signature, self.sign(nonce))


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    if not state.csrf_secret:
        state.csrf_secret = runtime_of(request).keys.derived_key("web-csrf")
    return state


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def csrf_token(request: Request) -> str:
    """The request's token: the cookie's when it is genuine, a fresh one otherwise."""
    cached = getattr(request.state, "csrf_token", None)
    if isinstance(cached, str):
        return cached
    state = web_state(request)
    token = request.cookies.get(CSRF_COOKIE)
    if not state.token_valid(token):
        token = state.new_token()
        request.state.csrf_fresh = True
    assert token is not None
    request.state.csrf_token = token
    return token


def _same_origin(request: Request) -> bool:
    """Browsers send Origin (or at least Referer) on POST: it must name this host."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source is None
    return urlsplit(source).netloc == request.headers.get("host", "")


def require_csrf(
    request: Request,
    csrf: Annotated[str | None, Form()] = None,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> None:
    """Dependency for every state-changing web POST: refuse (403) without the token."""
    submitted = csrf or x_csrf_token
    cookie = request.cookies.get(CSRF_COOKIE)
    state = web_state(request)
    genuine = (
        submitted is not None
        and cookie is not None
        and state.token_valid(cookie)
        and hmac.compare_digest(submitted, cookie)
    )
    if not genuine or not _same_origin(request):
        raise WebError(
            403,
            "Request refused",
            "This form did not carry this site's security token, so it was refused to "
            "protect you from cross-site requests. Reload the page and try again.",
        )


def clean_user_id(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_USER_ID or not value.isprintable():
        return None
    return value


USER_PURPOSE = "web-user"
USER_COOKIE_TTL_S = 30 * 86_400.0


def user_cookie(request: Request, user: str, proof: str, ttl_s: float = USER_COOKIE_TTL_S) -> str:
    """The signed profile cookie: which user of the web tenant this browser acts as, and
    how that was proven ('token': a user token; 'open': the demo's open mode)."""
    claims = {"t": TENANT, "u": user, "p": proof}
    return runtime_of(request).keys.seal(USER_PURPOSE, claims, ttl_s)


def active_user(request: Request) -> str | None:
    """The user the visitor proved to be (a signed cookie; a forged or edited one is
    ignored), or None when none is chosen, it no longer exists, or it was chosen in
    the demo's open mode and this deployment is not open."""
    if hasattr(request.state, "active_user"):
        known: str | None = request.state.active_user
        return known
    runtime = runtime_of(request)
    claims = runtime.keys.unseal(USER_PURPOSE, request.cookies.get(USER_COOKIE))
    user = None
    if claims is not None and claims.get("t") == TENANT:
        user = clean_user_id(claims.get("u") if isinstance(claims.get("u"), str) else None)
        if claims.get("p") == "open" and runtime.settings.anonymous != "open":
            user = None
    if user is not None:
        try:
            runtime.users.require(TENANT, user)
        except NotFoundError:
            user = None
    request.state.active_user = user
    return user


def catalog_pages_gate(request: Request) -> None:
    """Catalog pages follow the API's anonymous setting: with METAMEDIA_ANONYMOUS=off
    only a visitor who proved who they are (a user token, on the feed page) sees them."""
    if runtime_of(request).settings.anonymous == "off" and active_user(request) is None:
        raise WebError(
            401,
            "Sign in first",
            "This deployment shows its catalog to signed-in users only: open the feed "
            "page and paste the user token your service gave you.",
        )


def secure_cookies(request: Request) -> bool:
    return request.url.scheme == "https"


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
) -> HTMLResponse:
    """Render a page with what the layout needs, plus the CSRF cookie and security headers."""
    token = csrf_token(request)
    values = {
        "request_path": request.url.path,
        "csrf_token": token,
        "csrf_field": CSRF_FIELD,
        "active_user": active_user(request),
        **(context or {}),
    }
    html = templates.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if getattr(request.state, "csrf_fresh", False):
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="lax",
            secure=secure_cookies(request),
            path="/",
        )
    return response


def error_page(request: Request, exc: WebError) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"title": exc.title, "message": exc.message, "status": exc.status},
        status=exc.status,
    )
