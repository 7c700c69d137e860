"""The reference pages under ``docs/reference/``, generated from the code so they cannot drift from it.

Each page is a function returning its text: the settings from :class:`~headwater.settings.Settings`, the CLI
from the Typer command tree of ``headwater.cli:app``, the GraphQL SDL from ``headwater.graphql.schema:schema``
and the OpenAPI document from ``headwater.app:create_app``. ``scripts/gen-reference.py`` writes them all;
``tests/test_settings_reference.py`` fails when a committed page is out of date. This package imports the
application's top (the CLI and the app factory), so nothing in ``headwater`` may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from headwater.reference.cli import cli_reference
from headwater.reference.graphql import graphql_reference
from headwater.reference.openapi import openapi_json, openapi_reference
from headwater.reference.settings import settings_reference

__all__ = ["PAGES", "stale_pages", "write_pages"]

# Path under docs/reference/ -> the function that writes it.
PAGES: dict[str, Callable[[], str]] = {
    "settings.md": settings_reference,
    "cli.md": cli_reference,
    "graphql.md": graphql_reference,
    "openapi.md": openapi_reference,
    "openapi.json": openapi_json,
}


def write_pages(directory: Path) -> list[Path]:
    """Write every reference page into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, page in PAGES.items():
        path = directory / name
        path.write_text(page())
        written.append(path)
    return written


def stale_pages(directory: Path) -> list[str]:
    """The names of the pages in ``directory`` that are missing or differ from what the code generates."""
    return [
        name
        for name, page in PAGES.items()
        if not (directory / name).is_file() or (directory / name).read_text() != page()
    ]
