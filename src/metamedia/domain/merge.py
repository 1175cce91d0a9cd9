"""Merging rows of one input that share an id, instead of letting the last one win.

Why: catalogs list a re-release under the original's id (the Wikipedia data
gives *Titanic 3D* (2012) the page of *Titanic* (1997)). Keeping the last row
replaced the original film; keeping the first dropped the re-release. The rule:

1. The primary is the row with the earliest `year` (rows without a year come
   after every dated row); ties go to the row read first.
2. The primary keeps its id, type, tenant, title, year, release date,
   visibility, owner and episode fields.
3. `description`, `image_url`, `runtime_minutes`, `language`,
   `maturity_rating` and `rating` (with its `rating_count`): the primary's,
   or where the primary has none, the first other row's that has one.
   `popularity` is the largest.
4. Every other row's title and alternate titles become `alternate_titles`, and
   its year and release years become `release_years` (deduplicated; the
   primary's own title and year are not repeated).
5. `genres`, `cast`, `tags`, `platforms`, `allowed_users` are unioned in row
   order (primary first); `external_ids` too, the primary's value winning a
   conflicting key. Every list keeps the bound `MediaItem` puts on it.

The result depends only on the rows and their input order, so merging the same
input again yields the same item (and the same row hash).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metamedia.domain.media import (
    MAX_ALTERNATE_TITLES,
    MAX_LIST_ITEMS,
    MAX_RELEASE_YEARS,
    MediaItem,
)

MAX_EXTERNAL_IDS = 32
_FILLED = ("description", "image_url", "runtime_minutes", "language", "maturity_rating")


def primary_order(item: MediaItem) -> tuple[bool, int]:
    """Sort key: earliest year first, undated last (stable sort keeps input order)."""
    return (item.year is None, item.year or 0)


def _union(values: Sequence[Any], limit: int) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen[:limit]


def merge_items(rows: Sequence[MediaItem]) -> MediaItem:
    """One item from rows sharing an id, given in input order (see the module rule)."""
    if not rows:
        raise ValueError("nothing to merge")
    ordered = sorted(rows, key=primary_order)
    primary, others = ordered[0], ordered[1:]
    if not others:
        return primary
    data = primary.model_dump()
    for name in _FILLED:
        if not data[name]:
            data[name] = next((getattr(o, name) for o in others if getattr(o, name)), data[name])
    if primary.rating is None:
        rated = next((o for o in others if o.rating is not None), None)
        if rated is not None:
            data["rating"], data["rating_count"] = rated.rating, rated.rating_count
    data["popularity"] = max(item.popularity for item in ordered)
    titles = list(primary.alternate_titles)
    years = list(primary.release_years)
    for other in others:
        titles += [other.title, *other.alternate_titles]
        years += [y for y in (other.year, *other.release_years) if y is not None]
    data["alternate_titles"] = _distinct_titles(titles, primary.title)[:MAX_ALTERNATE_TITLES]
    data["release_years"] = sorted(set(years) - {primary.year})[:MAX_RELEASE_YEARS]
    for name in ("genres", "cast", "tags", "allowed_users"):
        data[name] = _union([v for item in ordered for v in getattr(item, name)], MAX_LIST_ITEMS)
    platforms = _union([p for item in ordered for p in item.platforms], MAX_LIST_ITEMS)
    data["platforms"] = [p.model_dump() for p in platforms]
    external: dict[str, str] = {}
    for item in ordered:
        for key, value in item.external_ids.items():
            if key not in external and len(external) < MAX_EXTERNAL_IDS:
                external[key] = value
    data["external_ids"] = external
    return MediaItem.model_validate(data)


def _distinct_titles(titles: list[str], primary: str) -> list[str]:
    """Titles in order, case-insensitively distinct and different from the primary."""
    kept: dict[str, str] = {}
    for title in titles:
        folded = title.casefold()
        if folded != primary.casefold():
            kept.setdefault(folded, title)
    return list(kept.values())
