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
_YEAR_SUFFIX = re.compile(r"^(?P<title>.+?)[\s,]*[(\[]?(?P<year>(18[7-9]|19\d|20\d)\d)[)\]]?\s*$")


def fold(text: str) -> str:
    """Lower case without accents: 'Amélie' -> 'amelie'."""
    if text.isascii():
        return text.casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalise_title(title: str) -> str:
    """Key under which a title is indexed and looked up.

    Lower case, accents and punctuation removed, '&' read as 'and', a leading
    or trailing article dropped ('Matrix, The' and 'The Matrix' -> 'matrix').
    A title made only of an article or punctuation keeps its folded words.
    """
    folded = fold(title).strip()
    folded = _TRAILING_ARTICLE.sub("", folded)
    folded = folded.replace("&", " and ")
    words = [w for w in _NON_WORD.split(folded) if w and w != "_"]
    if len(words) > 1 and words[0] in _ARTICLES:
        words = words[1:]
    return " ".join(words)


@dataclass(frozen=True)
class TitleQuery:
    """A query read as a title: the whole query's key, and the key and year when it
    ends in a year ('Titanic (1997)'). Both are tried: 'Blade Runner 2049' is a title."""

    key: str
    stripped_key: str | None = None
    year: int | None = None


def read_title_query(query: str) -> TitleQuery:
    """'Titanic (1997)' -> key 'titanic 1997', stripped 'titanic', year 1997."""
    key = normalise_title(query)
    match = _YEAR_SUFFIX.match(query.strip())
    if match:
        stripped = normalise_title(match.group("title"))
        if stripped:
            return TitleQuery(key, stripped, int(match.group("year")))
    return TitleQuery(key)
