"""Columnar filter attributes aligned with vector-index positions.

Filters are evaluated as vectorised numpy masks (tens of microseconds for tens
of thousands of items) and handed to the vector index, so filtering happens
inside retrieval rather than after it. Categorical values are dictionary
encoded; multi-valued fields (genres, platforms) are boolean matrices whose
columns grow with the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from metamedia.domain import SearchFilters

BoolArray = npt.NDArray[np.bool_]
UNKNOWN = -1

# Maturity ratings as ordered levels (film and TV scales side by side).
MATURITY_LEVELS: dict[str, int] = {
    "g": 0,
    "tv-y": 0,
    "tv-g": 0,
    "tv-y7": 1,
    "pg": 1,
    "tv-pg": 1,
    "pg-13": 2,
    "tv-14": 2,
    "r": 3,
    "nc-17": 4,
    "tv-ma": 4,
}


def maturity_level(rating: str | None) -> int:
    return UNKNOWN if rating is None else MATURITY_LEVELS.get(rating.strip().lower(), UNKNOWN)


@dataclass(frozen=True)
class ItemAttributes:
    """What a filter can test about one item."""

    type: str
    tenant: str
    year: int | None = None
    rating: float | None = None
    language: str | None = None
    genres: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    private: bool = False
    owner: str | None = None
    popularity: float = 0.0
    maturity: str | None = None
    allowed_users: tuple[str, ...] = ()
    release_years: tuple[int, ...] = ()  # other release years; year filters match them too


@dataclass(frozen=True)
class AttributeFilter:
    """A conjunction of per-field conditions; empty tuples mean 'any'."""

    tenant: str
    types: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    min_rating: float | None = None
    viewer: str | None = None
    max_maturity: int | None = None
    blocked_owners: tuple[str, ...] = ()

    @classmethod
    def from_search(
        cls, tenant: str, viewer: str | None, filters: SearchFilters
    ) -> AttributeFilter:
        """The filter a search request asks for (what the API and the web form send)."""
        return cls(
            tenant=tenant,
            viewer=viewer,
            types=tuple(filters.types),
            genres=tuple(filters.genres),
            platforms=tuple(filters.platforms),
            languages=tuple(filters.languages),
            year_min=filters.year_min,
            year_max=filters.year_max,
            min_rating=filters.min_rating,
        )


def attributes_match(flt: AttributeFilter, attrs: ItemAttributes) -> bool:
    """The reference meaning of the filter model for one item, written for clarity.

    The mask below and the SQL of `storage/filters.py` are the fast evaluators;
    tests hold both to this one.
    """
    if attrs.tenant != flt.tenant:
        return False
    if attrs.private and not (
        flt.viewer is not None and (attrs.owner == flt.viewer or flt.viewer in attrs.allowed_users)
    ):
        return False
    if flt.types and attrs.type not in flt.types:
        return False
    if flt.languages and attrs.language not in flt.languages:
        return False
    if flt.year_min is not None or flt.year_max is not None:
        low = flt.year_min if flt.year_min is not None else -(10**9)
        high = flt.year_max if flt.year_max is not None else 10**9
        years = ([] if attrs.year is None else [attrs.year]) + list(attrs.release_years)
        if not any(low <= y <= high for y in years):
            return False
    if flt.min_rating is not None and (attrs.rating is None or attrs.rating < flt.min_rating):
        return False
    if attrs.owner is not None and attrs.owner in flt.blocked_owners:
        return False
    if flt.max_maturity is not None:
        level = maturity_level(attrs.maturity)
        if level == UNKNOWN or level > flt.max_maturity:
            return False
    if flt.genres and not set(flt.genres) & set(attrs.genres):
        return False
    return not (flt.platforms and not set(flt.platforms) & set(attrs.platforms))


@dataclass
class _Vocabulary:
    codes: dict[str, int] = field(default_factory=dict)

    def encode(self, value: str | None) -> int:
        if value is None:
            return UNKNOWN
        code = self.codes.get(value)
        if code is None:
            code = len(self.codes)
            self.codes[value] = code
        return code

    def lookup(self, values: tuple[str, ...]) -> list[int]:
        return [self.codes[v] for v in values if v in self.codes]


class PayloadColumns:
    """Filterable attributes for every position of a vector index."""

    def __init__(self, capacity: int = 1024) -> None:
        self._n = 0
        cap = max(capacity, 16)
        self._type = np.full(cap, UNKNOWN, dtype=np.int16)
        self._tenant = np.full(cap, UNKNOWN, dtype=np.int32)
        self._language = np.full(cap, UNKNOWN, dtype=np.int32)
        self._owner = np.full(cap, UNKNOWN, dtype=np.int32)
        self._year = np.full(cap, UNKNOWN, dtype=np.int32)
        # Other release years, UNKNOWN-padded; as wide as the most any item has (often 0).
        self._release_years = np.full((cap, 0), UNKNOWN, dtype=np.int32)
        # float64 like the stored column: a float32 copy rounds a minimum of 1e-81 to 0
        # and let a 0.0 rating pass where the SQL and the reference predicate refuse it.
        self._rating = np.full(cap, np.nan, dtype=np.float64)
        self._popularity = np.zeros(cap, dtype=np.float32)
        self._maturity = np.full(cap, UNKNOWN, dtype=np.int8)
        self._private = np.zeros(cap, dtype=np.bool_)
        self._genres = np.zeros((cap, 8), dtype=np.bool_)
        self._platforms = np.zeros((cap, 8), dtype=np.bool_)
        self._viewers = np.zeros((cap, 1), dtype=np.bool_)
        self._vocab = {
            name: _Vocabulary()
            for name in ("type", "tenant", "language", "owner", "genre", "platform", "viewer")
        }

    def __len__(self) -> int:
        return self._n

    def _grow_rows(self, needed: int) -> None:
        cap = self._type.shape[0]
        if needed <= cap:
            return
        new_cap = max(needed, cap * 2)
        for name in ("_type", "_tenant", "_language", "_owner", "_year", "_maturity"):
            old = getattr(self, name)
            grown = np.full(new_cap, UNKNOWN, dtype=old.dtype)
            grown[:cap] = old
            setattr(self, name, grown)
        rating = np.full(new_cap, np.nan, dtype=np.float64)
        rating[:cap] = self._rating
        self._rating = rating
        popularity = np.zeros(new_cap, dtype=np.float32)
        popularity[:cap] = self._popularity
        self._popularity = popularity
        private = np.zeros(new_cap, dtype=np.bool_)
        private[:cap] = self._private
        self._private = private
        for name in ("_genres", "_platforms", "_viewers"):
            old = getattr(self, name)
            grown_m = np.zeros((new_cap, old.shape[1]), dtype=np.bool_)
            grown_m[:cap] = old
            setattr(self, name, grown_m)
        years = np.full((new_cap, self._release_years.shape[1]), UNKNOWN, dtype=np.int32)
        years[:cap] = self._release_years
        self._release_years = years

    def _grow_columns(self, name: str, needed: int) -> None:
        old = getattr(self, name)
        if needed <= old.shape[1]:
            return
        grown = np.zeros((old.shape[0], max(needed, old.shape[1] * 2)), dtype=np.bool_)
        grown[:, : old.shape[1]] = old
        setattr(self, name, grown)

    def append(self, rows: list[ItemAttributes]) -> None:
        """Attributes for the next positions, in the order the index allocated them."""
        start = self._n
        self._grow_rows(start + len(rows))
        for offset, attrs in enumerate(rows):
            pos = start + offset
            self._type[pos] = self._vocab["type"].encode(attrs.type)
            self._tenant[pos] = self._vocab["tenant"].encode(attrs.tenant)
            self._language[pos] = self._vocab["language"].encode(attrs.language)
            self._owner[pos] = self._vocab["owner"].encode(attrs.owner)
            self._year[pos] = UNKNOWN if attrs.year is None else attrs.year
            self._set_release_years(pos, attrs.release_years)
            self._rating[pos] = np.nan if attrs.rating is None else attrs.rating
            self._private[pos] = attrs.private
            self._popularity[pos] = attrs.popularity
            self._maturity[pos] = maturity_level(attrs.maturity)
            self._set_multi("_genres", "genre", pos, attrs.genres)
            self._set_multi("_platforms", "platform", pos, attrs.platforms)
            self._set_multi("_viewers", "viewer", pos, attrs.allowed_users)
        self._n = start + len(rows)

    def _set_multi(self, column: str, vocab: str, pos: int, values: tuple[str, ...]) -> None:
        codes = [self._vocab[vocab].encode(v) for v in values]
        if codes:
            self._grow_columns(column, max(codes) + 1)
            getattr(self, column)[pos, codes] = True

    def _set_release_years(self, pos: int, years: tuple[int, ...]) -> None:
        width = self._release_years.shape[1]
        if len(years) > width:
            grown = np.full((self._release_years.shape[0], len(years)), UNKNOWN, dtype=np.int32)
            grown[:, :width] = self._release_years
            self._release_years = grown
        self._release_years[pos] = UNKNOWN
        self._release_years[pos, : len(years)] = years

    def _year_mask(self, n: int, low: int | None, high: int | None) -> BoolArray:
        """The first n items: whose year or any other release year lies in [low, high]."""

        def in_range(values: npt.NDArray[np.int32]) -> BoolArray:
            ok: BoolArray = values != UNKNOWN
            if low is not None:
                ok &= values >= low
            if high is not None:
                ok &= values <= high
            return ok

        hits = in_range(self._year[:n])
        release_years = self._release_years  # one read: append() may swap in a wider one
        if release_years.shape[1]:
            hits |= np.any(in_range(release_years[:n]), axis=1)
        return hits

    def mask(self, flt: AttributeFilter) -> BoolArray:
        """Positions passing the filter (tenant and visibility always apply)."""
        n = self._n
        tenant_codes = self._vocab["tenant"].lookup((flt.tenant,))
        if not tenant_codes:
            return np.zeros(n, dtype=np.bool_)
        mask: BoolArray = np.asarray(self._tenant[:n] == tenant_codes[0], dtype=np.bool_)
        visible = ~self._private[:n]
        if flt.viewer is not None:
            owner_codes = self._vocab["owner"].lookup((flt.viewer,))
            if owner_codes:
                visible |= self._owner[:n] == owner_codes[0]
            visible |= self._any_of("_viewers", "viewer", (flt.viewer,))
        mask &= visible
        if flt.types:
            mask &= np.isin(self._type[:n], self._vocab["type"].lookup(flt.types))
        if flt.languages:
            mask &= np.isin(self._language[:n], self._vocab["language"].lookup(flt.languages))
        if flt.year_min is not None or flt.year_max is not None:
            mask &= self._year_mask(n, flt.year_min, flt.year_max)
        if flt.min_rating is not None:
            with np.errstate(invalid="ignore"):
                mask &= self._rating[:n] >= flt.min_rating
        if flt.blocked_owners:
            blocked = self._vocab["owner"].lookup(flt.blocked_owners)
            if blocked:
                mask &= ~np.isin(self._owner[:n], blocked)
        if flt.max_maturity is not None:
            # Unknown ratings pass only an unrestricted limit: a child profile sees rated items.
            level = self._maturity[:n]
            mask &= (level != UNKNOWN) & (level <= flt.max_maturity)
        if flt.genres:
            mask &= self._any_of("_genres", "genre", flt.genres)
        if flt.platforms:
            mask &= self._any_of("_platforms", "platform", flt.platforms)
        return mask

    def popularity(self) -> npt.NDArray[np.float32]:
        return self._popularity[: self._n]

    def label_mask(self, field: str, values: tuple[str, ...]) -> BoolArray:
        """Positions carrying any of `values` in `field` (genre, platform or language)."""
        if field == "genre":
            return self._any_of("_genres", "genre", values)
        if field == "platform":
            return self._any_of("_platforms", "platform", values)
        if field == "language":
            codes = self._vocab["language"].lookup(values)
            return np.isin(self._language[: self._n], codes)
        raise ValueError(f"unknown label field {field!r}")

    def labels(self, field: str) -> list[str]:
        """Every value seen so far in `field` (type, genre, platform or language): the
        options a filter form can offer. Values of removed items may linger; count them
        against a mask before showing them."""
        return list(self._vocab[field].codes)

    def _any_of(self, column: str, vocab: str, values: tuple[str, ...]) -> BoolArray:
        codes = self._vocab[vocab].lookup(values)
        if not codes:
            return np.zeros(self._n, dtype=np.bool_)
        matrix: BoolArray = getattr(self, column)
        hits: BoolArray = np.any(matrix[: self._n, codes], axis=1)
        return hits

    # -- what the ranker reads about candidates -----------------------------

    def years_at(self, positions: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        """(n, 1 + most release years) years of each position, UNKNOWN-padded."""
        first = self._year[positions].reshape(-1, 1)
        return np.hstack([first, self._release_years[positions]]).astype(np.int32)

    def genre_share_at(
        self, positions: npt.NDArray[np.int64], genres: tuple[str, ...]
    ) -> npt.NDArray[np.float32]:
        """Share of each position's genres that are among `genres` (0 when it has none)."""
        matrix: BoolArray = self._genres[positions]
        total = matrix.sum(axis=1).astype(np.float32)
        codes = self._vocab["genre"].lookup(genres)
        hits = matrix[:, codes].sum(axis=1).astype(np.float32) if codes else np.zeros_like(total)
        share: npt.NDArray[np.float32] = np.divide(
            hits, total, out=np.zeros_like(total), where=total > 0
        )
        return share
