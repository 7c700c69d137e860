"""The GraphQL schema: queries over the catalog, search, lineage and jobs, and the mutations tools need.

Each domain's types and resolvers live in its module (:mod:`~headwater.graphql.catalog`,
:mod:`~headwater.graphql.search`, :mod:`~headwater.graphql.lineage`, :mod:`~headwater.graphql.jobs`); this module
assembles them. Each resolver hands off to the domain function the REST route calls (Dagster's rule: one line of
glue), so both APIs answer the same. Each root field runs in a savepoint of the request's transaction (a query's
only root field, in the transaction itself) and answers a domain error as a typed result
(:mod:`headwater.graphql.errors`): a mutation that fails leaves nothing behind, and the fields before and after it
still answer.
"""

from __future__ import annotations

from graphql import GraphQLError
from strawberry import Schema
from strawberry.extensions import AddValidationRules, ParserCache, ValidationCache
from strawberry.extensions.max_aliases import create_validator
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from headwater.graphql.catalog import CatalogMutation, CatalogQuery
from headwater.graphql.errors import Error
from headwater.graphql.jobs import JobsMutation, JobsQuery
from headwater.graphql.limits import CostLimit, DeadlineExecutionContext
from headwater.graphql.lineage import LineageMutation, LineageQuery
from headwater.graphql.search import SearchQueryFields

__all__ = ["MAX_ALIASES", "schema"]

# The root types list their domains' fields in this order (the order the SDL has always had).
Query = merge_types("Query", (CatalogQuery, SearchQueryFields, LineageQuery, JobsQuery))
Mutation = merge_types("Mutation", (CatalogMutation, LineageMutation, JobsMutation))


class _Schema(Schema):
    """Strawberry's schema, without its logging of every error: a client's syntax error is not the server's, and
    :mod:`headwater.graphql.routes` logs the unexpected ones itself."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log nothing here."""


# No type refers back to itself, so a query's depth is bounded by the schema; introspection, which is cyclic, is
# bounded by graphql-core.
# Tools send the same few documents again and again: each is parsed and validated once (a cache per process).
# Aliases let one request ask for the same expensive field many times (an impact walk each): at most MAX_ALIASES.
# What a query may return is estimated and refused over HEADWATER_GRAPHQL_MAX_COST before it runs; a request past
# its time budget is stopped as it completes objects (headwater.graphql.limits).
MAX_ALIASES = 30
# One rule class for the process: the validation cache is keyed by the rules too, and MaxAliasesLimiter made as a
# factory creates a new class per request, which made every request miss it (validated every time).
_ALIASES_RULE = create_validator(MAX_ALIASES)
schema = _Schema(
    query=Query,
    mutation=Mutation,
    types=[Error],
    extensions=[
        lambda: AddValidationRules([_ALIASES_RULE]),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        CostLimit,
    ],
    execution_context_class=DeadlineExecutionContext,
)
