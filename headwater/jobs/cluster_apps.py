"""The server's side of jobs on cluster managers (:mod:`headwater.jobs.drivers`): recording the application a job's
supervisor submitted, the job's end reason saying how the application ended, and killing the application of a job
whose worker was lost.

The worker reads the supervisor's record (:data:`~headwater.jobs.drivers.APP_RECORD`) in the job's directory during
its heartbeats, whose transaction holds the job fenced, and once more as the job ends; what changed is written to
the job's ``external_*`` columns. Every request made here goes through the egress policy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm import object_session as _object_session

from headwater.egress import EgressPolicy, default_policy, http_client
from headwater.jobs.drivers import (
    APP_RECORD,
    AppRecord,
    AppState,
    ManagerError,
    describe,
    manager_class,
    manager_for,
    read_app_record,
)
from headwater.jobs.engines import cluster_manager_of
from headwater.jobs.models import Cluster, Job

__all__ = ["AppWatch", "ExternalApp", "app_of", "end_reason", "kill_apps", "note_apps", "records_changed"]

log = logging.getLogger("headwater.jobs.cluster_apps")

# (manager, application id, manager config) of a job's application that may still run.
ExternalApp = tuple[str, str, dict[str, Any]]


def _values(session: Session, pk: int, cluster_id: int | None, record: AppRecord) -> dict[str, Any] | None:
    """The job's ``external_*`` values for ``record``, or None when the record cannot be the job's.

    The job can write its record, so only the application id and the states come from it: the manager and its
    config are the job's cluster's (:func:`~headwater.jobs.engines.cluster_manager_of`); the id must have that
    manager's form, and must not be another job's (a job naming another's driver would have it killed)."""
    cluster = session.get(Cluster, cluster_id) if cluster_id is not None else None
    trusted = cluster_manager_of(cluster.type, dict(cluster.config or {})) if cluster is not None else None
    cls = manager_class(trusted[0]) if trusted is not None else None
    if trusted is None or cls is None or record.manager != trusted[0] or not cls.valid_id(record.app_id):
        log.warning("job %s: its application record names no %s application; ignored", pk, trusted and trusted[0])
        return None
    taken = select(Job.pk).where(Job.external_manager == trusted[0], Job.external_id == record.app_id, Job.pk != pk)
    if session.scalar(taken.limit(1)) is not None:
        log.error("job %s: its record names %s application %s, which another job holds; ignored", pk, *trusted[:1],
                  record.app_id)  # fmt: skip
        return None
    return {
        "external_manager": trusted[0],
        "external_id": record.app_id,
        "external_state": record.state[:16],
        "external_raw_state": (record.raw or None) and record.raw[:64],
        "external_config": trusted[1],
    }


def note_apps(session: Session, runs: Iterable[tuple[int, Path]], seen: dict[int, tuple[str, str, str]]) -> None:
    """Write the application records of these (pk, job directory) that changed since ``seen`` (pk -> (id, state,
    raw), updated here) into their jobs; call it only for jobs the transaction holds fenced."""
    for pk, work_dir in runs:
        record = read_app_record(work_dir)
        if record is None:
            continue
        key = (record.app_id, record.state, record.raw)
        if seen.get(pk) == key:
            continue
        seen[pk] = key
        cluster_id = session.scalar(select(Job.cluster_id).where(Job.pk == pk))
        values = _values(session, pk, cluster_id, record)
        if values is not None:
            session.execute(update(Job).where(Job.pk == pk).values(**values))


def records_changed(runs: Iterable[tuple[int, Path]], stamps: dict[int, int]) -> bool:
    """Whether the record of any of these (pk, job directory) was written since ``stamps`` (pk -> its mtime in ns,
    updated here): one stat per job, so the worker records a new application id (which the reaper needs to kill it)
    and its state changes at once instead of at the next heartbeat."""
    changed = False
    for pk, work_dir in runs:
        try:
            stamp = (work_dir / APP_RECORD).stat().st_mtime_ns
        except OSError:
            continue
        if stamps.get(pk) != stamp:
            stamps[pk] = stamp
            changed = True
    return changed


class AppWatch:
    """What a worker last recorded of its running jobs' applications: written again only when changed."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[str, str, str]] = {}  # pk -> (application id, state, raw state) recorded
        self.stamps: dict[int, int] = {}  # pk -> mtime of its record when last looked at

    def changed(self, runs: Iterable[tuple[int, Path]]) -> bool:
        """Whether any of these jobs' records was written since last looked at (:func:`records_changed`)."""
        return records_changed(runs, self.stamps)

    def note(self, session: Session, runs: Iterable[tuple[int, Path]]) -> None:
        """Record what changed (:func:`note_apps`); only for jobs the transaction holds fenced."""
        note_apps(session, runs, self.seen)

    def forget(self, pk: int) -> None:
        """The job ended: nothing more to watch."""
        self.seen.pop(pk, None)
        self.stamps.pop(pk, None)


def object_session_of(job: Job) -> Session:
    """The session ``job`` belongs to (the worker's end transaction)."""
    session = _object_session(job)
    if session is None:
        raise RuntimeError(f"job {job.id} is not in a session")
    return session


def end_reason(job: Job, work_dir: Path, reason: str, *, killed: bool) -> str:
    """Record the job's application as it ended, and say in the job's end reason how it ended (``reason``, the
    worker's own, when the job submitted none): the driver's true end, not the supervisor's exit code."""
    record = read_app_record(work_dir)
    if record is None:
        return reason
    values = _values(object_session_of(job), job.pk, job.cluster_id, record)
    if values is None:
        return reason
    for name, value in values.items():
        setattr(job, name, value)
    told = describe(record)
    if killed:
        ended = AppState(record.state).final
        return f"{reason}; {told}" if ended else f"{reason}; kill of {record.app_id} sent to {record.manager}"
    return told


def app_of(job: Job) -> ExternalApp | None:
    """The application of ``job`` that may still run (none recorded, or recorded ended: None)."""
    if not job.external_manager or not job.external_id:
        return None
    if job.external_state in {s.value for s in AppState if s.final}:
        return None
    return job.external_manager, job.external_id, dict(job.external_config or {})


def kill_apps(apps: Iterable[tuple[str, ExternalApp]], *, policy: EgressPolicy | None = None) -> list[str]:
    """Kill these (job id, application) through their managers, with a client of the egress policy (default: this
    process's); the application ids a kill was sent for. A failure is logged: the job's end is recorded anyway."""
    killed: list[str] = []
    chosen = policy or default_policy()
    # The reaper calls this inside its transaction: a manager that did not answer is not asked again this pass.
    failed: set[str] = set()
    for job_id, (manager_name, app_id, config) in apps:
        key = json.dumps([manager_name, config], sort_keys=True, default=str)
        if key in failed:
            log.error("job %s: its %s application %s was not killed: the manager did not answer", job_id,
                      manager_name, app_id)  # fmt: skip
            continue
        with http_client(chosen, timeout=min(float(config.get("timeout", 10.0)), 10.0)) as http:
            try:
                manager_for(manager_name, config, http=http).kill(app_id)
            except ManagerError as exc:
                failed.add(key)
                log.error("job %s: could not kill its %s application %s: %s", job_id, manager_name, app_id, exc)
                continue
        log.warning("job %s lost its worker; its %s application %s was killed", job_id, manager_name, app_id)
        killed.append(app_id)
    return killed
