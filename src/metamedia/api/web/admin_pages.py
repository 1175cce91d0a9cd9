"""`/admin`: an operator's dashboard behind an API-key login.

The key is typed once into a POST form, verified with `KeyService.verify` (it
must hold the `admin` scope) and never stored, echoed, put in a URL or logged:
the browser gets a signed, expiring session cookie (`HttpOnly`,
`SameSite=Strict`, scoped to `/admin`) naming the verified key's id and scopes.
Every admin POST also needs the CSRF token.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from metamedia.api.web.common import (
    WebError,
    render,
    require_csrf,
    runtime_of,
    secure_cookies,
    web_state,
)
from metamedia.api.web.dashboard import alerts_summary, metrics_summary, readable
from metamedia.errors import MetaMediaError
from metamedia.services.auth import Principal

router = APIRouter(include_in_schema=False)

DASH = "\u2013"  # shown for "no value"

SESSION_COOKIE = "mm_admin"
SESSION_TTL_S = 30 * 60.0
SESSION_PURPOSE = "web-admin-session"
NO_STORE = {"Cache-Control": "no-store"}


def open_session(request: Request, principal: Principal) -> str:
    """A signed, expiring session cookie naming the verified key (never the key itself).

    Stateless, so every worker process accepts it. It carries the key's fingerprint,
    re-checked per request: revoking the key, or changing `METAMEDIA_ADMIN_KEY` for a
    bootstrap session, ends it at once; otherwise it lapses after `SESSION_TTL_S`.
    """
    keys = runtime_of(request).keys
    claims = {
        "k": principal.key_id,
        "n": principal.name,
        "s": sorted(principal.scopes),
        "t": principal.tenant,
        "f": keys.fingerprint(principal),
    }
    return keys.seal(SESSION_PURPOSE, claims, SESSION_TTL_S)


def admin_of(request: Request) -> Principal | None:
    """The signed-in operator, re-checked against the key store's scopes."""
    runtime = runtime_of(request)
    claims = runtime.keys.unseal(SESSION_PURPOSE, request.cookies.get(SESSION_COOKIE))
    if claims is None:
        return None
    key_id = claims.get("k")
    tenant = claims.get("t")
    principal = Principal(
        key_id if isinstance(key_id, int) else None,
        str(claims.get("n", "")),
        frozenset(str(scope) for scope in claims.get("s", [])),
        tenant if isinstance(tenant, str) else None,
    )
    if not principal.allows("admin") or not principal.platform:
        return None
    # The key behind the session must be the one that opened it: a revoked key, or a
    # changed bootstrap key, ends its sessions.
    current = runtime.keys.fingerprint(principal)
    stored = claims.get("f")
    if current is None or not isinstance(stored, str) or not hmac.compare_digest(current, stored):
        return None
    return principal


def require_admin(request: Request) -> Principal:
    principal = admin_of(request)
    if principal is None:
        raise WebError(401, "Sign in first", "The admin pages need an admin API key.")
    return principal


def _no_store(response: Response) -> Response:
    response.headers.update(NO_STORE)
    return response


@router.get("/admin/login", response_class=HTMLResponse, response_model=None)
def login_form(request: Request) -> Response:
    if admin_of(request) is not None:
        return RedirectResponse("/admin", status_code=303)
    return _no_store(render(request, "admin_login.html", {"error": None}))


@router.post("/admin/login", dependencies=[Depends(require_csrf)], response_model=None)
def login(request: Request, key: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Check the key once; on success hand out a session cookie, never the key."""
    runtime = runtime_of(request)
    principal = runtime.keys.verify(key.strip()) if key.strip() else None
    if principal is None or not principal.allows("admin") or not principal.platform:
        message = (
            "That key was not accepted: it is unknown, revoked, lacks the admin scope or "
            "is bound to one tenant (the dashboard spans every tenant: use a platform key)."
            if runtime.keys.configured
            else "No admin key exists yet: set METAMEDIA_ADMIN_KEY or run "
            "`metamedia keys create --scope admin`, then sign in with it."
        )
        return _no_store(render(request, "admin_login.html", {"error": message}, status=401))
    runtime.keys.record(principal.actor, "web.login", "admin", {})
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        open_session(request, principal),
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path="/admin",
    )
    return response


@router.post("/admin/logout", dependencies=[Depends(require_csrf)])
def logout(request: Request) -> RedirectResponse:
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/admin")
    return response


def _percent(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f}%"


def _variant_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The per-variant report as a table: users, exposures, then each outcome's rate with
    its 95% interval and its lift against control."""
    kinds: list[str] = list(report["outcome_types"])
    columns = ["Variant", "Weight", "Users", "Exposures", *(f"{k} rate (lift)" for k in kinds)]
    rows = []
    for v in report["variants"]:
        cells = [
            v["name"] + (" (control)" if v["control"] and v["name"] != "control" else ""),
            f"{v['weight']:g}%",
            str(v["users"]),
            str(v["exposures"]),
        ]
        for kind in kinds:
            o = v["outcomes"][kind]
            text = _percent(o["rate"])
            if o["ci_low"] is not None:
                text += f" [{_percent(o['ci_low'])} to {_percent(o['ci_high'])}]"
            if o["lift"] is not None:
                text += f" ({o['lift'] * 100:+.1f}%)"
            cells.append(text)
        rows.append(cells)
    return columns, rows


def experiments_panel(request: Request) -> dict[str, Any]:
    """Flags, experiments with their per-variant reports, for the dashboard."""
    service = runtime_of(request).experiments
    flags = [
        {
            "key": f.key,
            "enabled": f.enabled,
            "rollout": f"{f.rollout_percentage:g}",
            "description": f.description,
        }
        for f in service.flags()
    ]
    experiments = []
    for e in service.experiments():
        columns, rows = _variant_rows(service.report(e.key))
        experiments.append(
            {
                "key": e.key,
                "enabled": e.enabled,
                "traffic": f"{e.traffic_allocation:g}",
                "surfaces": ", ".join(e.surfaces),
                "description": e.description,
                "columns": columns,
                "rows": rows,
            }
        )
    return {
        "flags": flags,
        "experiments": experiments,
        "any_enabled": any(f["enabled"] for f in flags) or any(e["enabled"] for e in experiments),
    }


@router.get("/admin", response_class=HTMLResponse, response_model=None)
def dashboard(request: Request) -> Response:
    """Catalog and index stats, latency and cache figures, alerts, experiments."""
    principal = admin_of(request)
    if principal is None:
        return RedirectResponse("/admin/login", status_code=303)
    runtime = runtime_of(request)
    try:
        stats: dict[str, Any] | None = runtime.stats()
    except MetaMediaError:
        stats = None
    context = {
        "principal": principal,
        "stats": stats,
        "metrics": metrics_summary(getattr(request.app.state, "metrics", None)),
        "alerts": alerts_summary(request.app.state.alerts),
        "experiments": experiments_panel(request),
        "flash": _flash(request),
        "readable": readable,
    }
    return _no_store(render(request, "admin.html", context))


def _back_with(request: Request, message: str) -> RedirectResponse:
    """Back to the dashboard with a confirmation, signed so a crafted link shows nothing."""
    query = urlencode({"done": message, "sig": web_state(request).sign(message)})
    return RedirectResponse(f"/admin?{query}", status_code=303)


def _flash(request: Request) -> str | None:
    message = request.query_params.get("done")
    signature = request.query_params.get("sig", "")
    if message and hmac.compare_digest(signature, web_state(request).sign(message)):
        return message
    return None


@router.post("/admin/kill-switch", dependencies=[Depends(require_csrf)])
def kill_switch(request: Request) -> RedirectResponse:
    """Turn every enabled flag and experiment off at once: everyone ranks as control
    from the next request (each change is audited under the operator's key)."""
    principal = require_admin(request)
    service = runtime_of(request).experiments
    switched = []
    for flag in service.flags():
        if flag.enabled:
            service.set_enabled("flag", flag.key, False, principal.actor)
            switched.append(flag.key)
    for experiment in service.experiments():
        if experiment.enabled:
            service.set_enabled("experiment", experiment.key, False, principal.actor)
            switched.append(experiment.key)
    done = f"Kill switch: turned off {', '.join(switched)}." if switched else "Nothing was on."
    return _back_with(request, done)


@router.post("/admin/toggle", dependencies=[Depends(require_csrf)])
def toggle(
    request: Request,
    kind: Annotated[str, Form(max_length=16)],
    key: Annotated[str, Form(max_length=64)],
    enabled: Annotated[str, Form(max_length=8)],
) -> RedirectResponse:
    """Switch one flag or experiment on or off."""
    principal = require_admin(request)
    service = runtime_of(request).experiments
    if kind not in ("flag", "experiment") or enabled not in ("on", "off"):
        raise WebError(422, "Unknown change", "kind must be flag or experiment, enabled on or off")
    which: Literal["flag", "experiment"] = "flag" if kind == "flag" else "experiment"
    try:
        service.set_enabled(which, key, enabled == "on", principal.actor)
    except MetaMediaError as exc:
        raise WebError(exc.status_code, "Not changed", exc.message) from exc
    done = f"{kind.capitalize()} {key} is now {enabled}."
    return _back_with(request, done)
