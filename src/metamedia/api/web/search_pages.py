"""The search page (`/`) and the item page (`/media/{id}`).

The search page is rendered in one server round trip: the URL's parameters
(the same names as `GET /v1/search`) become a `SearchRequest` through the same
parser the REST API uses, so `/?q=...&genre=...` is a shareable link that shows
exactly what the API returns for those parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from metamedia.api.web.common import (
    TENANT,
    WebError,
    active_user,
    catalog_pages_gate,
    render,
    runtime_of,
)
from metamedia.domain import MEDIA_TYPES, Explanation, SearchRequest, search_request_from_params
from metamedia.engine.payload import AttributeFilter
from metamedia.errors import MetaMediaError, NotFoundError
from metamedia.observability.metrics import observe
from metamedia.services.validation import describe_validation_error

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 12
MAX_PAGE = 200
MAX_OPTIONS = 24  # options listed per facet; chosen ones are always listed too
SIMILAR_LIMIT = 8
RATING_CHOICES = (2.0, 3.0, 3.5, 4.0, 4.5)
EXAMPLES = (
    "heist movie with a twist ending",
    "haunted house in black and white",
    "space station survival",
    "feel-good romance in Paris",
    "nature documentary about the ocean",
)
LIST_PARAMS = {"type": "types", "genre": "genres", "platform": "platforms", "language": "languages"}
CLEARED: dict[str, Any] = {
    **{param: [] for param in LIST_PARAMS},
    "year_min": "",
    "year_max": "",
    "min_rating": "",
    "page": "1",
}
FACET_FIELD = {"type": "type", "genre": "genre", "platform": "platform", "language": "language"}


@dataclass(frozen=True)
class FacetOption:
    value: str
    count: int
    chosen: bool


@dataclass(frozen=True)
class Facet:
    param: str  # the URL parameter (type, genre, platform, language)
    legend: str
    options: list[FacetOption]


def _text(params: Any, name: str) -> str:
    value = params.get(name)
    return value.strip() if isinstance(value, str) else ""


def _number(raw: str, name: str, kind: type[int] | type[float]) -> int | float | None:
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        raise WebError(
            422, "Check the filters", f"{name} must be a number, not {raw[:40]!r}"
        ) from None


def parse_form(request: Request) -> dict[str, Any]:
    """The search form as typed: empty fields mean 'any', unknown parameters are ignored
    (links from elsewhere carry tracking tags)."""
    params = request.query_params
    form: dict[str, Any] = {
        "q": _text(params, "q") or _text(params, "query"),
        "mode": _text(params, "mode") or "hybrid",
        "year_min": _text(params, "year_min"),
        "year_max": _text(params, "year_max"),
        "min_rating": _text(params, "min_rating"),
        "page": _text(params, "page") or "1",
    }
    for param in LIST_PARAMS:
        form[param] = [v.strip().lower() for v in params.getlist(param) if v.strip()]
    return form


def build_request(form: dict[str, Any], viewer: str | None) -> SearchRequest:
    page = _number(form["page"], "page", int)
    if page is None or not 1 <= page <= MAX_PAGE:
        raise WebError(422, "Check the page number", f"page must be 1-{MAX_PAGE}")
    year_min = _number(form["year_min"], "year from", int)
    year_max = _number(form["year_max"], "year to", int)
    if year_min is not None and year_max is not None and year_min > year_max:
        raise WebError(
            422,
            "The year range is backwards",
            f"'From' {year_min} is after 'to' {year_max}: swap the two years, or clear one.",
        )
    try:
        return search_request_from_params(
            form["q"],
            mode=form["mode"],
            limit=PAGE_SIZE,
            offset=(int(page) - 1) * PAGE_SIZE,
            types=form["type"],
            genres=form["genre"],
            platforms=form["platform"],
            languages=form["language"],
            year_min=None if year_min is None else int(year_min),
            year_max=None if year_max is None else int(year_max),
            min_rating=_number(form["min_rating"], "minimum rating", float),
            tenant=TENANT,
            user=viewer,
        )
    except ValidationError as exc:
        raise WebError(422, "Check the filters", describe_validation_error(exc)) from exc


def _base_filter(form: dict[str, Any], viewer: str | None) -> AttributeFilter:
    """The form's filters in the one filter model, read as a search request reads them;
    a form that does not validate counts facets without its filters."""
    try:
        request = build_request(form, viewer)
    except WebError:
        return AttributeFilter(tenant=TENANT, viewer=viewer)
    return AttributeFilter.from_search(TENANT, viewer, request.filters)


def facets(request: Request, form: dict[str, Any], viewer: str | None) -> list[Facet]:
    """Options per filter with how many catalog items each would leave, given the
    other filters (a field's own choice is left out, so choosing stays an 'or')."""
    indexes = runtime_of(request).indexes
    base = _base_filter(form, viewer)
    legends = {"type": "Type", "genre": "Genre", "platform": "Platform", "language": "Language"}
    out = []
    for param, plural in LIST_PARAMS.items():
        others: dict[str, Any] = {plural: ()}
        counts = indexes.facet_counts(replace(base, **others), FACET_FIELD[param])
        chosen = set(form[param])
        if param == "type":
            names = [t for t in MEDIA_TYPES if t in counts or t in chosen]
        else:
            ranked = sorted(counts, key=lambda v: (-counts[v], v))[:MAX_OPTIONS]
            names = sorted(set(ranked) | chosen)
        options = [FacetOption(v, counts.get(v, 0), v in chosen) for v in names]
        out.append(Facet(param, legends[param], options))
    return out


def why_lines(explanation: Explanation) -> list[str]:
    """The explanation in words a browsing person can follow."""
    e = explanation
    lines = []
    if e.keyword_rank is not None:
        score = f" (BM25 {e.keyword_score:.2f})" if e.keyword_score is not None else ""
        lines.append(f"Keyword match: ranked #{e.keyword_rank} on your words{score}.")
    else:
        lines.append("No keyword match: found by meaning alone.")
    if e.vector_rank is not None:
        sim = f", similarity {e.vector_similarity:.2f}" if e.vector_similarity is not None else ""
        lines.append(f"Meaning match: ranked #{e.vector_rank} by semantic similarity{sim}.")
    elif e.vector_similarity is not None:
        lines.append(f"Semantic similarity {e.vector_similarity:.2f}.")
    method = {"rrf": "reciprocal-rank fusion", "weighted": "weighted score fusion"}.get(
        e.method, e.method
    )
    lines.append(f"Combined score {e.fused_score:.4f} ({method}).")
    return lines


def page_url(form: dict[str, Any], **changes: Any) -> str:
    """The search URL for this form with some values changed (paging, removing a filter)."""
    values = {**form, **changes}
    pairs: list[tuple[str, str]] = [("q", values["q"])]
    if values["mode"] != "hybrid":
        pairs.append(("mode", values["mode"]))
    for param in LIST_PARAMS:
        pairs += [(param, v) for v in values[param]]
    for name in ("year_min", "year_max", "min_rating"):
        if values[name]:
            pairs.append((name, str(values[name])))
    if str(values["page"]) != "1":
        pairs.append(("page", str(values["page"])))
    return "/?" + urlencode(pairs)


def active_filters(form: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, URL without it) for each chosen filter: the empty state offers to drop them."""
    chips = []
    for param in LIST_PARAMS:
        for value in form[param]:
            rest = [v for v in form[param] if v != value]
            chips.append((f"{param}: {value}", page_url(form, **{param: rest, "page": "1"})))
    labels = {"year_min": "from", "year_max": "to", "min_rating": "rating ≥"}
    for name, label in labels.items():
        if form[name]:
            chips.append((f"{label} {form[name]}", page_url(form, **{name: "", "page": "1"})))
    return chips


def poster_url(url: str | None) -> str | None:
    """Only web images: a catalog could hold a `javascript:` or `data:` URL."""
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


@router.get("/", response_class=HTMLResponse, dependencies=[Depends(catalog_pages_gate)])
def search_page(request: Request) -> HTMLResponse:
    """Search box, mode switch, filters with counts, result cards, paging."""
    viewer = active_user(request)
    form = parse_form(request)
    context: dict[str, Any] = {
        "form": form,
        "results": [],
        "response": None,
        "error": None,
        "examples": EXAMPLES,
        "rating_choices": RATING_CHOICES,
        "page_size": PAGE_SIZE,
        "prev_url": None,
        "next_url": None,
        "chips": active_filters(form),
        "clear_url": page_url(form, **CLEARED),
        "semantic_url": page_url(form, mode="semantic", page="1"),
        "why": why_lines,
        "poster": poster_url,
    }
    status = 200
    try:
        context["facets"] = facets(request, form, viewer)
    except MetaMediaError:
        context["facets"] = []
    if form["q"]:
        try:
            search_request = build_request(form, viewer)
            response = runtime_of(request).discovery.search(search_request)
            metrics = getattr(request.app.state, "metrics", None)
            observe(metrics, "search", response.took_ms / 1000)
            context["response"] = response
            context["results"] = response.results
            page = int(form["page"])
            if page > 1:
                context["prev_url"] = page_url(form, page=page - 1)
            if response.next_offset is not None:
                context["next_url"] = page_url(form, page=page + 1)
        except WebError as exc:
            context["error"] = {"title": exc.title, "message": exc.message}
            status = exc.status
        except MetaMediaError as exc:
            context["error"] = {"title": _title_for(exc), "message": exc.message}
            status = exc.status_code
    return render(request, "search.html", context, status=status)


def _title_for(exc: MetaMediaError) -> str:
    if exc.status_code == 422:
        return "Check the filters"
    if exc.status_code >= 500:
        return "Search is unavailable right now"
    return "Search failed"


def item_cards(request: Request, ids: list[str], viewer: str | None) -> dict[str, Any]:
    """Full items for a list of ids (feed, similar): cards show more than ids and titles."""
    catalog = runtime_of(request).catalog
    found = {}
    for media_id in ids:
        try:
            found[media_id] = catalog.get(media_id, TENANT, viewer)
        except NotFoundError:
            continue
    return found


@router.get(
    "/media/{media_id:path}",
    response_class=HTMLResponse,
    dependencies=[Depends(catalog_pages_gate)],
)
def item_page(request: Request, media_id: str) -> HTMLResponse:
    """One item's details and "more like this" (leaning to the active user's taste)."""
    runtime = runtime_of(request)
    viewer = active_user(request)
    try:
        item = runtime.catalog.get(media_id, TENANT, viewer)
    except NotFoundError:
        raise WebError(
            404,
            "Not in the catalog",
            f"There is no item with the id {media_id[:80]!r}. It may have been removed; "
            "search for it by title instead.",
        ) from None
    similar_note = None
    try:
        similar = runtime.recommend.similar(TENANT, item.id, user=viewer, limit=SIMILAR_LIMIT)
    except MetaMediaError as exc:
        similar, similar_note = [], exc.message
    cards = item_cards(request, [s.id for s in similar], viewer)
    status = None
    if viewer is not None:
        status = _last_action(request, viewer, item.id)
    return render(
        request,
        "item.html",
        {
            "item": item,
            "similar": [(s, cards[s.id]) for s in similar if s.id in cards],
            "similar_note": similar_note,
            "poster": poster_url,
            "safe_url": poster_url,
            "status": status,
        },
    )


def _last_action(request: Request, user: str, media_id: str) -> str | None:
    """The user's latest like / dislike / watched / skip of this item, for the buttons."""
    history = runtime_of(request).users.history(TENANT, user, limit=200, offset=0)
    for event in history:
        if event.item == media_id and event.type in ("like", "dislike", "complete", "skip"):
            return event.type
    return None
