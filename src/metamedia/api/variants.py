"""Who may see which experiment variant ranked a response.

A client that can read its own variant can game the experiment: a bot keeps the
sessions in the variant it likes and pumps that variant's like rate. So the
`experiments` field of search and feed responses is filled only for callers
holding a key (back ends, dashboards); end-user tokens and anonymous callers get
`{}`. Exposures and outcomes are still recorded for them: the experiment runs,
it just isn't announced to the people in it.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from metamedia.services.access import Caller


class _Ranked(Protocol):
    experiments: dict[str, str]

    def model_copy(self, *, update: dict[str, object] | None = None) -> _Ranked: ...


R = TypeVar("R", bound=_Ranked)


def may_see_variants(caller: Caller) -> bool:
    return caller.kind == "key"


def shown_to(caller: Caller, response: R) -> R:
    """`response` as this caller may see it: without variant names unless it holds a key."""
    if not response.experiments or may_see_variants(caller):
        return response
    hidden: R = response.model_copy(update={"experiments": {}})  # type: ignore[assignment]
    return hidden
