"""``headwater worker`` (a job worker process that claims and runs jobs from the database queue) and
``headwater jobs submit|list|show|kill|logs``.

Like every CLI command these work on the database directly, each in its own transaction; ``logs`` reads the
job's directory where this host can, and otherwise asks the job's worker through the database (or reads the
database archive), as the API does.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from headwater.cli.common import (
    CursorOption,
    JsonOption,
    JsonTableOption,
    LimitOption,
    console,
    fail,
    friendly_errors,
    load_settings,
    open_session,
    print_page,
)
from headwater.database import prepare_database
from headwater.db import create_db_engine, make_sessionmaker
from headwater.errors import InvalidInput
from headwater.jobs.models import FINAL_STATUSES, JobStatus

__all__ = ["jobs_app", "worker"]

jobs_app = typer.Typer(help="Submit, list, inspect, kill and tail jobs.", no_args_is_help=True)


@friendly_errors
def worker(
    slots: Annotated[
        int | None, typer.Option(min=1, max=256, help="Jobs run at a time (HEADWATER_JOBS_WORKER_SLOTS).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run until the queue is empty, then exit.")] = False,
) -> None:
    """Claim and run jobs until stopped (SIGINT/SIGTERM kill the jobs it runs, which end KILLED)."""
    from headwater.jobs.worker import JobWorker

    settings = load_settings()
    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    from headwater.jobs.isolation import RunAsError

    try:
        job_worker = JobWorker.from_settings(make_sessionmaker(engine), settings, slots=slots)
    except RunAsError as exc:
        engine.dispose()
        raise fail(str(exc)) from None
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(
        f"Job worker [bold]{job_worker.worker_id}[/] with {job_worker.slots} slot(s); jobs in {job_worker.jobs_dir}"
    )
    try:
        if once:
            job_worker.drain(timeout=7 * 24 * 3600, interval=settings.jobs_poll_interval)
            return
        job_worker.serve(stop)
    finally:
        job_worker.shutdown()
        engine.dispose()


def _tags(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def _environment(pairs: list[str]) -> dict[str, str]:
    environment: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--env {pair!r} must look like NAME=value")
        environment[key] = value
    return environment


def _read_attachments(files: list[Path], max_count: int, max_bytes: int) -> list[tuple[str, bytes]]:
    if len(files) > max_count:
        raise InvalidInput(f"{len(files)} attachments; at most {max_count} (HEADWATER_JOBS_ATTACHMENTS_MAX_COUNT)")
    attachments = [(path.name, path.read_bytes()) for path in files]
    total = sum(len(content) for _, content in attachments)
    if total > max_bytes:
        raise InvalidInput(f"attachments are {total} bytes; at most {max_bytes} (HEADWATER_JOBS_ATTACHMENTS_MAX_BYTES)")
    return attachments


@jobs_app.command("submit")
@friendly_errors
def jobs_submit(
    name: Annotated[str, typer.Option(help="Job name.")],
    command_tags: Annotated[str, typer.Option("--command-tags", help="Comma-separated tags the command must have.")],
    cluster_tags: Annotated[
        list[str], typer.Option("--cluster-tags", help="Comma-separated tag set; repeat for fallbacks, in order.")
    ],
    args: Annotated[
        list[str] | None, typer.Argument(help="Command arguments (after --), never run by a shell.")
    ] = None,
    user: Annotated[str | None, typer.Option(help="Submitting user (default: $USER).")] = None,
    job_id: Annotated[str | None, typer.Option("--id", help="Your own job id (refused when taken).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag of the job; repeatable.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="NAME=value for the job's environment; repeatable.")] = None,
    attach: Annotated[
        list[Path] | None,
        typer.Option(exists=True, dir_okay=False, readable=True, help="File placed in the job directory; repeatable."),
    ] = None,
    timeout: Annotated[int | None, typer.Option(help="Seconds before the job is killed.")] = None,
    memory_mb: Annotated[
        int | None, typer.Option("--memory-mb", help="Memory (MB) it needs; default: its command's or cluster's.")
    ] = None,
    max_attempts: Annotated[int, typer.Option(help="Runs allowed when its worker is lost.")] = 1,
    archive_logs: Annotated[
        bool, typer.Option("--archive-logs", help="Archive logs when retention removes it.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end; exit 1 unless it SUCCEEDED.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Submit a job chosen by tags: `headwater jobs submit --name n --command-tags type:sh --cluster-tags
    sched:adhoc -- -c 'echo hi'`. Exit status 1, with the reason, when the job is INVALID (no cluster and command
    match), or with --wait when it ends anything but SUCCEEDED."""
    import os

    from headwater.jobs import access, service
    from headwater.jobs.schemas import JobSubmit

    settings = load_settings()
    try:
        request = JobSubmit(
            id=job_id,
            name=name,
            user=user or os.environ.get("USER") or "unknown",
            tags=tag or [],
            command_args=args or [],
            cluster_criteria=[_tags(value) for value in cluster_tags],
            command_criteria=_tags(command_tags),
            environment=_environment(env or []),
            timeout=timeout,
            memory_mb=memory_mb,
            max_attempts=max_attempts,
            archive_logs=archive_logs,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "request"
        raise fail(f"{where}: {first['msg']}") from None
    attachments = _read_attachments(
        attach or [], settings.jobs_attachments_max_count, settings.jobs_attachments_max_bytes
    )
    with open_session(settings) as session:
        # The CLI holds the database's credentials, so it is the server's operator: it runs as whom it names.
        submitter = access.trusted_submitter(request.user or "unknown")
        job = service.submit_job(
            session,
            data=request,
            submitter=submitter,
            attachments=attachments,
            selector=settings.jobs_cluster_selector,
        )
        out = service.job_out(session, [job])[0]
    job_now = _wait_for(out.id) if wait else out.model_dump(mode="json")
    _print_job(job_now, as_json)
    status, reason = job_now["status"], job_now["status_message"]
    if status == JobStatus.INVALID.value:  # no cluster and command match: it never runs
        raise fail(f"job {out.id} is INVALID: {reason}")
    if wait and status != JobStatus.SUCCEEDED.value:
        raise fail(f"job {out.id} ended {status}: {reason}")


def _wait_for(job_id: str, poll: float = 0.25) -> dict[str, object]:
    from headwater.jobs import service

    settings = load_settings()
    while True:
        with open_session(settings) as session:
            out = service.job_out(session, [service.get_job(session, job_id=job_id)])[0]
        if out.status in FINAL_STATUSES:
            return out.model_dump(mode="json")
        time.sleep(poll)


def _print_job(job: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(job, indent=2))
        return
    console.print(f"[bold]{job['id']}[/]  {job['status']}  {job['status_message'] or ''}")
    for key in ("name", "user", "cluster", "command", "exit_code", "attempt", "created_at", "finished_at"):
        if job.get(key) is not None:
            console.print(f"{key}: {job[key]}")


@jobs_app.command("list")
@friendly_errors
def jobs_list(
    user: Annotated[str | None, typer.Option(help="Only this user's jobs.")] = None,
    status: Annotated[JobStatus | None, typer.Option(help="Only jobs in this status.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only jobs with this tag.")] = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    as_json: JsonTableOption = False,
) -> None:
    """List jobs, newest first."""
    from headwater.jobs import service

    filters = service.JobFilters(user=user, status=status, tag=tag)
    with open_session(load_settings()) as session:
        page = service.list_jobs(session, filters=filters, sort="-created", cursor=cursor, limit=limit)
        items = [item.model_dump(mode="json") for item in service.job_out(session, page.items)]
    print_page(page, items, as_json, "job(s)", "id, name, user, status, cluster, command, exit, created", _job_row)


def _job_row(item: dict[str, Any]) -> tuple[str, ...]:
    exit_code = "" if item["exit_code"] is None else str(item["exit_code"])
    cluster, command = str(item["cluster"] or ""), str(item["command"] or "")
    return (
        str(item["id"]),
        str(item["name"]),
        str(item["user"]),
        str(item["status"]),
        cluster,
        command,
        exit_code,
        str(item["created_at"]),
    )


@jobs_app.command("show")
@friendly_errors
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    as_json: JsonOption = False,
) -> None:
    """Show a job, where it ran and its history."""
    from headwater.jobs import service

    with open_session(load_settings()) as session:
        job = service.get_job(session, job_id=job_id)
        out = service.job_out(session, [job])[0].model_dump(mode="json")
        out["execution"] = {"host": job.host, "pid": job.pid, "worker_id": job.worker_id, "work_dir": job.work_dir}
        out["transitions"] = [
            {"to": t.to_status, "reason": t.reason, "at": t.at.isoformat()}
            for t in service.transitions_of(session, job=job)
        ]
    if as_json:
        print(json.dumps(out, indent=2))
        return
    _print_job(out, as_json=False)
    console.print(f"execution: {out['execution']}")
    for transition in out["transitions"]:
        console.print(f"  {transition['at']}  {transition['to']:<10} {transition['reason'] or ''}")


@jobs_app.command("kill")
@friendly_errors
def jobs_kill(job_id: Annotated[str, typer.Argument(help="Job id.")]) -> None:
    """Kill a job (its worker signals the whole process group)."""
    from headwater.jobs import service

    with open_session(load_settings()) as session:
        job = service.request_kill(session, job_id=job_id)
        status, message = job.status, job.status_message
    if status in {s.value for s in FINAL_STATUSES}:
        console.print(f"Job {job_id} is {status}: {message}")
    else:
        console.print(f"Kill of job {job_id} requested; its worker ends it (status now {status}).")


@jobs_app.command("logs")
@friendly_errors
def jobs_logs(
    job_id: Annotated[str, typer.Argument(help="Job id.")],
    stream: Annotated[str, typer.Option(help="stdout or stderr.")] = "stdout",
    offset: Annotated[int, typer.Option(min=0, help="Byte offset to start from.")] = 0,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """Print a job's stdout or stderr; with --follow, its live tail until it ends. From any host: a job that ran on
    another is read through its worker there, or from the database archive once it ended."""
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

    import anyio

    from headwater.jobs import job_files

    settings = load_settings()
    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url, prepared_statements=settings.db_prepared_statements)
    factory, access = make_sessionmaker(engine), job_files.FileAccess.from_settings(settings)
    out = sys.stdout.buffer
    # An event loop of its own, in a thread of its own: the command may be called where one already runs.
    loop = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headwater-logs")
    try:
        while True:
            read = partial(job_files.read_log, factory, access, job_id=job_id, stream=stream, offset=offset)
            chunk = loop.submit(anyio.run, read).result()
            out.write(chunk.data)
            out.flush()
            offset = chunk.next_offset
            if chunk.data:
                continue
            if not follow or chunk.finished:
                return
            time.sleep(0.25)
    finally:
        loop.shutdown()
        engine.dispose()
