"""Users, their explicit preferences and the interactions they generate."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from metamedia.domain.media import ShortText, normalise_labels

InteractionType = Literal[
    "view",
    "click",
    "like",
    "dislike",
    "rate",
    "progress",
    "complete",
    "skip",
    "share",
    "favorite",
    "unfavorite",
    "impression",
]
INTERACTION_TYPES: tuple[str, ...] = InteractionType.__args__  # type: ignore[attr-defined]
Surface = Literal["search", "feed", "similar", "item", "other"]
UserId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]


class Preferences(BaseModel):
    """What a user told us explicitly; each field narrows or boosts recommendations."""

    model_config = ConfigDict(extra="forbid")

    liked_genres: list[ShortText] = Field(default_factory=list, max_length=100)
    disliked_genres: list[ShortText] = Field(default_factory=list, max_length=100)
    languages: list[ShortText] = Field(default_factory=list, max_length=50)
    platforms: list[ShortText] = Field(default_factory=list, max_length=50)
    maturity_limit: str | None = Field(default=None, max_length=16)
    region: str | None = Field(default=None, max_length=16)
    blocked_owners: list[ShortText] = Field(default_factory=list, max_length=1000)

    @field_validator("liked_genres", "disliked_genres", "languages", "platforms")
    @classmethod
    def _labels(cls, values: list[str]) -> list[str]:
        return normalise_labels(values)


class InteractionContext(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(default=None, max_length=64)
    session: str | None = Field(default=None, max_length=128)
    surface: Surface | None = None


class InteractionIn(BaseModel):
    """One event as a client sends it. `value`: rating 0.5-5, or progress 0-100 percent."""

    model_config = ConfigDict(extra="forbid")

    item: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
    type: InteractionType
    # NaN and infinity are not numbers a client can mean (and not JSON): refused, not stored.
    value: float | None = Field(default=None, allow_inf_nan=False)
    ts: float | None = Field(
        default=None, allow_inf_nan=False, description="Unix seconds; default now."
    )
    context: InteractionContext | None = None


class InteractionResult(BaseModel):
    index: int
    status: Literal["recorded", "duplicate", "rejected"]
    error: str | None = None


class StoredInteraction(BaseModel):
    item: str
    type: str
    value: float | None
    ts: float
    context: dict[str, Any] | None = None
