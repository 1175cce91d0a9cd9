"""Feature flags and A/B experiments as they are configured and stored.

These models are the one validation layer for definitions, whether they come
from the built-in defaults, a TOML / JSON file (`METAMEDIA_EXPERIMENTS_FILE`) or
the admin API, so a definition is rejected for the same reason everywhere.
Variant parameters are only checked for shape here; the service that applies
them to ranking settings checks their names and values.

The seeds spell percentages in camelCase (`rolloutPercentage`,
`trafficAllocation`); both that and snake_case are accepted, snake_case is
what is written back.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

FeatureKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
VariantName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Surface = Literal["search", "feed"]
UserKind = Literal["all", "new", "returning"]
WEIGHT_TOLERANCE = 1e-6


class Targeting(BaseModel):
    """Who a flag or experiment may reach; an empty list means "no restriction".

    Rules combine with AND. `allow` names users who are always included (the
    percentage, region and new/returning rules are skipped for them, the tenant
    rule is not: user ids are only unique within a tenant); `deny` names users
    who are never included, whatever else matches. A "new" user has no stored
    interaction yet; a "returning" user has at least one.
    """

    model_config = ConfigDict(extra="forbid")

    tenants: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=1000
    )
    regions: list[Annotated[str, StringConstraints(min_length=1, max_length=16)]] = Field(
        default_factory=list, max_length=1000
    )
    users: UserKind = "all"
    allow: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=10_000
    )
    deny: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=10_000
    )

    @field_validator("regions")
    @classmethod
    def _upper_regions(cls, values: list[str]) -> list[str]:
        return sorted({v.strip().upper() for v in values})

    @property
    def needs_region(self) -> bool:
        return bool(self.regions)

    @property
    def needs_history(self) -> bool:
        return self.users != "all"


class VariantParams(BaseModel):
    """Ranking settings a variant (or a flag, when on) overrides.

    `search`: fields of `FusionSettings` (method, keyword_weight, semantic_weight,
    rrf_k). `feed`: fields of `FeedWeights` (content, collaborative, popularity,
    trending, freshness, preference, platform, diversity, cold_start_diversity,
    theme_cap, sources). Names and values are checked by the experiments service.
    """

    model_config = ConfigDict(extra="forbid")

    search: dict[str, Any] = Field(default_factory=dict)
    feed: dict[str, Any] = Field(default_factory=dict)

    def for_surface(self, surface: Surface) -> dict[str, Any]:
        return self.search if surface == "search" else self.feed


class FlagDefinition(BaseModel):
    """A boolean feature with a percentage rollout; `params` apply to users it is on for."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    key: FeatureKey
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    rollout_percentage: float = Field(
        default=100.0,
        ge=0.0,
        le=100.0,
        validation_alias=AliasChoices("rollout_percentage", "rolloutPercentage"),
    )
    targeting: Targeting = Field(default_factory=Targeting)
    params: VariantParams = Field(default_factory=VariantParams)
    salt: str = Field(default="", max_length=64, description="Re-shuffles buckets when changed.")


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: VariantName
    weight: float = Field(ge=0.0, le=100.0)
    params: VariantParams = Field(default_factory=VariantParams)


def _feed_only() -> list[Surface]:
    return ["feed"]


class ExperimentDefinition(BaseModel):
    """An A/B test: a share of targeted users split between weighted variants.

    `traffic_allocation` percent of the targeted users enter the experiment;
    variant weights are percentages of those users and must add up to 100. The
    `control` variant is the baseline that lift is measured against; it should
    carry no params, so that it ranks exactly like users outside the test.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    key: FeatureKey
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    traffic_allocation: float = Field(
        default=100.0,
        ge=0.0,
        le=100.0,
        validation_alias=AliasChoices("traffic_allocation", "trafficAllocation"),
    )
    surfaces: list[Surface] = Field(default_factory=_feed_only, min_length=1)
    control: VariantName = "control"
    variants: list[Variant] = Field(min_length=1, max_length=20)
    targeting: Targeting = Field(default_factory=Targeting)
    salt: str = Field(default="", max_length=64, description="Re-shuffles buckets when changed.")

    @field_validator("surfaces")
    @classmethod
    def _unique_surfaces(cls, values: list[Surface]) -> list[Surface]:
        return sorted(set(values))

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentDefinition:
        names = [v.name for v in self.variants]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"variant names must be unique; repeated: {duplicated}")
        if self.control not in names:
            raise ValueError(f"control variant {self.control!r} is not among the variants {names}")
        total = math.fsum(v.weight for v in self.variants)
        if abs(total - 100.0) > WEIGHT_TOLERANCE:
            raise ValueError(
                f"variant weights must add up to 100, they add up to {total:g} "
                f"({', '.join(f'{v.name}={v.weight:g}' for v in self.variants)})"
            )
        return self

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)
