"""Search filters as a SQL predicate: the relational store's evaluator of the same
filter model the in-memory payload mask evaluates (a test checks they agree)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metamedia.domain import SearchFilters


def filter_sql(
    tenant: str, viewer: str | None, filters: SearchFilters
) -> tuple[str, dict[str, Any]]:
    """SQL predicate over alias `m` equivalent to the in-memory payload mask."""
    clauses = ["m.tenant = :tenant"]
    params: dict[str, Any] = {"tenant": tenant}
    if viewer is None:
        clauses.append("m.visibility = 'public'")
    else:
        clauses.append(
            "(m.visibility = 'public' OR m.owner = :viewer OR EXISTS "
            "(SELECT 1 FROM media_viewer v WHERE v.pk = m.pk AND v.viewer = :viewer))"
        )
        params["viewer"] = viewer

    def in_list(column: str, name: str, values: Sequence[str]) -> str:
        keys = []
        for i, value in enumerate(values):
            params[f"{name}{i}"] = value
            keys.append(f":{name}{i}")
        return f"{column} IN ({', '.join(keys)})"

    if filters.types:
        clauses.append(in_list("m.type", "type", filters.types))
    if filters.languages:
        clauses.append(in_list("m.language", "lang", filters.languages))
    if filters.year_min is not None or filters.year_max is not None:
        # The item's year or any of its other release years (media_year) is in range.
        bounds = []
        if filters.year_min is not None:
            bounds.append("{col} >= :year_min")
            params["year_min"] = filters.year_min
        if filters.year_max is not None:
            bounds.append("{col} <= :year_max")
            params["year_max"] = filters.year_max
        in_range = " AND ".join(bounds)
        clauses.append(
            f"({in_range.format(col='m.year')} OR EXISTS (SELECT 1 FROM media_year y "
            f"WHERE y.pk = m.pk AND {in_range.format(col='y.year')}))"
        )
    if filters.min_rating is not None:
        clauses.append("m.rating >= :min_rating")
        params["min_rating"] = filters.min_rating
    if filters.genres:
        clauses.append(
            "EXISTS (SELECT 1 FROM media_genre g WHERE g.pk = m.pk AND "
            + in_list("g.genre", "genre", filters.genres)
            + ")"
        )
    if filters.platforms:
        clauses.append(
            "EXISTS (SELECT 1 FROM media_platform p WHERE p.pk = m.pk AND "
            + in_list("p.platform", "plat", filters.platforms)
            + ")"
        )
    return " AND ".join(clauses), params
