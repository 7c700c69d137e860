"""The GraphQL API for tools (``/graphql``): the catalog, search, lineage and jobs, with typed error results.

Resolvers hand off to the same domain functions as the REST routes; see :mod:`headwater.graphql.schema`.
"""

from headwater.graphql.routes import graphql_router
from headwater.graphql.schema import schema

__all__ = ["graphql_router", "schema"]
