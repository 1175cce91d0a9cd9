"""Turn raw rows into `MediaItem`s, with reasons a person can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from metamedia.domain import MediaItem
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
