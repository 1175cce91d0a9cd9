"""`/v1/ws`: live feed refreshes and saved-search matches over one WebSocket.

Protocol (JSON text frames):
- authenticate with an API key or user token in the upgrade request
  (`Authorization: Bearer` or `X-API-Key`), or send `{"type": "auth", "key": ...}`
  or `{"type": "auth", "token": ...}` (a user token from `POST /v1/users/{id}/token`)
  first; browsers cannot set headers on a WebSocket. Add `"resume": <session>` to
  pick up the subscriptions of a dropped connection. The tenant comes from the
  credentials: `X-Tenant` / `?tenant=` only for platform keys.
- the server answers `ready` with the session id and heartbeat period, then:
  `subscribe_feed {user, limit}` → `feed` now and after each of the user's
  interactions; `subscribe_search {id, query, filters, mode}` → `subscribed`,
  then `search_match` when a new item ranks in that search's top 20;
  `unsubscribe {id | "feed"}`; `ping` → `pong`; `bye` ends the session.
- `heartbeat` frames flow when nothing else does; `lag {dropped}` says a slow
  client missed messages; `error {message}` answers a bad message without
  closing the connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from metamedia.api.security import presented_key
from metamedia.errors import MetaMediaError
from metamedia.services.access import Access, Caller, check, resolve
from metamedia.services.auth import DEFAULT_TENANT
from metamedia.services.live import Session, saved_search
from metamedia.services.runtime import Runtime
from metamedia.services.validation import describe_validation_error

router = APIRouter()

AUTH_TIMEOUT_S = 10.0
MAX_SAVED_SEARCHES = 20
MAX_MESSAGE_CHARS = 16_384
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013


# Every client message type and its access rule (after authentication); the isolation
# suite sends each of them as every kind of caller.
MESSAGE_RULES: dict[str, Access] = {
    "ping": Access.PUBLIC,
    "subscribe_feed": Access.USER_READ,
    "subscribe_search": Access.CATALOG_READ,
    "unsubscribe": Access.PUBLIC,
    "bye": Access.PUBLIC,
}


@dataclass(frozen=True)
class _Caller:
    principal: str
    tenant: str
    bound_user: str | None
    resume: str | None
    caller: Caller


class _Refused(Exception):
    pass


class _BadMessage(Exception):
    pass


@router.websocket("/v1/ws")
async def live(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    hub = runtime.live
    hub.attach(asyncio.get_running_loop())
    await websocket.accept()
    try:
        caller = await _authenticate(websocket, runtime)
    except _Refused as exc:
        await websocket.close(code=POLICY_VIOLATION, reason=str(exc)[:120])
        return
    except WebSocketDisconnect:
        return
    session = hub.resume(caller.resume, caller.principal) if caller.resume else None
    resumed = session is not None
    if session is None:
        session = hub.open(caller.tenant, caller.principal, caller.bound_user)
    await websocket.send_json(
        {
            "type": "ready",
            "session": session.id,
            "resumed": resumed,
            "heartbeat_s": runtime.settings.ws_heartbeat_s,
        }
    )
    if resumed and session.feed_user:
        session.mailbox.put(
            await hub.feed_message(session.tenant, session.feed_user, session.feed_limit),
            coalesce_key=f"feed:{session.feed_user}",
        )
    pump = asyncio.create_task(_pump(websocket, session, runtime))
    ended = False
    try:
        ended = await _serve(websocket, session, runtime, pump, caller.caller)
    finally:
        pump.cancel()
        if ended:
            hub.close(session)
        else:
            hub.detach(session)


async def _authenticate(websocket: WebSocket, runtime: Runtime) -> _Caller:
    """The connection's caller: a key or user token from the upgrade request, else from
    the first message. The tenant comes from it (`X-Tenant` / `?tenant=` only for
    platform keys); anonymous connections are refused."""
    headers = {k.lower(): v for k, v in websocket.headers.items()}
    claimed = headers.get("x-tenant") or websocket.query_params.get("tenant") or None
    resume = websocket.query_params.get("resume")
    secret = presented_key(headers)
    token_text: str | None = None
    if secret is None:
        try:
            first = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S)
        except TimeoutError as exc:
            raise _Refused("authenticate first: send {'type': 'auth', 'key'|'token': ...}") from exc
        message = _parse(first)
        if message.get("type") != "auth":
            raise _Refused("the first message must be {'type': 'auth', ...}")
        resume = message.get("resume") or resume
        if isinstance(message.get("token"), str):
            token_text = message["token"]
        else:
            secret = message.get("key") if isinstance(message.get("key"), str) else None
    key = runtime.keys.verify(secret) if secret else None
    token = None
    if key is None and (token_text or secret):
        token = runtime.keys.verify_user_token(token_text or secret or "")
        if token is None and token_text is not None:
            raise _Refused("the user token is invalid or expired")
    if key is None and token is None:
        raise _Refused("the API key is missing, unknown or revoked")
    settings = runtime.settings
    try:
        caller = resolve(settings.anonymous, DEFAULT_TENANT, key, token, claimed)
    except MetaMediaError as exc:
        raise _Refused(exc.message) from exc
    bound = caller.user if caller.kind == "user" else None
    return _Caller(caller.actor, caller.tenant, bound, resume, caller)


async def _serve(
    websocket: WebSocket,
    session: Session,
    runtime: Runtime,
    pump: asyncio.Task[None],
    caller: Caller,
) -> bool:
    """Read client messages until it leaves; True when the client ended the session."""
    idle = runtime.settings.ws_idle_timeout_s
    while True:
        receive = asyncio.ensure_future(websocket.receive_text())
        done, _ = await asyncio.wait({receive, pump}, timeout=idle, return_when="FIRST_COMPLETED")
        if pump in done:  # the sender gave up on a slow client
            receive.cancel()
            return False
        if receive not in done:
            receive.cancel()
            await websocket.close(code=1001, reason="idle timeout")
            return False
        try:
            raw = receive.result()
        except WebSocketDisconnect:
            return False
        try:
            message = _parse(raw)
            if message.get("type") == "bye":
                await websocket.close(code=1000)
                return True
            await _handle(message, session, runtime, caller)
        except _BadMessage as exc:
            session.mailbox.put({"type": "error", "message": str(exc)})
        except MetaMediaError as exc:
            session.mailbox.put({"type": "error", "message": exc.message})


async def _handle(
    message: dict[str, Any], session: Session, runtime: Runtime, caller: Caller
) -> None:
    kind = message.get("type")
    if kind == "ping":
        session.mailbox.put({"type": "pong", "ts": time.time()})
    elif kind == "subscribe_feed":
        user = message.get("user") or session.bound_user
        if not isinstance(user, str) or not user:
            raise _BadMessage("subscribe_feed needs a 'user'")
        if session.bound_user is not None and user != session.bound_user:
            raise _BadMessage("a user token can only subscribe to its own feed")
        check(caller, MESSAGE_RULES["subscribe_feed"], user)
        limit = message.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 50:
            raise _BadMessage("limit must be an integer between 1 and 50")
        await asyncio.to_thread(runtime.users.require, session.tenant, user)
        session.feed_user, session.feed_limit = user, limit
        feed = await runtime.live.feed_message(session.tenant, user, limit)
        session.mailbox.put(feed, coalesce_key=f"feed:{user}")
    elif kind == "subscribe_search":
        sub_id = message.get("id")
        if not isinstance(sub_id, str) or not 1 <= len(sub_id) <= 64:
            raise _BadMessage("subscribe_search needs an 'id' of 1-64 characters")
        check(caller, MESSAGE_RULES["subscribe_search"])
        if sub_id not in session.searches and len(session.searches) >= MAX_SAVED_SEARCHES:
            raise _BadMessage(f"at most {MAX_SAVED_SEARCHES} saved searches per connection")
        try:
            request = saved_search(message, session.tenant, session.bound_user)
        except ValidationError as exc:
            raise _BadMessage(f"saved search {sub_id!r}: {describe_validation_error(exc)}") from exc
        session.searches[sub_id] = request
        session.mailbox.put({"type": "subscribed", "id": sub_id})
    elif kind == "unsubscribe":
        target = message.get("id")
        if target == "feed":
            session.feed_user = None
        elif session.searches.pop(str(target), None) is None:
            raise _BadMessage(f"no subscription {target!r}")
        session.mailbox.put({"type": "unsubscribed", "id": target})
    else:
        raise _BadMessage(
            f"unknown message type {kind!r}: use ping, subscribe_feed, subscribe_search, "
            "unsubscribe or bye"
        )


async def _pump(websocket: WebSocket, session: Session, runtime: Runtime) -> None:
    """Send queued messages (or a heartbeat when idle); give up on a client that cannot
    take one message within the send timeout, so it holds no server resources."""
    settings = runtime.settings
    while True:
        try:
            message = await asyncio.wait_for(session.mailbox.get(), settings.ws_heartbeat_s)
        except TimeoutError:
            message = {"type": "heartbeat", "ts": time.time()}
        try:
            await asyncio.wait_for(websocket.send_json(message), settings.ws_send_timeout_s)
        except TimeoutError:
            await websocket.close(code=TRY_AGAIN_LATER, reason="client too slow")
            return
        except (WebSocketDisconnect, RuntimeError):
            return


def _parse(raw: str) -> dict[str, Any]:
    if len(raw) > MAX_MESSAGE_CHARS:
        raise _BadMessage(f"message over {MAX_MESSAGE_CHARS} characters")
    try:
        message = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _BadMessage(f"message is not JSON: {exc.msg} at position {exc.pos}") from exc
    if not isinstance(message, dict):
        raise _BadMessage("message must be a JSON object with a 'type'")
    return message
