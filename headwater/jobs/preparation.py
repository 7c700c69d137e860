"""Preparing claimed jobs: each resolved to its engine's argv and environment, its applications and attachments,
and moved to INIT in the claiming transaction; the processes start once it commits (:mod:`processes`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.errors import HeadwaterError
from headwater.jobs import applications, service, workspace
from headwater.jobs.applications import AppSetup
from headwater.jobs.engines import EngineError, JobContext, engine_for
from headwater.jobs.models import Cluster, Command, Job, JobStatus
from headwater.jobs.processes import PreparedJob, safe_dir_name

__all__ = ["prepare_claimed"]


def prepare_claimed(jobs: list[Job], *, session: Session, jobs_dir: Path, host: str) -> list[PreparedJob]:
    """Move jobs claimed in ``session`` to INIT on ``host`` (same transaction); what to launch once it commits.

    A job that cannot be prepared (its cluster or command gone, an application or engine problem) is FAILED.
    """
    attachments = workspace.attachments_of_jobs(session, job_pks=[job.pk for job in jobs])
    # Held here so each job's session.get finds them in the identity map (it only keeps weak references).
    clusters = list(session.scalars(select(Cluster).where(Cluster.id.in_({j.cluster_id for j in jobs}))))
    commands = list(session.scalars(select(Command).where(Command.id.in_({j.command_id for j in jobs}))))
    setups: dict[int, list[AppSetup] | str] = {}
    prepared: list[PreparedJob] = []
    for job in jobs:
        item = _prepare(session, job, setups, attachments.get(job.pk, []), jobs_dir=jobs_dir, host=host)
        if isinstance(item, str):
            service.transition(job, JobStatus.FAILED, f"could not prepare the job: {item}", session=session)
        else:
            prepared.append(item)
    del clusters, commands
    return prepared


def _prepare(
    session: Session,
    job: Job,
    setups: dict[int, list[AppSetup] | str],
    attachments: list[tuple[str, bytes]],
    *,
    jobs_dir: Path,
    host: str,
) -> PreparedJob | str:
    """Everything needed to launch ``job``, or why it cannot be; nothing is written before it is known."""
    cluster = session.get(Cluster, job.cluster_id) if job.cluster_id else None
    command = session.get(Command, job.command_id) if job.command_id else None
    if cluster is None or command is None:
        return "its cluster or command was deleted before it started"
    chosen: list[str] | None = job.request.get("applications")
    if chosen is not None:  # the job named its own applications (Genie's override)
        try:
            setup: list[AppSetup] | str = applications.setup_of_names(session, names=chosen)
        except HeadwaterError as exc:
            setup = exc.message
    else:
        if command.id not in setups:  # one read per command of the batch
            try:
                setups[command.id] = applications.setup_of_command(session, command_id=command.id)
            except HeadwaterError as exc:
                setups[command.id] = exc.message
        setup = setups[command.id]
    if isinstance(setup, str):
        return setup
    work_dir = jobs_dir / safe_dir_name(job.id)
    context = JobContext(
        job_id=job.id,
        job_name=job.name,
        run_uuid=job.run_uuid,
        args=list(job.request.get("command_args", [])),
        command=list(command.executable),
        cluster_config=dict(cluster.config or {}),
        user=job.user_name,
    )
    try:
        launch = engine_for(cluster.type).launch(context)
    except (EngineError, OSError) as exc:
        return str(exc)
    job.work_dir = str(work_dir)
    job.host = host
    service.transition(job, JobStatus.INIT, f"preparing {work_dir}", session=session)
    return PreparedJob(
        pk=job.pk,
        job_id=job.id,
        attempt=job.attempt,
        argv=launch.argv,
        env={
            **launch.env,
            "HEADWATER_JOB_ID": job.id,
            "HEADWATER_JOB_DIR": str(work_dir),
            "HEADWATER_JOB_ATTEMPT": str(job.attempt),
            "HEADWATER_JOB_USER": job.user_name,
            # What it was counted for on its cluster (Genie's GENIE_JOB_MEMORY), so it can size its heap to it.
            **({"HEADWATER_JOB_MEMORY_MB": str(job.memory_mb)} if job.memory_mb is not None else {}),
        },
        work_dir=work_dir,
        timeout=job.timeout_seconds,
        job_env={str(k): str(v) for k, v in (job.request.get("environment") or {}).items()},
        attachments=attachments,
        applications=setup,
        cancel=launch.cancel,
    )
