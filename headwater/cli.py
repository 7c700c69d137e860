"""The ``headwater`` command: serve the API, migrate the database, load the demo, browse datasets.

Every command opens its own transaction (the CLI is an edge, like a route) and reports domain errors as
one red line and exit status 1, never a traceback.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from headwater import migrations
from headwater.catalog import service
from headwater.catalog.models import DatasetKind
from headwater.catalog.schemas import DatasetOut, DatasetSummary
from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.errors import HeadwaterError
from headwater.settings import Settings, get_settings

__all__ = ["app"]

app = typer.Typer(help="Headwater: catalog, lineage, jobs and search for data platforms.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
datasets_app = typer.Typer(help="Browse the catalog's datasets.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(datasets_app, name="datasets")

# soft_wrap: messages are not broken at the terminal width, so they stay greppable when piped
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=1)


def friendly_errors(func: F) -> F:
    """Turn Headwater's own errors into a one-line message and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HeadwaterError as exc:
            raise _fail(exc.message) from None
        except ValueError as exc:  # settings that do not validate
            raise _fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "debug":  # Alembic narrates every step at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    from headwater.app import prepare_database

    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ serve


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` for the server; a busy, forbidden or unknown address is one line naming
    the flag and setting that choose another (uvicorn would print ``[Errno 98]`` and nothing more)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except socket.gaierror:
        raise _fail(f"{host} is not an address of this machine: choose another with --host or HEADWATER_HOST") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            problem = f"port {port} on {host} is in use"
        elif exc.errno == errno.EACCES:
            problem = f"no permission to listen on port {port} on {host} (ports below 1024 need root)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            raise _fail(
                f"{host} is not an address of this machine: choose another with --host or HEADWATER_HOST"
            ) from None
        else:
            problem = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
        raise _fail(f"{problem}: choose another with --port or HEADWATER_PORT") from None


@app.command()
@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (HEADWATER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to bind (HEADWATER_PORT).")] = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from headwater.app import create_app, prepare_database

    settings = _settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    listener = _listen(bind_host, bind_port)
    with console.status("Checking the database…"):
        prepare_database(settings)
    console.print(
        f"Headwater on [bold]http://{bind_host}:{bind_port}[/] "
        f"(database: {settings.resolved_database_url.split('://')[0]}; search UI: /ui, GraphQL: /graphql, "
        "REST docs: /docs)"
    )
    from headwater.jobs.isolation import RunAsError

    try:
        application = create_app(settings, prepare=False)
    except RunAsError as exc:
        raise _fail(str(exc)) from None
    config = uvicorn.Config(
        application,
        host=bind_host,
        port=bind_port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        proxy_headers=False,  # the app believes X-Forwarded-For from HEADWATER_TRUSTED_PROXIES only
    )
    with listener:
        uvicorn.Server(config).run(sockets=[listener])


# --------------------------------------------------------------------------------------------- db


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the database to the newest schema (or to REVISION)."""
    settings = _settings()
    if settings.is_embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    from headwater.secrets import SecretVault

    with console.status(f"Migrating to {revision}…"):
        migrations.upgrade(settings.resolved_database_url, revision, secrets_vault=SecretVault.from_settings(settings))
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    try:
        console.print(f"Database at migration [bold]{migrations.current_revision(engine)}[/].")
    finally:
        engine.dispose()


@db_app.command("current")
@friendly_errors
def db_current() -> None:
    """Show the database's migration revision and whether it is the newest."""
    settings = _settings()
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    try:
        current = migrations.current_revision(engine)
    finally:
        engine.dispose()
    head = migrations.head_revision()
    state = "up to date" if current == head else f"behind: run `headwater db upgrade` to reach {head}"
    console.print(f"{current or 'none (never migrated)'} ({state})")
    if current != head:
        raise typer.Exit(code=1)


# ------------------------------------------------------------------------------------------- demo


@app.command()
@friendly_errors
def demo(
    jobs: Annotated[
        bool, typer.Option("--jobs/--no-jobs", help="Register local Spark/Flink clusters and run the demo's Spark job.")
    ] = True,
) -> None:
    """Load the demo streaming platform (idempotent: running it again adds nothing)."""
    from headwater.demo import load_demo
    from headwater.egress import DEMO_WAREHOUSE

    settings = _settings()
    warehouse = settings.data_dir / DEMO_WAREHOUSE  # readable by the egress policy, whatever its settings
    with console.status("Loading the demo platform…") as status, _session(settings) as session:
        report = load_demo(session, progress=lambda message: status.update(message), warehouse_dir=warehouse)
    console.print(
        f"Demo platform: {report.sources_created} source(s) and {report.datasets_created} dataset(s) created, "
        f"{report.datasets_existing} already there, {report.schema_changes} schema change(s) recorded."
    )
    if report.iceberg_live:
        console.print(
            f"Iceberg lake: live warehouse in {warehouse} ({report.tables_built} table(s) built); sync "
            f"{report.sync_status}: {report.synced_added} added, {report.synced_changed} changed, "
            f"{report.synced_unchanged} unchanged."
        )
    else:
        console.print(f"Iceberg lake: registered by hand ({report.iceberg_note}).")
    console.print("Kafka topics and Hive tables: registered by hand (the demo runs no broker or metastore).")
    if jobs:
        from headwater.demo.jobs import run_demo_jobs_cli

        run_demo_jobs_cli(settings, warehouse_root=warehouse if report.iceberg_live else None, say=console.print)


# --------------------------------------------------------------------------------------- datasets


@datasets_app.command("list")
@friendly_errors
def datasets_list(
    source: Annotated[str | None, typer.Option(help="Source name.")] = None,
    namespace: Annotated[str | None, typer.Option(help="OpenLineage namespace.")] = None,
    kind: Annotated[DatasetKind | None, typer.Option(help="Dataset kind.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only datasets with this tag.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only datasets with this owner.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Name prefix.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many to show.")] = 50,
    cursor: Annotated[str | None, typer.Option(help="Continue from a previous page's cursor.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List datasets, filtered, one page at a time."""
    filters = service.DatasetFilters(
        source=source, namespace=namespace, kind=kind, tag=tag, owner=owner, name_prefix=prefix
    )
    with _session(_settings()) as session:
        page = service.list_datasets(session, filters=filters, cursor=cursor, limit=limit)
        items = [DatasetSummary.summary_of(d) for d in page.items]
    if as_json:
        print(
            json.dumps(
                {
                    "items": [i.model_dump(mode="json") for i in items],
                    "next_cursor": page.next_cursor,
                    "total": page.total,
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"{page.total} dataset(s)")
    for column in ("id", "namespace", "name", "kind", "fields", "tags", "owners"):
        table.add_column(column)
    for item in items:
        table.add_row(
            str(item.id),
            item.namespace,
            item.name,
            item.kind.value,
            str(item.field_count),
            ", ".join(item.tags),
            ", ".join(o.name for o in item.owners),
        )
    console.print(table)
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@datasets_app.command("show")
@friendly_errors
def datasets_show(
    dataset_id: Annotated[int | None, typer.Argument(help="Dataset id.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace (with --name, instead of an id).")] = None,
    name: Annotated[str | None, typer.Option(help="Name (with --namespace).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one dataset, its fields and its metadata."""
    if dataset_id is None and not (namespace and name):
        raise _fail("give a dataset id, or --namespace and --name")
    with _session(_settings()) as session:
        if dataset_id is not None:
            dataset = service.get_dataset(session, dataset_id=dataset_id)
        else:
            assert namespace and name
            dataset = service.get_dataset_by_name(session, namespace=namespace, name=name)
        out = DatasetOut.of(dataset)
    if as_json:
        print(out.model_dump_json(indent=2))
        return
    console.print(f"[bold]{out.name}[/]  ({out.kind.value}, id {out.id})")
    console.print(f"namespace: {out.namespace}   source: {out.source} ({out.source_kind.value})")
    for label, value in (
        ("format", out.format),
        ("location", out.location),
        ("description", out.description or out.source_description),
        ("tags", ", ".join(out.tags)),
        ("owners", ", ".join(f"{o.name} ({o.role})" for o in out.owners)),
        ("schema version", out.schema_version),
    ):
        if value:
            console.print(f"{label}: {value}")
    table = Table(title=f"{len(out.fields)} field(s)")
    for column in ("path", "type", "nullable", "tags", "description"):
        table.add_column(column)
    for f in out.fields:
        table.add_row(
            f.path,
            f.type,
            "yes" if f.nullable else "no",
            ", ".join(f.tags),
            f.description or f.source_description or "",
        )
    console.print(table)


def _add_domain_commands() -> None:
    """Sub-apps defined in domain packages; imported last because they use the helpers above."""
    from headwater.catalog.sync_cli import sources_app
    from headwater.jobs.cli import jobs_app, worker
    from headwater.lineage.cli import lineage_app
    from headwater.search.cli import search_app
    from headwater.secrets_cli import secrets_app

    app.add_typer(sources_app, name="sources")
    app.add_typer(secrets_app, name="secrets")
    app.add_typer(search_app, name="search")
    app.add_typer(lineage_app, name="lineage")
    app.add_typer(jobs_app, name="jobs")
    app.command("worker")(worker)


if __name__ == "__main__":  # pragma: no cover
    # Run the importable module's app: domain sub-apps import `headwater.cli` for its helpers, and a second
    # copy of this file running as __main__ would import them half-initialised.
    from headwater.cli import app as _importable_app

    _importable_app()
else:
    _add_domain_commands()
