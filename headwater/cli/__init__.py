"""The ``headwater`` command: serve the API, migrate the database, load the demo, and every command group of
this package (datasets, sources, secrets, search, lineage, jobs and the job worker).

The groups share ``headwater.cli.common`` and never import this module. Every command opens its own transaction
(the CLI is an edge, like a route) and reports domain errors as one red line and exit status 1, never a traceback.
"""

from __future__ import annotations

import errno
import socket
import threading
from typing import Annotated, Any

import typer

from headwater import migrations
from headwater.cli.common import console, fail, friendly_errors, load_settings, open_session
from headwater.cli.datasets import datasets_app
from headwater.cli.identity import audit_app, roles_app, service_accounts_app, tokens_app
from headwater.cli.jobs import jobs_app, worker
from headwater.cli.lineage import lineage_app
from headwater.cli.retention import retention_app
from headwater.cli.search import search_app
from headwater.cli.secrets import secrets_app
from headwater.cli.sources import sources_app
from headwater.database import prepare_database
from headwater.db import create_db_engine

__all__ = ["app"]

app = typer.Typer(help="Headwater: catalog, lineage, jobs and search for data platforms.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(datasets_app, name="datasets")


# ------------------------------------------------------------------------------------------ serve


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` for the server; a busy, forbidden or unknown address is one line naming
    the flag and setting that choose another (uvicorn would print ``[Errno 98]`` and nothing more)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except socket.gaierror:
        raise fail(f"{host} is not an address of this machine: choose another with --host or HEADWATER_HOST") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            problem = f"port {port} on {host} is in use"
        elif exc.errno == errno.EACCES:
            problem = f"no permission to listen on port {port} on {host} (ports below 1024 need root)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            raise fail(
                f"{host} is not an address of this machine: choose another with --host or HEADWATER_HOST"
            ) from None
        else:
            problem = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
        raise fail(f"{problem}: choose another with --port or HEADWATER_PORT") from None


@app.command()
@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (HEADWATER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port to bind (HEADWATER_PORT).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Processes answering requests (HEADWATER_WORKERS); with more than one, the background services "
            "run in one process of their own.",
        ),
    ] = None,
    services: Annotated[
        bool | None,
        typer.Option(
            "--services/--no-services",
            help="Run the background services (HEADWATER_SERVE_SERVICES); --no-services: API only, with "
            "`headwater services` running elsewhere.",
        ),
    ] = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs), in one process or several (--workers)."""
    import uvicorn

    from headwater.app import create_app
    from headwater.auth.authenticate import StartRefused, auth_mode

    settings = load_settings()
    bind_host, bind_port = host or settings.host, port or settings.port
    # The address actually bound decides local mode, not the setting an option overrode.
    settings = settings.model_copy(
        update={
            "host": bind_host,
            "port": bind_port,
            "workers": workers or settings.workers,
            "serve_services": settings.serve_services if services is None else services,
        }
    )
    try:
        auth_mode(settings)
    except StartRefused as exc:
        raise fail(exc.message) from None
    listener = _listen(bind_host, bind_port)
    with console.status("Checking the database…"):
        prepare_database(settings)
    several = settings.workers > 1
    from headwater.jobs.isolation import RunAsError

    if several:
        from headwater.cli import supervisor

        try:
            settings = supervisor.prepare_for_workers(settings)
        except RunAsError as exc:
            raise fail(str(exc)) from None
    processes = f"{settings.workers} worker processes" if several else "one process"
    if not settings.serve_services:
        processes += ", background services not run (`headwater services` runs them)"
    elif several:
        processes += " and one for the background services"
    console.print(
        f"Headwater on [bold]http://{bind_host}:{bind_port}[/] "
        f"(database: {settings.resolved_database_url.split('://')[0]}; {processes}; search UI: /ui, "
        "GraphQL: /graphql, REST docs: /docs)"
    )
    config: dict[str, Any] = {
        "host": bind_host,
        "port": bind_port,
        "log_level": settings.log_level,
        "access_log": settings.log_level == "debug",
        "proxy_headers": False,  # the app believes X-Forwarded-For from HEADWATER_TRUSTED_PROXIES only
    }
    if several:
        with listener:
            supervisor.serve_workers(config, listener, settings, services=settings.serve_services)
        return
    try:
        application = create_app(settings, prepare=False)
    except RunAsError as exc:
        raise fail(str(exc)) from None
    with listener:
        uvicorn.Server(uvicorn.Config(application, **config)).run(sockets=[listener])


@app.command()
@friendly_errors
def services() -> None:
    """Run the background services alone: sync scheduler, search indexer, job reaper, retention and (where
    enabled) the job worker, until SIGINT/SIGTERM; beside API-only servers (`serve --no-services`)."""
    from headwater.jobs.isolation import RunAsError
    from headwater.services import enabled_services, run_services, stop_on_signals

    settings = load_settings()
    names = enabled_services(settings)
    if not names:
        raise fail(
            "every background service is turned off (HEADWATER_SYNC_SCHEDULER_ENABLED, "
            "HEADWATER_SEARCH_INDEXER_ENABLED, HEADWATER_JOBS_WORKER_ENABLED, HEADWATER_JOBS_REAPER_INTERVAL, "
            "HEADWATER_RETENTION_ENABLED): nothing to run"
        )
    with console.status("Checking the database…"):
        prepare_database(settings)
    stop = threading.Event()
    stop_on_signals(stop)
    console.print(f"Background services: {', '.join(names)} (stop with Ctrl-C or SIGTERM)")
    try:
        run_services(settings, stop)
    except RunAsError as exc:
        raise fail(str(exc)) from None


# --------------------------------------------------------------------------------------------- db


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the database to the newest schema (or to REVISION)."""
    settings = load_settings()
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
    settings = load_settings()
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

    settings = load_settings()
    warehouse = settings.data_dir / DEMO_WAREHOUSE  # readable by the egress policy, whatever its settings
    with console.status("Loading the demo platform…") as status, open_session(settings) as session:
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


app.add_typer(sources_app, name="sources")
app.add_typer(secrets_app, name="secrets")
app.add_typer(search_app, name="search")
app.add_typer(retention_app, name="retention")
app.add_typer(lineage_app, name="lineage")
app.add_typer(jobs_app, name="jobs")
app.command("worker")(worker)

for _group, _name in (
    (tokens_app, "tokens"),
    (service_accounts_app, "service-accounts"),
    (roles_app, "roles"),
    (audit_app, "audit"),
):
    app.add_typer(_group, name=_name)
