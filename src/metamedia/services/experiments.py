"""Feature flags and A/B experiments: definitions, assignment, exposures, outcomes, reports.

Where definitions come from
    At start-up the configured set (the file named by `METAMEDIA_EXPERIMENTS_FILE`,
    TOML or JSON, or the built-in `experiment_defaults`) is synced into the
    database per definition: a new key is inserted; a key whose configured text
    changed since it was last applied is overwritten; an unchanged key keeps
    whatever the admin API made of it; a key last written by the config and no
    longer configured is removed. So admin API changes win until that
    definition's config text changes.

How a change reaches every process
    Definitions are cached in memory as one immutable snapshot. Before a request
    uses it, the store's version counter (one primary-key read) is compared at
    most every `experiments_refresh_s` seconds (default 1 s; 0 = every request)
    and the snapshot is reloaded when it moved. A write through this process
    reloads at once, so a kill switch applies to this process's next request and
    to other processes sharing the database within the refresh interval.

Exposures and outcomes
    A user is exposed to an experiment when a search / feed response was ranked
    under its assignment (any variant, control included). The first exposure of a
    (experiment, user) pair seen by a process is written at once (one row per
    pair: first variant, first time, count); later ones are counted in memory and
    added every `EXPOSURE_FLUSH_S` seconds, before a report and on close, so the
    hot path does not write per request. An outcome is a click, like, complete,
    favorite or share stored after the user's first exposure, while the
    experiment is enabled; it counts for the variant of that first exposure.
    Targeting is evaluated per request: a user who stops matching (a "new" user
    who interacted) ranks as control from then on but stays in the report under
    the first variant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from openfeature import api as openfeature_api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.no_op_provider import NoOpProvider
from pydantic import BaseModel, ValidationError

from metamedia.domain.experiments import (
    ExperimentDefinition,
    FlagDefinition,
    Surface,
    VariantParams,
)
from metamedia.domain.search import FusionSettings
from metamedia.errors import InvalidRequestError, NotFoundError
from metamedia.services.auth import KeyService
from metamedia.services.experiment_defaults import DEFAULT_EXPERIMENTS_TOML
from metamedia.services.feature_rules import Snapshot
from metamedia.services.openfeature_provider import MetaMediaProvider
from metamedia.services.recommend import CANDIDATE_SOURCES, FeedWeights
from metamedia.services.users import UserChange
from metamedia.services.validation import describe_validation_error
from metamedia.storage.records import ConfigEntry
from metamedia.storage.roles import ExperimentStore

log = logging.getLogger(__name__)

Kind = Literal["flag", "experiment"]
OUTCOME_TYPES = ("click", "like", "complete", "favorite", "share")
EXPOSURE_FLUSH_S = 5.0
MAX_REMEMBERED_EXPOSURES = 500_000
WILSON_Z = 1.959963984540054  # two-sided 95%
MAX_FEED_WEIGHT = 10.0
MAX_THEME_CAP = 100
UNIT_INTERVAL_FIELDS = frozenset({"diversity", "cold_start_diversity"})

Definition = FlagDefinition | ExperimentDefinition
_MODELS: dict[str, type[BaseModel]] = {"flag": FlagDefinition, "experiment": ExperimentDefinition}


# -- variant params -> ranking settings ---------------------------------------------------


def feed_weights(base: FeedWeights, params: dict[str, Any], where: str = "feed") -> FeedWeights:
    """`base` with `params` applied; an unknown name or a bad value names the field."""
    known = {f.name: f for f in dataclasses.fields(FeedWeights)}
    changes: dict[str, Any] = {}
    for name, value in params.items():
        path = f"{where}.{name}"
        if name not in known:
            raise InvalidRequestError(
                f"unknown feed parameter '{path}'; known: {sorted(known)}", field=path
            )
        if name == "sources":
            changes[name] = _sources(value, path)
        elif name == "theme_cap":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidRequestError(f"'{path}' must be an integer, got {value!r}", field=path)
            if not 1 <= value <= MAX_THEME_CAP:
                raise InvalidRequestError(
                    f"'{path}' must be between 1 and {MAX_THEME_CAP}, got {value}", field=path
                )
            changes[name] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequestError(f"'{path}' must be a number, got {value!r}", field=path)
            high = 1.0 if name in UNIT_INTERVAL_FIELDS else MAX_FEED_WEIGHT
            if not (math.isfinite(value) and 0.0 <= value <= high):
                raise InvalidRequestError(
                    f"'{path}' must be between 0 and {high:g}, got {value!r}", field=path
                )
            changes[name] = float(value)
    return dataclasses.replace(base, **changes)


def _sources(value: Any, path: str) -> frozenset[str]:
    if not isinstance(value, list | tuple | set | frozenset) or not value:
        raise InvalidRequestError(
            f"'{path}' must be a non-empty list of {sorted(CANDIDATE_SOURCES)}", field=path
        )
    unknown = sorted(str(v) for v in value if v not in CANDIDATE_SOURCES)
    if unknown:
        raise InvalidRequestError(
            f"'{path}' has unknown source(s) {unknown}; known: {sorted(CANDIDATE_SOURCES)}",
            field=path,
        )
    return frozenset(str(v) for v in value)


def fusion_settings(
    base: FusionSettings, params: dict[str, Any], where: str = "search"
) -> FusionSettings:
    """`base` with `params` applied, validated like a request's `fusion` object."""
    try:
        return FusionSettings.model_validate({**base.model_dump(), **params})
    except ValidationError as exc:
        raise InvalidRequestError(f"in '{where}': {describe_validation_error(exc)}") from exc


def check_params(params: VariantParams, where: str, surfaces: list[Surface] | None) -> None:
    """Refuse params a ranking call would refuse, before they are stored."""
    for surface in ("search", "feed"):
        given = params.for_surface(surface)
        if given and surfaces is not None and surface not in surfaces:
            raise InvalidRequestError(
                f"'{where}.{surface}' is set but '{surface}' is not in surfaces {surfaces}",
                field=f"{where}.{surface}",
            )
    feed_weights(FeedWeights(), params.feed, f"{where}.feed")
    fusion_settings(FusionSettings(), params.search, f"{where}.search")


def validate_definition(kind: Kind, key: str, body: dict[str, Any]) -> Definition:
    """Parse and check one definition; InvalidRequestError (422) says what is wrong."""
    if not isinstance(body, dict):
        raise InvalidRequestError(f"{kind} {key!r} must be an object")
    if "key" in body and body["key"] != key:
        raise InvalidRequestError(
            f"{kind} key in the body ({body['key']!r}) differs from {key!r}", field="key"
        )
    try:
        parsed = _MODELS[kind].model_validate({**body, "key": key})
    except ValidationError as exc:
        raise InvalidRequestError(f"{kind} {key!r}: {describe_validation_error(exc)}") from exc
    if isinstance(parsed, ExperimentDefinition):
        for index, variant in enumerate(parsed.variants):
            check_params(variant.params, f"variants[{index}].params", parsed.surfaces)
        return parsed
    assert isinstance(parsed, FlagDefinition)
    check_params(parsed.params, "params", None)
    return parsed


def _body(definition: Definition) -> dict[str, Any]:
    return definition.model_dump(mode="json")


def _hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def load_config(path: Path | None) -> list[ConfigEntry]:
    """The configured definitions: `path` (.json, else TOML) or the built-in set.

    Format: a `flags` table and an `experiments` table, each keyed by the
    definition's key (see `experiment_defaults` for an example).
    """
    where = str(path) if path is not None else "built-in defaults"
    try:
        if path is None:
            data: Any = tomllib.loads(DEFAULT_EXPERIMENTS_TOML)
        elif path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidRequestError(f"experiments file {where}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidRequestError(f"experiments file {where}: the top level must be a table")
    unknown = sorted(set(data) - {"flags", "experiments"})
    if unknown:
        raise InvalidRequestError(
            f"experiments file {where}: unknown section(s) {unknown}; use 'flags', 'experiments'"
        )
    entries: list[ConfigEntry] = []
    seen: set[str] = set()
    for section, kind in (("flags", "flag"), ("experiments", "experiment")):
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise InvalidRequestError(f"experiments file {where}: '{section}' must be a table")
        for key, body in table.items():
            if key in seen:
                raise InvalidRequestError(
                    f"experiments file {where}: {key!r} is both a flag and an experiment"
                )
            seen.add(key)
            try:
                definition = validate_definition(kind, key, body)  # type: ignore[arg-type]
            except InvalidRequestError as exc:
                raise InvalidRequestError(f"experiments file {where}: {exc.message}") from exc
            normal = _body(definition)
            entries.append(ConfigEntry(key, kind, normal, _hash(normal)))
    return entries


# -- confidence intervals ------------------------------------------------------------------


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Chosen over the normal approximation because it stays inside [0, 1] and keeps
    sensible coverage for small samples and rates near 0 or 1, which is where
    early experiments live.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # Exact at the edges: rounding must never put the interval beside the rate.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


# -- the definition cache ------------------------------------------------------------------


class DefinitionStore:
    """The current snapshot, re-read when the store's version counter moves."""

    def __init__(self, repo: ExperimentStore, refresh_s: float) -> None:
        self._repo = repo
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._snapshot = Snapshot(version=-1)
        self._checked = -math.inf

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        if now - self._checked < self._refresh_s:
            return self._snapshot
        with self._lock:
            if now - self._checked >= self._refresh_s:
                if self._repo.version() != self._snapshot.version:
                    self._reload()
                self._checked = time.monotonic()
        return self._snapshot

    def reload(self) -> Snapshot:
        """Read everything now (after a write by this process)."""
        with self._lock:
            self._reload()
            self._checked = time.monotonic()
        return self._snapshot

    def _reload(self) -> None:
        version, rows = self._repo.load()
        flags: dict[str, FlagDefinition] = {}
        experiments: dict[str, ExperimentDefinition] = {}
        for row in rows:
            try:
                if row.kind == "flag":
                    flags[row.key] = FlagDefinition.model_validate(row.body)
                else:
                    experiments[row.key] = ExperimentDefinition.model_validate(row.body)
            except ValidationError as exc:  # stored by an older version of the code
                log.error("skipping unreadable %s %r: %s", row.kind, row.key, exc)
        self._snapshot = Snapshot(version=version, flags=flags, experiments=experiments)


# -- the service ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Treatment:
    """What one request of one user gets on one surface."""

    tenant: str
    user: str | None
    surface: Surface
    assignments: dict[str, str]  # experiment -> variant
    flags: dict[str, bool]  # flags with params for this surface -> on / off
    params: dict[str, Any]  # merged params: flags first, then experiments (sorted by key)


class ExperimentService:
    def __init__(
        self,
        repo: ExperimentStore,
        keys: KeyService,
        *,
        config_file: Path | None = None,
        refresh_s: float = 1.0,
    ) -> None:
        self.repo = repo
        self.keys = keys
        self.store = DefinitionStore(repo, refresh_s)
        self._definition_listeners: list[Callable[[], None]] = []
        sync = repo.sync_config(load_config(config_file), actor="config")
        if sync.inserted or sync.overridden or sync.removed:
            keys.record(
                "config",
                "config.sync",
                str(config_file) if config_file else "built-in",
                dataclasses.asdict(sync),
            )
        self.store.reload()
        self._lock = threading.Lock()
        self._exposed: dict[tuple[str, str, str], str] = {}
        self._pending: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._flushed = time.monotonic()
        # OpenFeature: our provider under a domain of its own, so that several runtimes
        # in one process (tests, tools) never answer for each other.
        self.provider = MetaMediaProvider(self.store, traits=repo.user_traits)
        self._domain = f"metamedia-{uuid.uuid4().hex}"
        openfeature_api.set_provider_and_wait(self.provider, self._domain)
        self.client = openfeature_api.get_client(self._domain)

    def snapshot(self) -> Snapshot:
        return self.store.snapshot()

    # -- definitions -------------------------------------------------------------------

    def flags(self) -> list[FlagDefinition]:
        return sorted(self.snapshot().flags.values(), key=lambda f: f.key)

    def experiments(self) -> list[ExperimentDefinition]:
        return sorted(self.snapshot().experiments.values(), key=lambda e: e.key)

    def flag(self, key: str) -> FlagDefinition:
        found = self.snapshot().flags.get(key)
        if found is None:
            raise NotFoundError(f"no flag named {key!r}")
        return found

    def experiment(self, key: str) -> ExperimentDefinition:
        found = self.snapshot().experiments.get(key)
        if found is None:
            raise NotFoundError(f"no experiment named {key!r}")
        return found

    def put(
        self, kind: Kind, key: str, body: dict[str, Any], actor: str
    ) -> tuple[Definition, bool]:
        """Create or replace; returns the stored definition and whether it is new."""
        definition = validate_definition(kind, key, body)
        row = self.repo.get(key)
        if row is not None and row.kind != kind:
            other = "an experiment" if row.kind == "experiment" else "a flag"
            raise InvalidRequestError(
                f"{key!r} is already {other}; flags and experiments share one key space"
            )
        before = None if row is None else row.body
        self.repo.put(key, kind, _body(definition), actor)
        self.store.reload()
        self._audit(kind, key, before, _body(definition), actor)
        self._definitions_changed()
        return definition, row is None

    def patch(self, kind: Kind, key: str, changes: dict[str, Any], actor: str) -> Definition:
        """Change some top-level fields (e.g. `traffic_allocation`, `enabled`)."""
        row = self.repo.get(key)
        if row is None or row.kind != kind:
            raise NotFoundError(f"no {kind} named {key!r}")
        merged = {**row.body, **changes}
        for alias, name in (
            ("rolloutPercentage", "rollout_percentage"),
            ("trafficAllocation", "traffic_allocation"),
        ):
            if alias in changes:
                merged.pop(name, None)
        definition, _ = self.put(kind, key, merged, actor)
        return definition

    def set_enabled(self, kind: Kind, key: str, enabled: bool, actor: str) -> Definition:
        """The kill switch (enabled=False): everyone ranks as control from the next request."""
        return self.patch(kind, key, {"enabled": enabled}, actor)

    def delete(self, kind: Kind, key: str, actor: str) -> None:
        row = self.repo.get(key)
        if row is None or row.kind != kind:
            raise NotFoundError(f"no {kind} named {key!r}")
        self.repo.delete(key)
        if kind == "experiment":
            self.repo.forget_experiment(key)
            with self._lock:
                self._forget(lambda k: k[0] == key)
        self.store.reload()
        self.keys.record(actor, f"{kind}.delete", f"{kind}:{key}", {"before": row.body})
        self._definitions_changed()

    def on_definitions_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after this process changed a flag or experiment (other
        replicas are told at once instead of at their next version check)."""
        self._definition_listeners.append(listener)

    def _definitions_changed(self) -> None:
        for listener in self._definition_listeners:
            listener()

    def _audit(
        self,
        kind: Kind,
        key: str,
        before: dict[str, Any] | None,
        after: dict[str, Any],
        actor: str,
    ) -> None:
        if before is None:
            action, detail = "create", {"after": after}
        else:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            detail = {"changes": {k: [before.get(k), after.get(k)] for k in changed}}
            if before.get("enabled") and not after.get("enabled"):
                action = "kill"
            elif not before.get("enabled") and after.get("enabled"):
                action = "enable"
            else:
                action = "update"
        self.keys.record(actor, f"{kind}.{action}", f"{kind}:{key}", detail)

    # -- evaluation ---------------------------------------------------------------------

    def context(self, tenant: str, user: str, region: str | None = None) -> EvaluationContext:
        """The OpenFeature context for a user, with the stored traits the rules need."""
        attributes: dict[str, Any] = {"tenant": tenant}
        snapshot = self.snapshot()
        if region:
            attributes["region"] = region
        if (snapshot.needs_region and not region) or snapshot.needs_history:
            returning, stored_region = self.repo.user_traits(tenant, user)
            attributes["returning"] = returning
            if not region:
                attributes["region"] = stored_region or ""
        return EvaluationContext(targeting_key=user, attributes=attributes)

    def treatment(
        self, surface: Surface, tenant: str, user: str | None, region: str | None = None
    ) -> Treatment:
        """Flags and experiment variants for this user on this surface, evaluated through
        the OpenFeature client; anonymous users get none."""
        snapshot = self.snapshot()
        if user is None:
            return Treatment(tenant, None, surface, {}, {}, {})
        flags = [f for f in snapshot.flags.values() if f.enabled and f.params.for_surface(surface)]
        experiments = [
            e for e in snapshot.experiments.values() if e.enabled and surface in e.surfaces
        ]
        if not flags and not experiments:
            return Treatment(tenant, user, surface, {}, {}, {})
        ctx = self.context(tenant, user, region)
        params: dict[str, Any] = {}
        flag_values: dict[str, bool] = {}
        for flag in sorted(flags, key=lambda f: f.key):
            on = self.client.get_boolean_value(flag.key, False, ctx)
            flag_values[flag.key] = on
            if on:
                params.update(flag.params.for_surface(surface))
        assignments: dict[str, str] = {}
        for experiment in sorted(experiments, key=lambda e: e.key):
            details = self.client.get_string_details(experiment.key, "", ctx)
            variant = experiment.variant(details.variant or "")
            if variant is None:
                continue
            assignments[experiment.key] = variant.name
            params.update(variant.params.for_surface(surface))
        return Treatment(tenant, user, surface, assignments, flag_values, params)

    def expose(self, treatment: Treatment) -> None:
        """Count the exposures of a served response; writes only a pair's first one."""
        if treatment.user is None or not treatment.assignments:
            return
        now = time.time()
        first: list[tuple[str, str]] = []
        with self._lock:
            for experiment, variant in treatment.assignments.items():
                key = (experiment, treatment.tenant, treatment.user)
                if key in self._exposed:
                    count, _ = self._pending.get(key, (0, now))
                    self._pending[key] = (count + 1, now)
                else:
                    if len(self._exposed) >= MAX_REMEMBERED_EXPOSURES:
                        self._exposed.clear()  # only costs a few upserts
                    self._exposed[key] = variant
                    first.append((experiment, variant))
        for experiment, variant in first:
            self.repo.record_exposure(experiment, treatment.tenant, treatment.user, variant, now)
        if time.monotonic() - self._flushed >= EXPOSURE_FLUSH_S:
            self.flush()

    def flush(self) -> None:
        """Write the exposure counts held in memory."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._flushed = time.monotonic()
        self.repo.add_exposure_counts([(*key, n, ts) for key, (n, ts) in pending.items()])

    # -- outcomes ------------------------------------------------------------------------

    def on_user_change(self, change: UserChange) -> None:
        """Listener for `UserService.on_change`: outcomes after an exposure."""
        events = [e for e in change.events if e.type in OUTCOME_TYPES]
        if not events:
            return
        live = self.snapshot().experiments
        rows: list[tuple[str, str, str, str, int, float]] = []
        for exposure in self.repo.exposures_of(change.tenant, change.user):
            experiment = live.get(exposure.experiment)
            if experiment is None or not experiment.enabled:
                continue
            per_type: dict[str, tuple[int, float]] = {}
            for event in events:
                if event.ts < exposure.first_ts:
                    continue
                count, ts = per_type.get(event.type, (0, event.ts))
                per_type[event.type] = (count + 1, min(ts, event.ts))
            rows.extend(
                (exposure.experiment, change.tenant, change.user, kind, count, ts)
                for kind, (count, ts) in per_type.items()
            )
        self.repo.add_outcomes(rows)

    def forget_user(self, tenant: str, user: str) -> None:
        """Erasure (`UserService.on_erase`)."""
        with self._lock:
            self._forget(lambda k: k[1:] == (tenant, user))
        self.repo.forget_user(tenant, user)

    def _forget(self, matches: Callable[[tuple[str, str, str]], bool]) -> None:
        for table in (self._exposed, self._pending):
            for key in [k for k in table if matches(k)]:
                del table[key]

    # -- report --------------------------------------------------------------------------

    def report(self, key: str) -> dict[str, Any]:
        """Per-variant exposures, outcome rates with Wilson 95% intervals, lift vs control.

        The rate of an outcome is per user: exposed users with at least one such
        outcome after their first exposure / exposed users. Its interval is the
        Wilson score interval (95%). `lift` is the relative change of the rate
        against the control variant (None while control's rate is 0); `difference`
        is the absolute one. "any" counts users with any outcome.
        """
        experiment = self.experiment(key)
        self.flush()
        exposures = self.repo.variant_counts(key)
        outcomes = self.repo.outcome_counts(key)
        names = [v.name for v in experiment.variants]
        names += sorted(set(exposures) - set(names))  # variants removed since
        kinds = [*OUTCOME_TYPES, "any"]

        def rate(variant: str, kind: str) -> float | None:
            users = exposures[variant].users if variant in exposures else 0
            hits = outcomes[(variant, kind)].users if (variant, kind) in outcomes else 0
            return hits / users if users else None

        variants = []
        for name in names:
            counted = exposures.get(name)
            users = counted.users if counted else 0
            per_kind: dict[str, Any] = {}
            for kind in kinds:
                found = outcomes.get((name, kind))
                hits = found.users if found else 0
                value = rate(name, kind)
                control = rate(experiment.control, kind)
                low, high = wilson_interval(hits, users)
                per_kind[kind] = {
                    "users": hits,
                    "events": found.events if found else 0,
                    "rate": value,
                    "ci_low": low if users else None,
                    "ci_high": high if users else None,
                    "difference": None if value is None or control is None else value - control,
                    "lift": None
                    if value is None or not control or name == experiment.control
                    else value / control - 1.0,
                }
            variants.append(
                {
                    "name": name,
                    "weight": next((v.weight for v in experiment.variants if v.name == name), 0.0),
                    "control": name == experiment.control,
                    "users": users,
                    "exposures": counted.exposures if counted else 0,
                    "outcomes": per_kind,
                }
            )
        return {
            "experiment": key,
            "enabled": experiment.enabled,
            "traffic_allocation": experiment.traffic_allocation,
            "control": experiment.control,
            "interval": "wilson score, 95%, on per-user conversion",
            "outcome_types": kinds,
            "variants": variants,
        }

    def close(self) -> None:
        self.flush()
        # Unbind our provider (the SDK has no removal; a no-op takes the domain).
        openfeature_api.set_provider(NoOpProvider(), self._domain)
