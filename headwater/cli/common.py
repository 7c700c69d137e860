"""What every ``headwater`` command shares: the consoles, settings with logging set up, a session on a prepared
database, domain errors as one red line and exit status 1, and the options several commands spell alike.

Command groups import this module, never ``headwater.cli`` (the root app, which imports them).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from headwater.database import prepare_database
from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.errors import HeadwaterError
from headwater.pagination import PageResult
from headwater.settings import Settings, get_settings

__all__ = [
    "CursorOption",
    "JsonOption",
    "JsonTableOption",
    "LimitOption",
    "console",
    "err_console",
    "fail",
    "friendly_errors",
    "load_settings",
    "open_session",
    "print_page",
]

# soft_wrap: messages are not broken at the terminal width, so they stay greppable when piped
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

LimitOption = Annotated[int, typer.Option(min=1, max=500, help="How many to show.")]
CursorOption = Annotated[str | None, typer.Option(help="Continue from a previous page's cursor.")]
JsonTableOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: str) -> typer.Exit:
    """Print ``message`` as one red error line; raise the returned exit (status 1)."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def friendly_errors(func: F) -> F:
    """Turn Headwater's own errors into a one-line message and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HeadwaterError as exc:
            raise fail(exc.message) from None
        except ValueError as exc:  # settings that do not validate
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    """The settings from the environment, with logging configured by them."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "debug":  # Alembic narrates every step at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


@contextmanager
def open_session(settings: Settings) -> Iterator[Session]:
    """One transaction on the prepared database, committed when the block ends (the CLI is an edge, like a route)."""
    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


def print_page(
    page: PageResult[Any],
    items: list[dict[str, Any]],
    as_json: bool,
    title: str,
    columns: str,
    row: Callable[[dict[str, Any]], Sequence[str]],
) -> None:
    """One page of a list: as JSON (items, next_cursor, total), or as a table (``columns`` separated by ", ",
    each item's cells from ``row``) titled with the total, followed by the cursor of the next page."""
    if as_json:
        print(json.dumps({"items": items, "next_cursor": page.next_cursor, "total": page.total}, indent=2))
        return
    table = Table(title=f"{page.total} {title}")
    for column in columns.split(", "):
        table.add_column(column)
    for item in items:
        table.add_row(*row(item))
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")
