"""Pure decision rules for flags and experiments: targeting, rollout, variant split.

Assignment hashes (salt, key, tenant, user) with SHA-256, so the same user gets
the same answer in every process, on every restart and on every machine, with
no stored state. Two independent hashes are used for an experiment: one picks
whether the user is in the traffic allocation (bucket < allocation), the other
picks the variant by cumulative weight. Raising the allocation therefore only
adds users; nobody already in the test changes variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from metamedia.domain.experiments import ExperimentDefinition, FlagDefinition, Targeting

BUCKET_SCALE = 100.0  # buckets are percentages in [0, 100)


def bucket(*parts: str) -> float:
    """A uniform number in [0, 100) derived only from `parts`."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 * BUCKET_SCALE


@dataclass(frozen=True)
class Subject:
    """Who is asking. `returning` / `region` are None when unknown to the caller."""

    tenant: str
    user: str | None
    region: str | None = None
    returning: bool | None = None


@dataclass(frozen=True)
class Snapshot:
    """Every definition at one version of the store; swapped whole, never mutated."""

    version: int
    flags: Mapping[str, FlagDefinition] = field(default_factory=dict)
    experiments: Mapping[str, ExperimentDefinition] = field(default_factory=dict)

    @cached_property
    def needs_region(self) -> bool:
        """Whether any enabled rule looks at the region (worth a lookup when not given)."""
        return any(d.enabled and d.targeting.needs_region for d in self._definitions())

    @cached_property
    def needs_history(self) -> bool:
        """Whether any enabled rule tells new from returning users."""
        return any(d.enabled and d.targeting.needs_history for d in self._definitions())

    def _definitions(self) -> list[FlagDefinition | ExperimentDefinition]:
        return [*self.flags.values(), *self.experiments.values()]


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation and the rule that decided it (for explanations)."""

    enrolled: bool
    reason: str  # disabled | no_user | denied | tenant | region | users | allow | rollout | split
    variant: str | None = None


def _targeted(rules: Targeting, subject: Subject) -> Decision | None:
    """None when the targeting rules let the subject through to the percentage step."""
    if rules.tenants and subject.tenant not in rules.tenants:
        return Decision(False, "tenant")
    if subject.user is not None and subject.user in rules.deny:
        return Decision(False, "denied")
    if subject.user is not None and subject.user in rules.allow:
        return Decision(True, "allow")
    if rules.regions and (subject.region or "").upper() not in rules.regions:
        return Decision(False, "region")
    if rules.users != "all" and subject.returning != (rules.users == "returning"):
        return Decision(False, "users")  # unknown (None) matches neither kind
    return None


def evaluate_flag(flag: FlagDefinition, subject: Subject) -> Decision:
    """On or off for this subject; anonymous callers only see flags rolled out to 100%."""
    if not flag.enabled:
        return Decision(False, "disabled")
    ruled = _targeted(flag.targeting, subject)
    if ruled is not None:
        return ruled
    if flag.rollout_percentage >= BUCKET_SCALE:
        return Decision(True, "rollout")
    if subject.user is None:
        return Decision(False, "no_user")
    point = bucket("flag", flag.salt, flag.key, subject.tenant, subject.user)
    return Decision(point < flag.rollout_percentage, "rollout")


def pick_variant(experiment: ExperimentDefinition, tenant: str, user: str) -> str:
    """The variant by weight, independent of whether the user is in the allocation."""
    point = bucket("variant", experiment.salt, experiment.key, tenant, user)
    edge = 0.0
    chosen = experiment.variants[-1].name
    for variant in experiment.variants:
        edge += variant.weight
        if point < edge and variant.weight > 0:
            return variant.name
    # Rounding at the top edge: the last variant with any weight.
    for variant in reversed(experiment.variants):
        if variant.weight > 0:
            return variant.name
    return chosen


def assign(experiment: ExperimentDefinition, subject: Subject) -> Decision:
    """Whether the subject is in the experiment, and in which variant."""
    if not experiment.enabled:
        return Decision(False, "disabled")
    if subject.user is None:
        return Decision(False, "no_user")
    ruled = _targeted(experiment.targeting, subject)
    if ruled is not None and not ruled.enrolled:
        return ruled
    if ruled is None:
        point = bucket("traffic", experiment.salt, experiment.key, subject.tenant, subject.user)
        if point >= experiment.traffic_allocation:
            return Decision(False, "rollout")
    variant = pick_variant(experiment, subject.tenant, subject.user)
    return Decision(True, "allow" if ruled is not None else "split", variant)
