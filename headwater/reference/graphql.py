"""The GraphQL reference (``docs/reference/graphql.md``): the schema's SDL, as ``schema.as_str()`` prints it."""

from __future__ import annotations

from headwater.graphql.schema import schema

__all__ = ["graphql_reference", "graphql_sdl"]

HEADER = """# GraphQL schema

<!-- Generated from headwater/graphql by scripts/gen-reference.py: do not edit by hand. -->

The whole schema of `POST /graphql`, in SDL (for code generators and IDEs: `headwater.graphql.schema:schema`'s
`as_str()`, or an introspection query against a server). How to call it: [GraphQL API](../clients/graphql.md).

"""


def graphql_sdl() -> str:
    """The schema in GraphQL SDL, as ``schema.as_str()`` prints it."""
    return schema.as_str().rstrip() + "\n"


def graphql_reference() -> str:
    """The Markdown page showing the SDL."""
    return HEADER + "```graphql\n" + graphql_sdl() + "```\n"
