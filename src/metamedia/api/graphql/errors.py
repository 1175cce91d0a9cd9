"""GraphQL errors that say what was wrong, as REST's error bodies do.

Every error leaves with `extensions: {"code", "status"}`: our own errors keep
their message and name (`NotFoundError`, 404); document errors (syntax, unknown
field, depth, cost) are `InvalidQuery`-like 400s; anything unexpected is masked
as `InternalError` (its traceback goes to the log, not to the caller).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry import Schema
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.types import ExecutionContext

from metamedia.errors import MetaMediaError

INVALID_QUERY = "InvalidQuery"
QUERY_TOO_DEEP = "QueryTooDeep"
INTERNAL = "InternalError"
INTERNAL_MESSAGE = "internal error: the server log has the details"


def product_error(error: GraphQLError) -> MetaMediaError | None:
    """The product error behind a resolver failure, however deeply wrapped."""
    cause: BaseException | None = error.original_error
    while cause is not None:
        if isinstance(cause, MetaMediaError):
            return cause
        cause = getattr(cause, "original_error", None) or cause.__cause__
    return None


def _classified(error: GraphQLError) -> GraphQLError:
    if error.extensions and "code" in error.extensions:
        return error
    found = product_error(error)
    extensions: dict[str, Any]
    if found is not None:
        extensions = {"code": type(found).__name__, "status": found.status_code}
        if found.field:
            extensions["field"] = found.field
        error.message = found.message
    elif error.original_error is None:
        # A document error: syntax, validation, a Strawberry limit.
        code = QUERY_TOO_DEEP if "maximum operation depth" in error.message else INVALID_QUERY
        extensions = {"code": code, "status": 400}
    else:
        extensions = {"code": INTERNAL, "status": 500}
        error.message = INTERNAL_MESSAGE
    error.extensions = extensions
    return error


class ErrorCodes(SchemaExtension):
    """Stamps code and status on every error once the operation has finished."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        metrics = _metrics(self.execution_context)
        for error in errors:
            _classified(error)
            if metrics is not None:
                metrics.errors.labels(type=error.extensions["code"]).inc()


def _metrics(execution_context: ExecutionContext) -> Any:
    request = getattr(execution_context.context, "request", None)
    app = getattr(request, "app", None)
    return getattr(getattr(app, "state", None), "metrics", None)


class ProductSchema(Schema):
    """Logs only unexpected errors: a NotFound or a bad query is the caller's, not ours."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        unexpected = [
            e for e in errors if e.original_error is not None and product_error(e) is None
        ]
        if unexpected:
            super().process_errors(unexpected, execution_context)
