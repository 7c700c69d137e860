"""``headwater retention run``: one retention pass over the raw event log, runs and the change outbox."""

from __future__ import annotations

import json

import typer

from headwater.cli.common import JsonOption, console, friendly_errors, load_settings
from headwater.database import prepare_database
from headwater.db import create_db_engine, make_sessionmaker
from headwater.retention import RetentionPolicy, run_retention

__all__ = ["retention_app"]

retention_app = typer.Typer(
    help="Storage retention: trim the raw event log, runs and the outbox.", no_args_is_help=True
)


@retention_app.command("run")
@friendly_errors
def run(as_json: JsonOption = False) -> None:
    """Run one retention pass now, as the server's retention loop does (docs/operate/storage.md)."""
    settings = load_settings()
    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    try:
        report = run_retention(make_sessionmaker(engine), RetentionPolicy.from_settings(settings))
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.__dict__))
        return
    console.print(
        f"Removed {report.events} raw event(s), {report.runs} run(s) and {report.changes} change event(s); "
        f"the outbox is trimmed through id {report.outbox_through}."
    )
    if report.behind:
        console.print(f"Behind the trim, will resync: {', '.join(report.behind)}")
