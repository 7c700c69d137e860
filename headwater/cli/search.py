"""``headwater search ...``: rebuild the search index, catch it up, show its status."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine

from headwater.cli.common import JsonOption, console, friendly_errors, load_settings
from headwater.database import prepare_database
from headwater.db import create_db_engine, make_sessionmaker
from headwater.search import SearchBackend, SearchIndexer, make_backend, make_indexer

__all__ = ["search_app"]

search_app = typer.Typer(help="Search index: rebuild, catch up, status.", no_args_is_help=True)


def _indexer() -> tuple[Engine, SearchBackend, SearchIndexer]:
    settings = load_settings()
    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    backend = make_backend(settings, engine)
    return engine, backend, make_indexer(settings, engine, backend)


@search_app.command("reindex")
@friendly_errors
def reindex(
    wait: Annotated[float, typer.Option(help="Seconds to wait for a running indexer to yield its lease.")] = 60.0,
) -> None:
    """Rebuild the index from the catalog and swap it in (zero downtime), then catch up."""
    engine, backend, indexer = _indexer()
    try:
        with Progress(
            TextColumn("[bold]Indexing datasets"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("datasets", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = indexer.rebuild(progress=advance, wait_for_lease=wait)
        replayed = indexer.catch_up()
        indexer.release()
        console.print(
            f"Rebuilt the {backend.name} index: {report.datasets} dataset(s), {report.documents} document(s) "
            f"in {report.seconds:.1f} s; {replayed} change event(s) replayed since it started."
        )
    finally:
        backend.close()
        engine.dispose()


@search_app.command("catch-up")
@friendly_errors
def catch_up() -> None:
    """Index every change event the index has not seen yet."""
    engine, backend, indexer = _indexer()
    try:
        count = indexer.catch_up()
        indexer.release()
        console.print(f"Indexed {count} change event(s).")
    finally:
        backend.close()
        engine.dispose()


@search_app.command("status")
@friendly_errors
def status(as_json: JsonOption = False) -> None:
    """Lag (events behind) and document counts beside catalog counts; exit status 1 when not in sync."""
    engine, backend, indexer = _indexer()
    try:
        with make_sessionmaker(engine)() as session:
            report = indexer.status(session)
    finally:
        backend.close()
        engine.dispose()
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        state = "in sync" if report["in_sync"] else "NOT in sync"
        console.print(
            f"{report['backend']} index {report['index']!r}: {state}; {report['lag']} event(s) behind; "
            f"documents {report['documents']} for catalog {report['catalog']}"
        )
        if report["last_error"]:
            console.print(f"last error: {report['last_error']} at {report['last_error_at']}")
    if not report["in_sync"]:
        raise typer.Exit(code=1)
