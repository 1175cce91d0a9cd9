"""Turn raw rows into `MediaItem`s, with reasons a person can act on.

Also gives rows without an id a stable one, and names the (tenant, id) a raw
row will be stored under, so ingest can find rows that share an id before it
validates them.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from metamedia.domain import MediaItem, derived_id
from metamedia.errors import ValidationFailed


def describe_validation_error(error: ValidationError) -> str:
    """'field `year`: must be >= 1870 (got 1700); ...' from a pydantic error."""
    parts = []
    for problem in error.errors():
        location = ".".join(str(p) for p in problem.get("loc", ())) or "row"
        message = problem.get("msg", "invalid")
        value = problem.get("input")
        shown = ""
        if problem.get("type") != "missing" and not isinstance(value, dict):
            text = repr(value)
            shown = f" (got {text[:80]}{'...' if len(text) > 80 else ''})"
        parts.append(f"field '{location}': {message}{shown}")
    return "; ".join(parts)


def validate_item(data: dict[str, Any], default_tenant: str = "default") -> MediaItem:
    """Validate one row; raise `ValidationFailed` whose message names field and reason."""
    if "tenant" not in data or data.get("tenant") in (None, ""):
        data = {**data, "tenant": default_tenant}
    try:
        return MediaItem.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(describe_validation_error(exc)) from exc


def _year_of(data: dict[str, Any]) -> int | None:
    """The row's year as validation will read it (CSV cells are strings), else None."""
    year = data.get("year")
    if year is None and isinstance(data.get("release_date"), str):
        year = data["release_date"][:4]
    if isinstance(year, bool):
        return None
    if isinstance(year, float) and year.is_integer():
        return int(year)
    if isinstance(year, int):
        return year
    if isinstance(year, str) and year.strip().isdigit():
        return int(year.strip())
    return None


def with_id(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The row, given a stable id (`derived_id`) if it has none; True if one was given.

    A row without a usable title keeps having no id: validation then rejects it
    for the title, which is the reason a person can act on.
    """
    own = data.get("id")
    if own is not None and not (isinstance(own, str) and not own.strip()):
        return data, False
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        return data, False
    media_type = data.get("type") or "movie"
    new_id = derived_id(str(media_type).strip(), title, _year_of(data))
    return {**data, "id": new_id}, True


RowKey = tuple[str, str]


def row_key(data: dict[str, Any] | None, default_tenant: str) -> RowKey | None:
    """(tenant, id) a row will be stored under, read before validation (None: no id)."""
    if data is None:
        return None
    own = data.get("id")
    if not isinstance(own, str) or not own.strip():
        return None
    tenant = data.get("tenant")
    if not isinstance(tenant, str) or not tenant.strip():
        tenant = default_tenant
    return tenant.strip(), own.strip()
