"""The GraphQL reference: the schema's SDL (``docs/reference/schema.graphql``) and a page showing it."""

from __future__ import annotations

from headwater.graphql.schema import schema

__all__ = ["graphql_reference", "graphql_sdl"]

HEADER = """# GraphQL schema

<!-- Generated from headwater/graphql by scripts/gen-reference.py: do not edit by hand. -->

The whole schema of `POST /graphql`, in SDL (also as a file: [schema.graphql](schema.graphql), for code
generators and IDEs). How to call it: [GraphQL API](../clients/graphql.md).

"""


def graphql_sdl() -> str:
    """The schema in GraphQL SDL, as ``schema.as_str()`` prints it."""
    return schema.as_str().rstrip() + "\n"


def graphql_reference() -> str:
    """The Markdown page showing the SDL."""
    return HEADER + "```graphql\n" + graphql_sdl() + "```\n"
