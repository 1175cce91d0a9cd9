"""An OpenFeature provider backed by our flag and experiment store.

With it, application code asks for flags through the vendor-neutral OpenFeature
SDK instead of a private interface:

    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext

    api.set_provider(MetaMediaProvider(runtime.experiments))
    client = api.get_client()
    ctx = EvaluationContext("user-42", {"tenant": "default", "region": "US"})
    client.get_boolean_value("fresh_feed", False, ctx)          # a flag: on / off
    client.get_string_value("feed_ranking_v2", "control", ctx)  # an experiment: the variant

The targeting key is the user id; attributes `tenant` (default "default"),
`region` and `returning` (bool; or `user_type` "new" / "returning") feed the
targeting rules. When a rule needs `region` or `returning` and the context lacks
it, the provider looks it up through `traits` if one was given (the stored
preferences' region, whether any interaction is stored).

A user outside an experiment (not targeted, outside the traffic allocation,
experiment disabled) gets the caller's default with no variant; inside, the
value and `variant` are the variant's name and `flag_metadata["enrolled"]` is
True. `get_object_value` on an experiment returns `{"variant", "params"}`.
Asking a flag for a string (or an experiment for a boolean) is a TYPE_MISMATCH.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from metamedia.services.feature_rules import (
    Decision,
    Snapshot,
    Subject,
    assign,
    evaluate_flag,
)

PROVIDER_NAME = "metamedia"
T = TypeVar("T")
Traits = Callable[[str, str], tuple[bool, str | None]]  # (tenant, user) -> (returning, region)
ObjectValue = Sequence[FlagValueType] | Mapping[str, FlagValueType]


class SnapshotSource(Protocol):
    def snapshot(self) -> Snapshot: ...


_REASONS = {
    "disabled": Reason.DISABLED,
    "allow": Reason.TARGETING_MATCH,
    "split": Reason.SPLIT,
    "rollout": Reason.SPLIT,
}


class MetaMediaProvider(AbstractProvider):
    """Resolves flags (boolean) and experiments (string variant) from our store."""

    def __init__(self, source: SnapshotSource, traits: Traits | None = None) -> None:
        super().__init__()
        self._source = source
        self._traits = traits

    def get_metadata(self) -> Metadata:
        return Metadata(name=PROVIDER_NAME)

    # -- the SDK's entry points ------------------------------------------------------

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        snapshot = self._source.snapshot()
        flag = snapshot.flags.get(flag_key)
        if flag is None:
            return self._missing(snapshot, flag_key, default_value, "boolean")
        subject = self.subject(evaluation_context, snapshot)
        decision = evaluate_flag(flag, subject)
        if decision.reason == "no_user":
            return _error(default_value, ErrorCode.TARGETING_KEY_MISSING, _NO_KEY)
        return FlagResolutionDetails(
            value=decision.enrolled,
            reason=_REASONS.get(decision.reason, Reason.DEFAULT),
            variant="on" if decision.enrolled else "off",
            flag_metadata=_metadata("flag", decision, snapshot),
        )

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        snapshot = self._source.snapshot()
        decision = self._assign(flag_key, evaluation_context, snapshot)
        if decision is None:
            return self._missing(snapshot, flag_key, default_value, "string")
        if decision.reason == "no_user":
            return _error(default_value, ErrorCode.TARGETING_KEY_MISSING, _NO_KEY)
        if not decision.enrolled or decision.variant is None:
            return FlagResolutionDetails(
                value=default_value,
                reason=_REASONS.get(decision.reason, Reason.DEFAULT),
                flag_metadata=_metadata("experiment", decision, snapshot),
            )
        return FlagResolutionDetails(
            value=decision.variant,
            reason=_REASONS[decision.reason],
            variant=decision.variant,
            flag_metadata=_metadata("experiment", decision, snapshot),
        )

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: ObjectValue,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[ObjectValue]:
        snapshot = self._source.snapshot()
        decision = self._assign(flag_key, evaluation_context, snapshot)
        if decision is None:
            return self._missing(snapshot, flag_key, default_value, "object")
        if decision.reason == "no_user":
            return _error(default_value, ErrorCode.TARGETING_KEY_MISSING, _NO_KEY)
        variant = snapshot.experiments[flag_key].variant(decision.variant or "")
        if not decision.enrolled or variant is None:
            return FlagResolutionDetails(
                value=default_value,
                reason=_REASONS.get(decision.reason, Reason.DEFAULT),
                flag_metadata=_metadata("experiment", decision, snapshot),
            )
        value: dict[str, FlagValueType] = {
            "variant": variant.name,
            "params": variant.params.model_dump(mode="json"),
        }
        return FlagResolutionDetails(
            value=value,
            reason=_REASONS[decision.reason],
            variant=variant.name,
            flag_metadata=_metadata("experiment", decision, snapshot),
        )

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        return self._missing(self._source.snapshot(), flag_key, default_value, "integer")

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        return self._missing(self._source.snapshot(), flag_key, default_value, "float")

    # -- helpers -------------------------------------------------------------------------

    def subject(self, context: EvaluationContext | None, snapshot: Snapshot) -> Subject:
        """Our subject from an OpenFeature context, filling needed traits by lookup."""
        context = context or EvaluationContext()
        attrs = context.attributes
        tenant = attrs.get("tenant")
        tenant = tenant if isinstance(tenant, str) and tenant else "default"
        user = context.targeting_key or None
        given = attrs.get("region")
        region = given if isinstance(given, str) and given else None
        returning = _returning(attrs)
        # A caller that sent `region` (even empty: "none known") needs no lookup.
        wants_region = "region" not in attrs and snapshot.needs_region
        wants_history = returning is None and snapshot.needs_history
        if user is not None and self._traits is not None and (wants_region or wants_history):
            stored_returning, stored_region = self._traits(tenant, user)
            region = region if region is not None else stored_region
            returning = returning if returning is not None else stored_returning
        return Subject(tenant=tenant, user=user, region=region, returning=returning)

    def _assign(
        self, key: str, context: EvaluationContext | None, snapshot: Snapshot
    ) -> Decision | None:
        experiment = snapshot.experiments.get(key)
        if experiment is None:
            return None
        return assign(experiment, self.subject(context, snapshot))

    @staticmethod
    def _missing(snapshot: Snapshot, key: str, default: T, kind: str) -> FlagResolutionDetails[T]:
        if key in snapshot.flags or key in snapshot.experiments:
            what = "a flag (boolean)" if key in snapshot.flags else "an experiment (string)"
            return _error(
                default, ErrorCode.TYPE_MISMATCH, f"{key!r} is {what}, not a {kind} value"
            )
        return _error(default, ErrorCode.FLAG_NOT_FOUND, f"no flag or experiment named {key!r}")


_NO_KEY = "this decision needs a targeting key (the user id)"


def _error(default: T, code: ErrorCode, message: str) -> FlagResolutionDetails[T]:
    return FlagResolutionDetails(
        value=default, reason=Reason.ERROR, error_code=code, error_message=message
    )


def _returning(attrs: Mapping[str, Any]) -> bool | None:
    value = attrs.get("returning")
    if isinstance(value, bool):
        return value
    kind = attrs.get("user_type")
    if kind == "new":
        return False
    return True if kind == "returning" else None


def _metadata(kind: str, decision: Decision, snapshot: Snapshot) -> dict[str, bool | int | str]:
    return {
        "kind": kind,
        "rule": decision.reason,
        "enrolled": decision.enrolled,
        "version": snapshot.version,
    }
