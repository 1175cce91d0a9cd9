"""Media items: the unit that is ingested, stored, indexed and returned.

Pydantic models double as the validation layer for ingest rows, API bodies
and CLI flags, so a row rejected by `metamedia ingest` is rejected for the same
reason by `POST /v1/media`.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

MEDIA_TYPES = ("movie", "series", "episode", "short", "post")
MediaType = Literal["movie", "series", "episode", "short", "post"]

MAX_TITLE_CHARS = 500
MAX_DESCRIPTION_CHARS = 20_000
MAX_LIST_ITEMS = 200
MIN_YEAR = 1870
MAX_YEAR = 2100
# Other titles and release years gathered when rows of one input are merged (a 3D
# re-release sharing the original's page). Bounded so a pathological input cannot
# grow one item without limit; real catalogs have one or two.
MAX_ALTERNATE_TITLES = 32
MAX_RELEASE_YEARS = 16

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TitleText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE_CHARS)
]
Year = Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)]


def normalise_labels(values: list[str]) -> list[str]:
    """Lower-case, strip and de-duplicate labels while keeping their order."""
    seen: dict[str, None] = {}
    for value in values:
        label = value.strip().lower()
        if label:
            seen.setdefault(label, None)
    return list(seen)


_NOT_SLUG = re.compile(r"[^a-z0-9]+")
MAX_SLUG_CHARS = 60


def _folded(text: str) -> str:
    """Case-, width- and whitespace-insensitive form of a title (what the id hashes)."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def derived_id(media_type: str, title: str, year: int | None) -> str:
    """A stable id for a row that has none: `movie/titanic-1997-3f2a9c`.

    Readable part: the type, an ASCII slug of the title (accents folded, other
    characters dropped, at most 60 characters) and the year. The six hex digits
    are the start of SHA-256 over type, case-folded title and year, so titles
    whose slugs coincide ("Se7en" / "Se7en!", non-Latin titles) still get
    different ids. Only these three inputs count: the same row gets the same id
    on every run and machine, and a changed plot or cast updates the item
    rather than creating another.
    """
    folded = _folded(title)
    ascii_title = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_title).strip("-")[:MAX_SLUG_CHARS].rstrip("-") or "untitled"
    year_part = "" if year is None else str(year)
    digest = hashlib.sha256(f"{media_type}\n{folded}\n{year_part}".encode()).hexdigest()[:6]
    readable = f"{slug}-{year_part}" if year_part else slug
    return f"{media_type}/{readable}-{digest}"


class Platform(BaseModel):
    """Where an item can be watched."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText
    region: str | None = Field(default=None, max_length=16)
    url: str | None = Field(default=None, max_length=2000)

    @field_validator("name")
    @classmethod
    def _lower_name(cls, value: str) -> str:
        return value.lower()

    @field_validator("region")
    @classmethod
    def _upper_region(cls, value: str | None) -> str | None:
        return value.strip().upper() or None if value else None


class MediaItem(BaseModel):
    """One catalog entry: the unit that is ingested, stored, indexed and returned."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
    type: MediaType = "movie"
    title: TitleText
    alternate_titles: list[TitleText] = Field(
        default_factory=list,
        max_length=MAX_ALTERNATE_TITLES,
        description="Other titles the item is known by (e.g. a re-release); searchable.",
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    genres: list[ShortText] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    year: int | None = Field(default=None, ge=MIN_YEAR, le=MAX_YEAR)
    release_years: list[Year] = Field(
        default_factory=list,
        max_length=MAX_RELEASE_YEARS,
        description="Other years it was released in (re-releases); year filters match them.",
    )
    release_date: date | None = None
    runtime_minutes: int | None = Field(default=None, ge=0, le=100_000)
    language: str | None = Field(default=None, min_length=2, max_length=16)
    cast: list[ShortText] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    platforms: list[Platform] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    rating: float | None = Field(default=None, ge=0.0, le=5.0)
    rating_count: int = Field(default=0, ge=0)
    popularity: float = Field(default=0.0, ge=0.0)
    maturity_rating: str | None = Field(default=None, max_length=16)
    image_url: str | None = Field(default=None, max_length=2000)
    tags: list[ShortText] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    external_ids: dict[ShortText, ShortText] = Field(
        default_factory=dict,
        max_length=32,
        description="Identifiers in other catalogs, e.g. {'imdb': 'tt0114709', 'tmdb': '862'}.",
    )
    visibility: Literal["public", "private"] = "public"
    owner: str | None = Field(default=None, max_length=256)
    allowed_users: list[ShortText] = Field(
        default_factory=list,
        max_length=1000,
        description="Besides the owner, who may see a private item.",
    )
    tenant: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "default"
    series_id: str | None = Field(default=None, max_length=256)
    season: int | None = Field(default=None, ge=0)
    episode: int | None = Field(default=None, ge=0)

    @field_validator("genres", "tags")
    @classmethod
    def _labels(cls, values: list[str]) -> list[str]:
        return normalise_labels(values)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else None

    @model_validator(mode="after")
    def _consistent(self) -> MediaItem:
        if self.year is None and self.release_date is not None:
            self.year = self.release_date.year
        if self.release_date is not None and self.release_date.year != self.year:
            raise ValueError(f"release_date {self.release_date} is not in year {self.year}")
        if self.visibility == "private" and not self.owner:
            raise ValueError("a private item needs an owner")
        # The primary title and year are not "other" ones; repeats carry nothing.
        primary = self.title.casefold()
        titles: dict[str, str] = {}
        for title in self.alternate_titles:
            if title.casefold() != primary:
                titles.setdefault(title.casefold(), title)
        self.alternate_titles = list(titles.values())
        self.release_years = sorted(set(self.release_years) - {self.year})
        return self

    def visible_to(self, viewer: str | None) -> bool:
        """Public items are for everyone; private ones for the owner and allowed users."""
        if self.visibility == "public":
            return True
        return viewer is not None and (viewer == self.owner or viewer in self.allowed_users)

    def platform_names(self) -> list[str]:
        """Distinct platform names, sorted: what filters and results use."""
        return sorted({p.name for p in self.platforms})

    def embedding_text(self) -> str:
        """The text the sentence model sees: what a searcher would describe."""
        parts = [self.title]
        if self.genres:
            parts.append(", ".join(self.genres))
        if self.description:
            parts.append(self.description)
        if self.tags:
            parts.append("Tags: " + ", ".join(self.tags))
        return ". ".join(parts)

    def content_hash(self) -> str:
        """Hash of the embedding text: equal hashes mean the vector can be reused."""
        return hashlib.sha256(self.embedding_text().encode("utf-8")).hexdigest()

    def row_hash(self) -> str:
        """Hash of every field: equal hashes mean re-ingesting changes nothing.

        Empty alternate titles and release years are left out, so an item that has
        none hashes as it did before those fields existed: upgrading does not turn
        every stored row into an "update".
        """
        fields = self.model_dump(mode="json")
        for name in ("alternate_titles", "release_years"):
            if not fields[name]:
                del fields[name]
        payload = json.dumps(fields, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()
