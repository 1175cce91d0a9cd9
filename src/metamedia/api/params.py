"""Path parameters with bounds, shared by the routes: an id that no store could hold
is a 422 naming the parameter, never a 404 after a query, or a 500 from SQLite."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_ID_CHARS = 256  # users, items: as the domain models and the database columns
MAX_SESSION_CHARS = 128  # as `InteractionContext.session`
MAX_THEME_ID = 1_000_000

UserIdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
MediaIdPath = Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)]
SessionIdPath = Annotated[str, Path(min_length=1, max_length=MAX_SESSION_CHARS)]
ThemeIdPath = Annotated[int, Path(ge=0, le=MAX_THEME_ID)]
