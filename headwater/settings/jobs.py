"""The job settings (``HEADWATER_JOBS_*``): workers, fencing, job files, isolation, cluster selection and limits.

A part of :class:`headwater.settings.Settings`, which inherits them; kept apart so each module stays readable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from headwater.plugins import load_callable

__all__ = ["JobSettings"]


class JobSettings(BaseSettings):
    """The ``HEADWATER_JOBS_*`` settings (docs/concepts/jobs.md, docs/security/jobs.md)."""

    jobs_worker_enabled: bool | None = Field(
        default=None,
        description="Run a job worker inside the server. Default: only for the embedded SQLite database.",
    )
    jobs_worker_slots: int = Field(default=4, ge=1, le=256, description="Jobs one worker runs at a time.")
    jobs_poll_interval: float = Field(default=0.5, gt=0, le=60, description="Seconds between a worker's loops.")
    jobs_heartbeat_interval: float = Field(
        default=5.0, gt=0, le=600, description="Seconds between a worker's heartbeats on its running jobs."
    )
    jobs_heartbeat_timeout: float = Field(
        default=60.0, gt=0, le=86_400, description='Seconds without a heartbeat before a job is FAILED "worker lost".'
    )
    jobs_kill_grace: float = Field(
        default=5.0, ge=0, le=600, description="Seconds between SIGTERM and SIGKILL when a job is killed."
    )
    # Job fencing (issue 14, finding 7; docs/security/fencing.md): no job runs twice after a database outage.
    jobs_fence_margin: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Seconds before HEADWATER_JOBS_HEARTBEAT_TIMEOUT at which a worker that could not heartbeat "
        "kills its own jobs, so they are gone before any other worker or the server may reap them.",
    )
    jobs_reaper_interval: float = Field(
        default=10.0,
        ge=0,
        le=3600,
        description="Seconds between the server's passes reaping jobs whose worker stopped heartbeating "
        "(so lost jobs end even when no worker is alive); 0 turns the server's reaper off.",
    )
    jobs_shared_work_dirs: bool = Field(
        default=False,
        description="Job directories of every worker host are visible at the same paths here (a shared file "
        "system), so a reaper can read the exit status of a lost worker's job on another host.",
    )
    jobs_listen: bool = Field(
        default=True,
        description="PostgreSQL: idle workers LISTEN for queued jobs (and the API for job files) instead of polling "
        "(turn off behind a transaction-pooling proxy, where LISTEN does not work).",
    )
    jobs_retention_days: float = Field(
        default=7.0, ge=0, le=3650, description="Days a finished job's directory is kept; 0 keeps them forever."
    )
    jobs_retention_interval: float = Field(
        default=300.0, gt=0, le=86_400, description="Seconds between a worker's passes removing expired job dirs."
    )
    jobs_archive_dir: Path | None = Field(
        default=None,
        description="Where logs of jobs that asked for archiving go as <id>.tar.gz. Default: <data_dir>/jobs-archive.",
    )
    jobs_host: str | None = Field(
        default=None, max_length=255, description="The host name workers record jobs under. Default: the machine's."
    )
    jobs_remote_files_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds the API waits for another host's worker to send job files."
    )
    jobs_db_archive_max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=0, description="Most bytes of one finished job's files kept in the database."
    )
    jobs_attachments_max_count: int = Field(
        default=20, ge=0, le=1000, description="Most files one job submission may attach."
    )
    jobs_attachments_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=0,
        description="Most bytes of attachments per job (the body must also fit HEADWATER_MAX_BODY_BYTES).",
    )
    jobs_file_timeout: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds a download of an application file named by URL may stall before the job fails.",
    )
    jobs_file_max_bytes: int = Field(
        default=2 * 1024**3, ge=1, description="Largest application file a worker downloads (bytes)."
    )
    # Job isolation: what a job's processes see of the worker's host (docs/security/jobs.md)
    jobs_run_as: str | None = Field(
        default=None,
        description="The unprivileged OS user a worker running as root starts jobs as: a name, a uid, or a range "
        "of uids lo-hi giving each running job a uid of its own. Unset: jobs run as the worker's user.",
    )
    jobs_pass_env: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra variables of the worker's environment passed to jobs, comma-separated names (PATH, "
        "the locale, TZ, JAVA_HOME and the engines' homes always are). HEADWATER_ variables never are.",
    )
    jobs_cluster_selector: str = Field(
        default="least-loaded",
        description="Chooses among several clusters matching a job's winning criterion: `least-loaded` (fewest "
        "queued and running jobs per slot, then most free memory; ties at random), `random`, or `module:function`, "
        "a Python callable given the candidates with their load and the job request, returning one (or None: "
        "least-loaded chooses). See docs/concepts/jobs.md.",
    )
    # Per-user limits on jobs (docs/security/jobs.md)
    jobs_user_active_limit: int = Field(
        default=20,
        ge=0,
        le=1_000_000,
        description="Jobs one user may have queued or running at once; one more is refused with 429 until one "
        "ends. 0: no limit. Local mode has none.",
    )
    jobs_user_limits: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Overrides of HEADWATER_JOBS_USER_ACTIVE_LIMIT, comma-separated `user:NAME=N`, "
        "`service:NAME=N` or `group:NAME=N` (0: no limit). A principal's own entry wins, else the highest of "
        "its groups'.",
    )

    @field_validator("jobs_pass_env")
    @classmethod
    def _check_pass_env(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"HEADWATER_JOBS_PASS_ENV: {name!r} is not a variable name")
            if name.upper().startswith("HEADWATER_"):
                raise ValueError(f"HEADWATER_JOBS_PASS_ENV: {name!r} is a server setting; jobs never get those")
        return value

    @field_validator("jobs_user_limits")
    @classmethod
    def _check_user_limits(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not re.fullmatch(r"(user|service|group):[^=]+=[0-9]{1,7}", entry):
                raise ValueError(
                    f"HEADWATER_JOBS_USER_LIMITS: {entry!r} is not user:NAME=N, service:NAME=N or group:NAME=N"
                )
        return value

    @field_validator("jobs_cluster_selector")
    @classmethod
    def _check_cluster_selector(cls, value: str) -> str:
        # Imported now, so a typo stops the server at start instead of turning every job INVALID.
        value = value.strip()
        try:
            if value not in {"least-loaded", "random"}:
                if ":" not in value:
                    raise ValueError(f"{value!r} is not one of ['least-loaded', 'random'] nor module:function")
                load_callable(value)
        except ValueError as exc:
            raise ValueError(f"HEADWATER_JOBS_CLUSTER_SELECTOR: {exc}") from None
        return value

    @field_validator("jobs_run_as")
    @classmethod
    def _check_run_as(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _check_job_fencing(self) -> JobSettings:
        # A worker must be able to kill its jobs (grace included) before they can be reaped, and only notices a
        # failed heartbeat up to one interval late: the timeout has to leave room for all of it.
        needed = self.jobs_kill_grace + self.jobs_fence_margin + self.jobs_heartbeat_interval
        if self.jobs_heartbeat_timeout <= needed:
            raise ValueError(
                f"HEADWATER_JOBS_HEARTBEAT_TIMEOUT ({self.jobs_heartbeat_timeout:g} s) must be greater than "
                f"HEADWATER_JOBS_KILL_GRACE + HEADWATER_JOBS_FENCE_MARGIN + HEADWATER_JOBS_HEARTBEAT_INTERVAL "
                f"({self.jobs_kill_grace:g} + {self.jobs_fence_margin:g} + {self.jobs_heartbeat_interval:g} = "
                f"{needed:g} s), or a worker cut off from the database could not stop its jobs before they are "
                "reaped and run again; raise the timeout or lower the others"
            )
        return self
