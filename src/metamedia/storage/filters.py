"""The filter model (`AttributeFilter`) as a SQL predicate: the relational evaluator.

The same text runs on SQLite and PostgreSQL (plain SQL-92 with bound
parameters). Multi-valued fields are tested with uncorrelated `pk IN (SELECT …)`
rather than correlated EXISTS: both databases then build the set once per query
(PostgreSQL a hashed subplan) instead of probing the link table once per row,
which on PostgreSQL made a one-decade filter over 36k films cost tens of ms.

`vector_filter_sql` is the same model over the copy of the filter attributes that
PostgreSQL's vector table keeps on each row (`media_vectors`, see
`storage/pg_vectors.py`): what an HNSW walk checks per visited row without a join.

The in-memory payload mask (`engine/payload.py`) and the reference predicate
(`engine.payload.attributes_match`) evaluate the same model; property-based tests
check all of them agree on random filters (tests/storage/test_filter_model.py, and
tests/contract/test_vector_filter.py for the vector-table form on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metamedia.engine.payload import UNKNOWN, AttributeFilter


def filter_sql(
    flt: AttributeFilter, alias: str = "m", *, probe: bool = False
) -> tuple[str, dict[str, Any]]:
    """SQL predicate over the media table as `alias`, and its parameters.

    Two forms of the same predicate, for the two ways a query meets a filter. By
    default each `pk IN (SELECT …)` stands bare, so PostgreSQL may turn it into a
    join and drive the query from the narrowest index (what listing the rows that
    pass needs). With `probe`, each is wrapped in `IS TRUE`, which keeps it a hashed
    subplan checked row by row: what a walk in some other order (an HNSW scan by
    distance) needs, where the join form made PostgreSQL rescan the set for every
    row the walk produced.
    """
    m = alias

    def member(clause: str) -> str:
        return f"({clause}) IS TRUE" if probe else clause

    clauses = [f"{m}.tenant = :f_tenant"]
    params: dict[str, Any] = {"f_tenant": flt.tenant}
    if flt.viewer is None:
        clauses.append(f"{m}.visibility = 'public'")
    else:
        clauses.append(
            f"({m}.visibility = 'public' OR {m}.owner = :f_viewer OR {m}.pk IN "
            f"(SELECT v.pk FROM media_viewer v WHERE v.viewer = :f_viewer))"
        )
        params["f_viewer"] = flt.viewer

    def in_list(column: str, name: str, values: Sequence[str]) -> str:
        keys = []
        for i, value in enumerate(values):
            params[f"f_{name}{i}"] = value
            keys.append(f":f_{name}{i}")
        return f"{column} IN ({', '.join(keys)})"

    if flt.types:
        clauses.append(in_list(f"{m}.type", "type", flt.types))
    if flt.languages:
        clauses.append(in_list(f"{m}.language", "lang", flt.languages))
    if flt.year_min is not None or flt.year_max is not None:
        # The item's year or any of its other release years (media_year) is in range.
        # One IN over a UNION rather than `year … OR pk IN (…)`: the OR kept PostgreSQL
        # from using the (tenant, year) index and scanned every media row (~30 ms on
        # 36k films for a decade and a genre; ~5 ms this way).
        bounds = []
        if flt.year_min is not None:
            bounds.append("{col} >= :f_year_min")
            params["f_year_min"] = flt.year_min
        if flt.year_max is not None:
            bounds.append("{col} <= :f_year_max")
            params["f_year_max"] = flt.year_max
        in_range = " AND ".join(bounds)
        other_years = f"SELECT y.pk FROM media_year y WHERE {in_range.format(col='y.year')}"
        if probe:
            # Row by row, the row's own year decides most rows; the other release years
            # are a small hashed set (the OR keeps it a subplan).
            clauses.append(f"({in_range.format(col=f'{m}.year')} OR {m}.pk IN ({other_years}))")
        else:
            clauses.append(
                f"{m}.pk IN (SELECT x.pk FROM media x WHERE x.tenant = :f_tenant AND "
                f"{in_range.format(col='x.year')} UNION ALL {other_years})"
            )
    if flt.min_rating is not None:
        clauses.append(f"{m}.rating >= :f_min_rating")
        params["f_min_rating"] = flt.min_rating
    if flt.blocked_owners:
        # An item without an owner is never blocked (NULL NOT IN (...) would drop it).
        clauses.append(
            f"({m}.owner IS NULL OR NOT "
            + in_list(f"{m}.owner", "blocked", flt.blocked_owners)
            + ")"
        )
    if flt.max_maturity is not None:
        # Unknown ratings pass only an unrestricted limit: a child profile sees rated items.
        clauses.append(
            f"({m}.maturity_level <> {UNKNOWN} AND {m}.maturity_level <= :f_max_maturity)"
        )
        params["f_max_maturity"] = flt.max_maturity
    if flt.genres:
        clauses.append(
            member(
                f"{m}.pk IN (SELECT g.pk FROM media_genre g WHERE "
                + in_list("g.genre", "genre", flt.genres)
                + ")"
            )
        )
    if flt.platforms:
        clauses.append(
            member(
                f"{m}.pk IN (SELECT p.pk FROM media_platform p WHERE "
                + in_list("p.platform", "plat", flt.platforms)
                + ")"
            )
        )
    return " AND ".join(clauses), params


def vector_filter_sql(flt: AttributeFilter, alias: str = "v") -> tuple[str, dict[str, Any]]:
    """SQL predicate over PostgreSQL's `media_vectors` as `alias`, and its parameters.

    The vector table carries each item's filter attributes (`pg_vectors.ATTRIBUTE_SQL`
    copies them from the media tables): the multi-valued ones as arrays, tested with
    `&&` / `= ANY`, so a row is decided from its own columns, with no join and no
    subplan. PostgreSQL only (arrays).
    """
    v = alias
    clauses = [f"{v}.tenant = :f_tenant"]
    params: dict[str, Any] = {"f_tenant": flt.tenant}
    if flt.viewer is None:
        clauses.append(f"{v}.public")
    else:
        clauses.append(
            f"({v}.public OR {v}.owner = :f_viewer OR "
            f"{v}.viewers && ARRAY[CAST(:f_viewer AS text)])"
        )
        params["f_viewer"] = flt.viewer
    if flt.types:
        clauses.append(f"{v}.type = ANY(CAST(:f_types AS text[]))")
        params["f_types"] = list(flt.types)
    if flt.languages:
        clauses.append(f"{v}.language = ANY(CAST(:f_langs AS text[]))")
        params["f_langs"] = list(flt.languages)
    if flt.year_min is not None or flt.year_max is not None:
        # `years` holds the item's year and its other release years as one multirange
        # (a GiST index serves `&&`); a missing bound is an unbounded side.
        low, high = _year_bounds(flt.year_min, flt.year_max)
        if low is not None and high is not None and low > high:
            clauses.append("FALSE")
        else:
            clauses.append(
                f"{v}.years && int4range(CAST(:f_year_min AS integer), "
                "CAST(:f_year_max AS integer), '[]')"
            )
            params["f_year_min"] = low
            params["f_year_max"] = high
    if flt.min_rating is not None:
        clauses.append(f"{v}.rating >= :f_min_rating")
        params["f_min_rating"] = flt.min_rating
    if flt.blocked_owners:
        # An item without an owner is never blocked.
        clauses.append(f"({v}.owner IS NULL OR NOT {v}.owner = ANY(CAST(:f_blocked AS text[])))")
        params["f_blocked"] = list(flt.blocked_owners)
    if flt.max_maturity is not None:
        clauses.append(
            f"({v}.maturity_level <> {UNKNOWN} AND {v}.maturity_level <= :f_max_maturity)"
        )
        params["f_max_maturity"] = flt.max_maturity
    if flt.genres:
        clauses.append(f"{v}.genres && CAST(:f_genres AS text[])")
        params["f_genres"] = list(flt.genres)
    if flt.platforms:
        clauses.append(f"{v}.platforms && CAST(:f_plats AS text[])")
        params["f_plats"] = list(flt.platforms)
    return " AND ".join(clauses), params


INT4_MAX = 2**31 - 1


def _year_bounds(low: int | None, high: int | None) -> tuple[int | None, int | None]:
    """Year bounds that an int4range takes: a bound at or past int4's ends is no bound
    (every stored year is an int4), so `'[]'` never has to step past them."""
    if low is not None and low <= -INT4_MAX:
        low = None
    if high is not None and high >= INT4_MAX:
        high = None
    if low is not None and low > INT4_MAX - 1:
        return 1, 0  # past every year: inverted, so nothing passes
    if high is not None and high < -INT4_MAX + 1:
        return 1, 0
    return low, high
