"""``headwater sources``: register federated sources, list them, sync them (with progress), remove them."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from headwater.catalog import sources, sync
from headwater.catalog.models import SourceKind
from headwater.catalog.schemas import SourceCreate, SourceOut
from headwater.catalog.sync_models import SyncMode, SyncRun, SyncStatus, SyncTrigger
from headwater.catalog.sync_schemas import SyncRunOut
from headwater.cli.common import JsonOption, console, fail, friendly_errors, load_settings, open_session
from headwater.db import create_db_engine, make_sessionmaker
from headwater.egress import EgressPolicy
from headwater.secrets import SecretVault

__all__ = ["sources_app"]

sources_app: typer.Typer = typer.Typer(help="Federated sources: add, list, sync, remove.", no_args_is_help=True)


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    """``key=value`` options as a dict; values that parse as JSON (numbers, lists) are kept typed."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"{option} {item!r} is not key=value")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@sources_app.command("add")
@friendly_errors
def sources_add(
    name: Annotated[str, typer.Argument(help="Unique source name.")],
    kind: Annotated[SourceKind, typer.Option(help="What the source is.")],
    namespace: Annotated[str, typer.Option(help="OpenLineage namespace, e.g. iceberg://lake.")],
    config: Annotated[list[str] | None, typer.Option("--config", "-c", help="Connector setting key=value.")] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            "-s",
            help="Secret key=value; value may be env:VAR or file:/path where HEADWATER_SECRETS_ALLOWED_ENV / _DIRS "
            "allow it.",
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the source holds.")] = None,
) -> None:
    """Register a source; its config is checked against its connector's settings."""
    settings = load_settings()
    secrets = {key: str(value) for key, value in _pairs(secret or [], "--secret").items()}
    data = SourceCreate(
        name=name,
        kind=kind,
        namespace=namespace,
        description=description,
        config=_pairs(config or [], "--config"),
        secrets=secrets,
    )
    with open_session(settings) as session:
        vault = SecretVault.from_settings(settings)
        egress = EgressPolicy.from_settings(settings)
        created = SourceOut.model_validate(sources.create_source(session, data=data, vault=vault, egress=egress))
    console.print(
        f"Source [bold]{created.name}[/] ({created.kind.value}) added; sync it: headwater sources sync {name}"
    )


@sources_app.command("list")
@friendly_errors
def sources_list(
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
) -> None:
    """List sources with their health and last sync."""
    with open_session(load_settings()) as session:
        page = sources.list_sources(session, cursor=None, limit=limit)
        items = [SourceOut.model_validate(s) for s in page.items]
    if as_json:
        print(json.dumps([item.model_dump(mode="json") for item in items], indent=2))
        return
    table = Table(title=f"{page.total} source(s)")
    for column in ("name", "kind", "namespace", "status", "last sync", "message"):
        table.add_column(column)
    for item in items:
        table.add_row(
            item.name,
            item.kind.value,
            item.namespace,
            item.status.value,
            item.last_sync_at.isoformat(timespec="seconds") if item.last_sync_at else "",
            item.status_message or "",
        )
    console.print(table)


def _describe(run: SyncRun) -> str:
    return (
        f"listed {run.listed}: {run.added} added, {run.changed} changed, {run.unchanged} unchanged, "
        f"{run.restored} restored, {run.deleted} deleted, {run.failed} failed"
    )


@sources_app.command("sync")
@friendly_errors
def sources_sync(
    name: Annotated[str, typer.Argument(help="Source name.")],
    full: Annotated[bool, typer.Option("--full", help="Reload every dataset, not only changed ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Sync a source now, showing progress; exit status 1 when the sync failed."""
    settings = load_settings()
    with open_session(settings):
        pass  # checks the database is migrated
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    try:
        factory = make_sessionmaker(engine)
        mode = SyncMode.FULL if full else SyncMode.INCREMENTAL
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task(f"Syncing {name}…")
            run = sync.run_sync(
                factory,
                source_name=name,
                mode=mode,
                trigger=SyncTrigger.CLI,
                lease_seconds=settings.sync_lease_seconds,
                vault=SecretVault.from_settings(settings),
                egress=EgressPolicy.from_settings(settings),
                progress=lambda current: progress.update(task, description=f"Syncing {name}: {_describe(current)}"),
            )
    finally:
        engine.dispose()
    report = SyncRunOut.of(run, name)
    if as_json:
        print(report.model_dump_json(indent=2))
    else:
        colour = {"succeeded": "green", "partial": "yellow"}.get(report.status.value, "red")
        console.print(
            f"Sync {report.id} of [bold]{name}[/] [{colour}]{report.status.value}[/] "
            f"in {report.duration_seconds or 0:.1f}s — {_describe(run)}"
        )
        if report.message:
            console.print(report.message)
        for problem in report.errors[:10]:
            console.print(f"  • {problem.dataset or 'listing'}: {problem.error}")
    if report.status == SyncStatus.FAILED:
        raise typer.Exit(code=1)


@sources_app.command("remove")
@friendly_errors
def sources_remove(
    name: Annotated[str, typer.Argument(help="Source name.")],
    purge: Annotated[
        bool, typer.Option("--purge", help="Soft-delete the source's datasets first (change events are kept).")
    ] = False,
) -> None:
    """Remove a source (with --purge, also when it still has datasets)."""
    with open_session(load_settings()) as session:
        purged = 0
        if purge:
            purged = sync.purge_source_datasets(session, source_name=name, reason=f"source {name!r} removed")
        sources.delete_source(session, name=name)
    console.print(f"Source [bold]{name}[/] removed" + (f" with its {purged} dataset(s)." if purge else "."))
