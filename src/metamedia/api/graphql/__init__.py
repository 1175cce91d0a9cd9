"""GraphQL (Strawberry) at `/graphql`, over the same services as the REST API."""

from metamedia.api.graphql.schema import build_schema, graphql_router

__all__ = ["build_schema", "graphql_router"]
