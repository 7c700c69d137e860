"""The GraphQL API for tools, with typed error results (not built yet)."""
