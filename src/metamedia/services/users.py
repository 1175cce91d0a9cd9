"""User context: profiles, explicit preferences, interactions, history, GDPR.

Every interaction updates the user's preference vector in O(d), so the very
next feed request (which always ranks afresh) reflects it.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from metamedia.domain.users import (
    InteractionIn,
    InteractionResult,
    Preferences,
    StoredInteraction,
)
from metamedia.engine.profile import PreferenceState, apply_event, signal_weight
from metamedia.engine.vectors import FloatArray
from metamedia.errors import InvalidRequestError, NotFoundError
from metamedia.services.caching import Caches
from metamedia.services.indexing import IndexManager
from metamedia.services.validation import describe_validation_error
from metamedia.storage.records import EventRow, UserRecord, VectorState
from metamedia.storage.roles import UserStore

FUTURE_SKEW_S = 300.0  # clocks drift: accept events up to five minutes ahead
MAX_EVENTS_PER_BATCH = 5000
PREFERENCE_HALF_LIFE_S = 60 * 86_400.0
HISTORY_CACHE_EVENTS = 500_000  # events kept in memory over all users (see EventHistories)


@dataclass(frozen=True)
class RecordedEvent:
    item: str
    media_pk: int
    type: str
    ts: float


@dataclass(frozen=True)
class UserChange:
    """What changed for one user: new events (empty for a preference change)."""

    tenant: str
    user: str
    events: tuple[RecordedEvent, ...]


@dataclass(frozen=True)
class _History:
    count: int  # how many events the store held when this was read
    last_id: int  # the highest event id among them (0: none)
    events: list[EventRow]  # oldest first, by (ts, id)
    order: list[tuple[float, int]]  # (ts, id) of each event, for merging newer ones


class EventHistories:
    """Each user's events, oldest first, read once and then only the new ones.

    A feed needs the viewer's whole history (what they have seen, what the
    collaborative model scores from); for a user with a thousand events reading
    and building every row was a fifth of the feed. This keeps the list per user
    (keyed by pk and creation time, so a re-created user never inherits one) and
    asks the store only for events with a higher id and the user's count: ids grow
    per user in commit order, and a count that does not add up (events deleted)
    reads everything again. Bounded by the number of events held, least recently
    used users out. Always current: nothing is served without asking the store.
    """

    def __init__(self, users: UserStore, max_events: int = HISTORY_CACHE_EVENTS) -> None:
        self.users = users
        self.max_events = max_events
        self._lock = threading.Lock()
        self._held = 0
        self._data: OrderedDict[tuple[int, float], _History] = OrderedDict()

    def events(self, record: UserRecord) -> list[EventRow]:
        """The user's events, oldest first (ties: the earlier insert first). The list
        is shared: callers must not change it."""
        key = (record.pk, record.created_at)
        with self._lock:
            hit = self._data.get(key)
        after = hit.last_id if hit is not None else 0
        total, rows = self.users.events_after(record.pk, after)
        if hit is not None and hit.count + len(rows) == total:
            history = _extend(hit, total, rows) if rows else hit
        else:
            if after:  # events were deleted: read them all
                total, rows = self.users.events_after(record.pk, 0)
            history = _extend(_History(0, 0, [], []), total, rows)
        with self._lock:
            old = self._data.pop(key, None)
            self._held -= len(old.events) if old is not None else 0
            if len(history.events) <= self.max_events:
                self._data[key] = history
                self._held += len(history.events)
            while self._held > self.max_events and self._data:
                _, dropped = self._data.popitem(last=False)
                self._held -= len(dropped.events)
        return history.events

    def forget(self, user_pk: int) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] == user_pk]:
                self._held -= len(self._data.pop(key).events)


def _extend(history: _History, total: int, rows: list[tuple[int, EventRow]]) -> _History:
    """`history` with `rows` (oldest first) merged in (ts, id) order; new lists, so a
    caller still holding the old one never sees it change."""
    order = history.order + [(row.ts, pk) for pk, row in rows]
    events = history.events + [row for _, row in rows]
    last_id = max([history.last_id, *(pk for pk, _ in rows)])
    start = len(history.order)
    if start and rows and order[start] < order[start - 1]:
        # A backdated event: put each new one where it belongs.
        merged_order, merged = history.order[:], history.events[:]
        for pk, row in rows:
            at = bisect.bisect(merged_order, (row.ts, pk))
            merged_order.insert(at, (row.ts, pk))
            merged.insert(at, row)
        order, events = merged_order, merged
    return _History(total, last_id, events, order)


class UserService:
    def __init__(
        self,
        users: UserStore,
        indexes: IndexManager,
        model: str,
        caches: Caches,
    ) -> None:
        self.caches = caches
        self.users = users
        self.indexes = indexes
        self.model = model
        self.histories = EventHistories(users)
        self._erase_listeners: list[Callable[[str, str], None]] = []
        self._change_listeners: list[Callable[[UserChange], None]] = []

    def on_erase(self, listener: Callable[[str, str], None]) -> None:
        """Call `listener(tenant, user)` after a user is erased (caches holding user data)."""
        self._erase_listeners.append(listener)

    def on_change(self, listener: Callable[[UserChange], None]) -> None:
        """Call `listener(change)` after new events or preferences are stored (caches,
        experiment outcomes, WebSocket pushes). Duplicates and rejects are not reported."""
        self._change_listeners.append(listener)

    def _changed(self, change: UserChange) -> None:
        for listener in self._change_listeners:
            listener(change)

    # -- profiles -------------------------------------------------------------

    def require(self, tenant: str, user: str) -> UserRecord:
        record = self.users.get(tenant, user)
        if record is None:
            raise NotFoundError(
                f"user {user!r} not found in tenant {tenant!r}; create it with PUT /v1/users/{user}"
            )
        return record

    def upsert(self, tenant: str, user: str, preferences: dict[str, Any] | None) -> UserRecord:
        self.users.ensure(tenant, user)
        if preferences is not None:
            self.set_preferences(tenant, user, preferences)
        return self.require(tenant, user)

    def preferences(self, tenant: str, user: str) -> Preferences:
        return Preferences.model_validate(self.require(tenant, user).preferences)

    def set_preferences(self, tenant: str, user: str, data: dict[str, Any]) -> Preferences:
        record = self.require(tenant, user)
        try:
            prefs = Preferences.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequestError(describe_validation_error(exc)) from exc
        self.users.set_preferences(record.pk, prefs.model_dump(mode="json"))
        self._changed(UserChange(tenant, user, ()))
        return prefs

    # -- interactions ---------------------------------------------------------

    def record(
        self, tenant: str, user: str, events: list[Any], *, create_user: bool = False
    ) -> list[InteractionResult]:
        """Validate and store events; bad ones get an error, good ones are kept.

        Durability: this returns after the new events, the preference vector they
        moved and the user's new version committed in one transaction, so whatever
        it reports "recorded" (or "duplicate") is stored. On the embedded store the
        commit is SQLite's in WAL mode with synchronous=NORMAL: the transaction is
        in the WAL file, through the operating system, before this returns; it
        survives the process being killed at any point (kill -9:
        tests/faults/test_interaction_crash.py), while the last commits before a
        power loss or kernel crash can be lost (the WAL is fsynced at checkpoints,
        not per commit). On PostgreSQL it is the server's commit.
        """
        if len(events) > MAX_EVENTS_PER_BATCH:
            raise InvalidRequestError(
                f"a batch holds at most {MAX_EVENTS_PER_BATCH} events, got {len(events)}"
            )
        _refuse_non_finite(events)
        record = self.users.ensure(tenant, user) if create_user else self.require(tenant, user)
        now = time.time()
        parsed: list[tuple[int, InteractionIn]] = []
        results: dict[int, InteractionResult] = {}
        for index, raw in enumerate(events):
            try:
                event = InteractionIn.model_validate(raw)
            except ValidationError as exc:
                results[index] = InteractionResult(
                    index=index, status="rejected", error=describe_validation_error(exc)
                )
                continue
            problem = _check_value(event, now)
            if problem:
                results[index] = InteractionResult(index=index, status="rejected", error=problem)
                continue
            parsed.append((index, event))
        known = self.users.media_pks(tenant, [e.item for _, e in parsed])
        parsed_items = {index: event.item for index, event in parsed}
        rows: list[tuple[int, EventRow]] = []
        for index, event in parsed:
            found = known.get(event.item)
            if found is None or not (found[1] or user in found[2]):
                results[index] = InteractionResult(
                    index=index,
                    status="rejected",
                    error=f"unknown item {event.item!r} in tenant {tenant!r}",
                )
                continue
            context = event.context.model_dump(exclude_none=True) if event.context else None
            rows.append(
                (index, EventRow(found[0], event.type, event.value, event.ts or now, context))
            )
        # Item vectors are read before the write transaction opens, so it never waits
        # for the index lock while holding the database's write lock.
        item_vectors = self.indexes.vectors_of([row.media_pk for _, row in rows])
        inserted = self.users.add_events(
            record.pk,
            [row for _, row in rows],
            learn=lambda fresh: self._learn(record.pk, fresh, item_vectors),
            model=self.model,
        )
        fresh: list[RecordedEvent] = []
        for (index, row), is_new in zip(rows, inserted, strict=True):
            results[index] = InteractionResult(
                index=index, status="recorded" if is_new else "duplicate"
            )
            if is_new:
                fresh.append(RecordedEvent(parsed_items[index], row.media_pk, row.type, row.ts))
        if fresh:
            self._changed(UserChange(tenant, user, tuple(fresh)))
        return [results[i] for i in sorted(results)]

    def _learn(
        self, user_pk: int, events: list[EventRow], vectors: dict[int, FloatArray]
    ) -> VectorState:
        """The preference vector after `events` (O(d) each), to be saved with them."""
        state = self.preference_state(user_pk)
        for event in events:
            vector = vectors.get(event.media_pk)
            if vector is not None:
                weight = signal_weight(event.type, event.value)
                apply_event(state, vector, weight, event.ts, PREFERENCE_HALF_LIFE_S)
        return VectorState(state.vector, state.updated_at, state.events)

    def preference_direction(self, record: UserRecord) -> FloatArray | None:
        """The unit taste direction, cached per user version (any new event or
        preference change makes a new version, in whichever process it happened)."""
        key = (record.pk, record.updated_at)
        cached = self.caches.preference_vector.get(key)
        if cached is not None:
            direction: FloatArray | None = cached[0]
            return direction
        direction = self.preference_state(record.pk).direction()
        self.caches.preference_vector.set(key, (direction,))
        return direction

    def preference_state(self, user_pk: int) -> PreferenceState:
        saved = self.users.load_vector(user_pk, self.model)
        if saved is not None and saved.vector.shape[0] == self.indexes.index.dim:
            return PreferenceState(saved.vector, saved.updated_at, saved.events)
        # No vector yet, or one from another model: replay the history.
        state = PreferenceState.empty(self.indexes.index.dim, 0.0)
        events = self.users.events(user_pk)
        vectors = self.indexes.vectors_of([e.media_pk for e in events])
        for event in events:
            vector = vectors.get(event.media_pk)
            if vector is not None:
                apply_event(
                    state,
                    vector,
                    signal_weight(event.type, event.value),
                    event.ts,
                    PREFERENCE_HALF_LIFE_S,
                )
        return state

    # -- reading back ---------------------------------------------------------

    def history(
        self, tenant: str, user: str, limit: int, offset: int, session: str | None = None
    ) -> list[StoredInteraction]:
        """Watch history, newest first; with `session`, that session's recent actions."""
        record = self.require(tenant, user)
        return [
            StoredInteraction(item=ext, type=e.type, value=e.value, ts=e.ts, context=e.context)
            for ext, e in self.users.history(record.pk, limit, offset, session)
        ]

    def favorites(self, tenant: str, user: str) -> list[dict[str, Any]]:
        record = self.require(tenant, user)
        return [{"item": ext, "since": ts} for ext, ts in self.users.favorite_ids(record.pk)]

    def export(self, tenant: str, user: str) -> dict[str, Any]:
        """Everything held about the user, as JSON (GDPR access request)."""
        record = self.require(tenant, user)
        state = self.users.load_vector(record.pk, self.model)
        history = self.users.history(record.pk, limit=1_000_000, offset=0)
        return {
            "user": user,
            "tenant": tenant,
            "created_at": record.created_at,
            "preferences": record.preferences,
            "interactions": [
                StoredInteraction(
                    item=ext, type=e.type, value=e.value, ts=e.ts, context=e.context
                ).model_dump()
                for ext, e in history
            ],
            "favorites": self.favorites(tenant, user),
            "preference_vector": None
            if state is None
            else {
                "model": self.model,
                "events": state.events,
                "updated_at": state.updated_at,
                "vector": [round(float(x), 6) for x in state.vector],
            },
        }

    def delete(self, tenant: str, user: str) -> None:
        """Erase the user from every store and cache (GDPR erasure).

        Idempotent, and needs no profile: rows keyed by the user's id exist without
        one (experiment exposures recorded while a key acted for the user), and a
        right to erasure that 404s on them would leave them forever.
        """
        record = self.users.get(tenant, user)
        if record is not None:
            pk = record.pk
            self.users.delete(pk)
            self.histories.forget(pk)
            self.caches.preference_vector.drop_where(lambda key: key[0] == pk)  # type: ignore[index]
            self.caches.forget_preferences(pk)
        for listener in self._erase_listeners:
            listener(tenant, user)


def _refuse_non_finite(events: list[Any]) -> None:
    """A NaN or infinite number is a broken client, not one bad event: refuse the batch.

    Python's JSON reader accepts `NaN` and `Infinity`; stored, a NaN timestamp became
    NULL, was ignored by the insert and came back as a "duplicate" that still counted.
    """
    for index, raw in enumerate(events):
        if not isinstance(raw, dict):
            continue
        for name in ("ts", "value"):
            number = raw.get(name)
            if isinstance(number, float) and not math.isfinite(number):
                raise InvalidRequestError(
                    f"events[{index}].{name} must be a finite number, got {number}",
                    field=f"events[{index}].{name}",
                )


def _check_value(event: InteractionIn, now: float) -> str | None:
    if event.ts is not None and event.ts > now + FUTURE_SKEW_S:
        return f"timestamp {event.ts:.0f} is in the future (now {now:.0f})"
    if event.ts is not None and event.ts < 0:
        return f"timestamp {event.ts} is before 1970"
    if event.type == "rate" and (event.value is None or not 0.5 <= event.value <= 5.0):
        return f"a rating must be between 0.5 and 5, got {event.value}"
    if event.type == "progress" and (event.value is None or not 0.0 <= event.value <= 100.0):
        return f"progress must be a percentage between 0 and 100, got {event.value}"
    return None
