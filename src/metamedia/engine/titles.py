"""Title normalisation: the form in which a typed title and a catalog title meet.

People type "the matrix", "Matrix, The", "thelma and louise" for "Thelma &
Louise", "se7en", "Amélie" as "amelie", and often add the year: "Titanic
(1997)" or "titanic 1997". Both sides go through the same function, so an
exact-title lookup is one dictionary probe.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_ARTICLES = ("the", "a", "an")
_TRAILING_ARTICLE = re.compile(r",\s*(the|a|an)\s*$")
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)
_APOSTROPHES = re.compile("['\u2019`]")  # "Ocean's" and "Oceans" are one word
_YEAR_SUFFIX = re.compile(r"^(?P<title>.+?)[\s,]*[(\[]?(?P<year>(18[7-9]|19\d|20\d)\d)[)\]]?\s*$")


def fold(text: str) -> str:
    """Lower case without accents: 'Amélie' -> 'amelie'."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def strict_title_key(title: str) -> str:
    """Key of a title as written: case, accents and punctuation folded, '&' read as
    'and', a trailing article moved to the front ('Matrix, The' -> 'the matrix')."""
    folded = fold(title).strip()
    trailing = _TRAILING_ARTICLE.search(folded)
    if trailing:
        folded = f"{trailing.group(1)} {folded[: trailing.start()]}"
    folded = _APOSTROPHES.sub("", folded.replace("&", " and "))
    return " ".join(w for w in _NON_WORD.split(folded) if w and w != "_")


def normalise_title(title: str) -> str:
    """Key that also ignores a leading article ('The Matrix', 'Matrix' -> 'matrix').

    A title made only of an article keeps it.
    """
    words = strict_title_key(title).split()
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


def title_keys(title: str) -> tuple[str, str]:
    """(strict, loose) keys under which a title is indexed: an exact title is preferred
    to one that differs only by its article ('Oscar' before 'The Oscar')."""
    return strict_title_key(title), normalise_title(title)


@dataclass(frozen=True)
class TitleQuery:
    """A query read as a title: the whole query, and the part before a trailing year
    with that year ('Titanic (1997)'). Both are tried: 'Blade Runner 2049' is a title."""

    text: str
    stripped_text: str | None = None
    year: int | None = None

    @property
    def key(self) -> str:
        return normalise_title(self.text)

    @property
    def stripped_key(self) -> str | None:
        return normalise_title(self.stripped_text) if self.stripped_text else None


def read_title_query(query: str) -> TitleQuery:
    """'Titanic (1997)' -> whole 'Titanic (1997)', stripped 'Titanic', year 1997."""
    match = _YEAR_SUFFIX.match(query.strip())
    if match and normalise_title(match.group("title")):
        return TitleQuery(query, match.group("title"), int(match.group("year")))
    return TitleQuery(query)
