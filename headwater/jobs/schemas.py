"""Pydantic request and response models of the jobs API (shaped after Genie's /api/v3)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
    model_validator,
)

from headwater.inputs import MISSING, JsonObject, Omittable
from headwater.jobs.files import file_name, is_remote
from headwater.jobs.models import ApplicationStatus, ClusterStatus, ClusterType, CommandStatus, JobStatus
from headwater.jobs.selectors import check_criterion, check_own_tags

__all__ = [
    "MAX_ARGS_CHARS",
    "ApplicationCreate",
    "ApplicationOut",
    "ApplicationUpdate",
    "AttemptOut",
    "ClusterCreate",
    "ClusterOut",
    "ClusterUpdate",
    "CommandCreate",
    "CommandOut",
    "CommandUpdate",
    "DatasetRef",
    "ClusterAppOut",
    "JobExecutionOut",
    "JobOut",
    "JobStatusOut",
    "JobSubmit",
    "OutputEntry",
    "REDACTED",
    "TransitionOut",
    "redact_environment",
]

# Genie's cap on the total length of a job's command arguments.
MAX_ARGS_CHARS = 10_000

Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
Group = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
GROUPS_DOC = "Groups (or user names) allowed to run jobs on it; empty: anyone who may submit jobs."
# A criterion: tags a cluster or command must all carry (``headwater.id:``/``headwater.name:`` included).
TagSet = Annotated[list[Tag], Field(min_length=1, max_length=50), AfterValidator(check_criterion)]
# A cluster's or command's own tags: none in the reserved ``headwater.`` prefix.
OwnTags = Annotated[list[Tag], Field(max_length=50), AfterValidator(check_own_tags)]
MAX_MEMORY_DOC = "Memory (MB) its running jobs may hold together; a job that does not fit waits. null: no limit."
DEFAULT_MEMORY_DOC = "Memory (MB) a job is counted for when neither it nor its command names any."
COMMAND_MEMORY_DOC = "Memory (MB) its jobs are counted for when the request names none."
IMPLICIT_TAGS_DOC = "Tags it answers to in criteria without storing them: headwater.id:<id>, headwater.name:<name>."
# Memory in MB (at most 16 TiB).
MemoryMB = Annotated[int, Field(ge=1, le=16 * 1024 * 1024)]


EnvName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Environment = Annotated[dict[EnvName, Annotated[str, StringConstraints(max_length=65_536)]], Field(max_length=200)]


REDACTED = "***"


def redact_environment(environment: dict[str, str]) -> dict[str, str]:
    """The variables' names with every value shown as ``***``: an answer never carries an environment value."""
    return dict.fromkeys(environment, REDACTED)


def _file_ref(value: str) -> str:
    if is_remote(value):
        parts = urlsplit(value)
        if not value.isprintable() or " " in value:
            raise ValueError(f"{value!r} holds spaces or control characters; percent-encode them")
        try:
            httpx.URL(value)
            _ = parts.port
        except Exception as exc:  # httpx and urllib say what is wrong in their own exception types
            raise ValueError(f"{value!r} is not a URL a worker can fetch: {exc}") from None
        if not parts.hostname or "" in parts.hostname.split("."):
            raise ValueError(f"{value!r} names no host")
        if parts.username or parts.password:
            raise ValueError(f"{value!r} holds credentials, which the API would show to anyone; use a URL without them")
        if parts.fragment:
            raise ValueError(f"{value!r} has a fragment (#...), which is never sent to the server")
        name = file_name(value)
        if name in ("", ".", "..") or not name.isprintable():
            raise ValueError(f"{value!r} names no file: its path must end with the file's name")
        if len(name.encode()) > 255:
            raise ValueError(f"{value!r}: its file name is over 255 bytes, more than a file system allows")
        return value
    path = value.removeprefix("file://")
    if not path.startswith("/") or "\x00" in path:
        raise ValueError(f"{value!r} must be an absolute local path, a file:// URI or an http(s):// URL")
    if ".." in path.split("/"):
        raise ValueError(f"{value!r} must not contain '..'")
    return value


FileRef = Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_file_ref)]


def _distinct(value: list[str]) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError("an application is listed twice")
    return value


# Application names in order, each once.
AppNames = Annotated[list[Name], AfterValidator(_distinct)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplicationCreate(_In):
    """A new application: files copied into each job's directory and environment set for its process."""

    name: Name
    version: str | None = Field(default=None, max_length=255)
    type: str | None = Field(default=None, max_length=255, description="What it is, e.g. spark or hadoop.")
    status: ApplicationStatus = ApplicationStatus.ACTIVE
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    dependencies: list[FileRef] = Field(default_factory=list, max_length=100)
    configs: list[FileRef] = Field(default_factory=list, max_length=100)
    environment: Environment = Field(
        default_factory=dict, description="Set for the job's process; \"{app_dir}\" becomes the application's dir."
    )
    description: str | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _distinct_file_names(self) -> ApplicationCreate:
        _check_distinct_names([*self.dependencies, *self.configs])
        return self


def _check_distinct_names(files: list[str]) -> None:
    # Files land side by side in the application's directory, so two with one base name would collide.
    seen: set[str] = set()
    for ref in files:
        base = file_name(ref)
        if not base or base in seen:
            raise ValueError(f"file {ref!r}: its name {base!r} is empty or used by another file of the application")
        seen.add(base)


class ApplicationUpdate(_In):
    """Fields of an application to change (absent fields stay as they are)."""

    version: str | None = Field(default=None, max_length=255)
    type: str | None = Field(default=None, max_length=255)
    status: Omittable[ApplicationStatus] = MISSING
    tags: Omittable[list[Tag]] = Field(default=MISSING, max_length=50)
    dependencies: Omittable[list[FileRef]] = Field(default=MISSING, max_length=100)
    configs: Omittable[list[FileRef]] = Field(default=MISSING, max_length=100)
    environment: Omittable[Environment] = MISSING
    description: str | None = Field(default=None, max_length=10_000)


class ApplicationOut(BaseModel):
    """An application as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    version: str | None
    type: str | None
    status: ApplicationStatus
    tags: list[str]
    dependencies: list[str]
    configs: list[str]
    environment: dict[str, str]
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @field_serializer("environment")
    def _redact(self, environment: dict[str, str]) -> dict[str, str]:
        return redact_environment(environment)


class ClusterCreate(_In):
    """A new cluster."""

    name: Name
    type: ClusterType
    status: ClusterStatus = ClusterStatus.UP
    tags: OwnTags = Field(default_factory=list)
    config: JsonObject = Field(default_factory=dict)
    max_concurrent_jobs: int = Field(default=8, ge=1, le=10_000)
    max_memory_mb: MemoryMB | None = Field(default=None, description=MAX_MEMORY_DOC)
    default_job_memory_mb: MemoryMB | None = Field(default=None, description=DEFAULT_MEMORY_DOC)
    groups: list[Group] = Field(default_factory=list, max_length=100, description=GROUPS_DOC)
    description: str | None = Field(default=None, max_length=10_000)


class ClusterUpdate(_In):
    """Fields of a cluster to change (absent fields stay as they are)."""

    status: Omittable[ClusterStatus] = MISSING
    tags: Omittable[OwnTags] = MISSING
    config: Omittable[JsonObject] = MISSING
    max_concurrent_jobs: Omittable[int] = Field(default=MISSING, ge=1, le=10_000)
    max_memory_mb: MemoryMB | None = Field(default=None, description=MAX_MEMORY_DOC)
    default_job_memory_mb: MemoryMB | None = Field(default=None, description=DEFAULT_MEMORY_DOC)
    groups: Omittable[list[Group]] = Field(default=MISSING, max_length=100, description=GROUPS_DOC)
    description: str | None = Field(default=None, max_length=10_000)


class ClusterOut(BaseModel):
    """A cluster as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    type: ClusterType
    status: ClusterStatus
    tags: list[str]
    implicit_tags: list[str] = Field(description=IMPLICIT_TAGS_DOC)
    config: dict[str, Any]
    max_concurrent_jobs: int
    max_memory_mb: int | None = Field(description=MAX_MEMORY_DOC)
    default_job_memory_mb: int | None = Field(description=DEFAULT_MEMORY_DOC)
    groups: list[str] = Field(description="Groups (or user names) allowed to run on it; empty: anyone.")
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class CommandCreate(_In):
    """A new command: ``executable`` is the program followed by its default arguments."""

    name: Name
    executable: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(min_length=1, max_length=200)
    status: CommandStatus = CommandStatus.ACTIVE
    tags: OwnTags = Field(default_factory=list)
    cluster_criteria: list[TagSet] = Field(default_factory=list, max_length=20)
    memory_mb: MemoryMB | None = Field(default=None, description=COMMAND_MEMORY_DOC)
    applications: AppNames = Field(
        default_factory=list, max_length=50, description="Names of the applications it needs, in order."
    )
    groups: list[Group] = Field(default_factory=list, max_length=100, description=GROUPS_DOC)
    description: str | None = Field(default=None, max_length=10_000)

    @field_validator("executable")
    @classmethod
    def _program_named(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the first element (the program) must not be empty")
        return value


class CommandUpdate(_In):
    """Fields of a command to change (absent fields stay as they are)."""

    executable: Omittable[list[Annotated[str, StringConstraints(max_length=4096)]]] = Field(
        default=MISSING, min_length=1, max_length=200
    )
    status: Omittable[CommandStatus] = MISSING
    tags: Omittable[OwnTags] = MISSING
    cluster_criteria: Omittable[list[TagSet]] = Field(default=MISSING, max_length=20)
    memory_mb: MemoryMB | None = Field(default=None, description=COMMAND_MEMORY_DOC)
    applications: Omittable[AppNames] = Field(default=MISSING, max_length=50)
    groups: Omittable[list[Group]] = Field(default=MISSING, max_length=100, description=GROUPS_DOC)
    description: str | None = Field(default=None, max_length=10_000)


class CommandOut(BaseModel):
    """A command as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    executable: list[str]
    status: CommandStatus
    tags: list[str]
    implicit_tags: list[str] = Field(description=IMPLICIT_TAGS_DOC)
    cluster_criteria: list[list[str]]
    memory_mb: int | None = Field(description=COMMAND_MEMORY_DOC)
    applications: list[str]
    groups: list[str] = Field(description="Groups (or user names) allowed to run it; empty: anyone.")
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @field_validator("applications", mode="before")
    @classmethod
    def _application_names(cls, value: Any) -> Any:
        return [getattr(item, "name", item) for item in value]


class DatasetRef(_In):
    """A dataset a job declares it reads or writes, by its OpenLineage identity."""

    namespace: str = Field(min_length=1, max_length=512)
    name: str = Field(min_length=1, max_length=1024)


class JobSubmit(_In):
    """A job request (Genie's JobRequest): what to run is chosen by tags, never named directly."""

    id: (
        Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")] | None
    ) = None
    name: Name
    user: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None,
        description="Who the job runs as. Default (and, without the permission jobs.submit_as, the only value "
        "accepted): the principal submitting it.",
    )
    version: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    command_args: list[str] = Field(default_factory=list, max_length=5_000)
    cluster_criteria: list[TagSet] = Field(min_length=1, max_length=20)
    command_criteria: TagSet
    environment: Environment = Field(default_factory=dict)
    timeout: int | None = Field(default=None, ge=1, le=7 * 24 * 3600, description="Seconds before the job is killed.")
    memory_mb: MemoryMB | None = Field(
        default=None,
        description="Memory the job needs, counted against its cluster's max_memory_mb while it is queued or "
        "runs. Default: its command's memory_mb, else the cluster's default_job_memory_mb.",
    )
    applications: AppNames | None = Field(
        default=None,
        max_length=50,
        description="Applications to set up instead of the command's (Genie's override), in order.",
    )
    max_attempts: int = Field(
        default=1, ge=1, le=10, description="Runs allowed: a job whose worker is lost is re-queued until then."
    )
    archive_logs: bool = Field(
        default=False, description="Keep stdout and stderr in a tarball when retention removes the job directory."
    )
    inputs: list[DatasetRef] = Field(default_factory=list, max_length=200)
    outputs: list[DatasetRef] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _cap_arguments(self) -> JobSubmit:
        total = sum(len(arg) for arg in self.command_args)
        if total > MAX_ARGS_CHARS:
            raise ValueError(
                f"command_args total {total} characters; at most {MAX_ARGS_CHARS} are accepted (Genie's cap)"
            )
        return self


class TransitionOut(BaseModel):
    """One status change."""

    model_config = ConfigDict(from_attributes=True)

    from_status: JobStatus | None
    to_status: JobStatus
    reason: str | None
    at: dt.datetime


class JobStatusOut(BaseModel):
    """A job's status, its message and its history."""

    id: str
    status: JobStatus
    status_message: str | None
    transitions: list[TransitionOut]


class AttemptOut(BaseModel):
    """One run of the job's process."""

    model_config = ConfigDict(from_attributes=True)

    attempt: int
    worker_id: str | None
    host: str | None
    pid: int | None
    exit_code: int | None
    outcome: JobStatus | None
    reason: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None


class ClusterAppOut(BaseModel):
    """The application a job runs on a cluster manager (a Spark driver on a standalone master, a YARN application,
    a driver pod, a Flink job), as its supervisor last saw it."""

    manager: str = Field(description="The cluster manager: spark-standalone, yarn, kubernetes...")
    app_id: str = Field(description="The application's id on that manager (driver-..., application_..., a pod).")
    state: str | None = Field(description="SUBMITTED, RUNNING, SUCCEEDED, FAILED, KILLED or UNKNOWN.")
    manager_state: str | None = Field(description="The manager's own word for it (FINISHED, ERROR...).")

    @classmethod
    def of(cls, job: Any) -> ClusterAppOut | None:
        """The application recorded on the job row ``job``, or None."""
        if not job.external_manager or not job.external_id:
            return None
        return cls(
            manager=job.external_manager, app_id=job.external_id, state=job.external_state,
            manager_state=job.external_raw_state,
        )  # fmt: skip


class JobExecutionOut(BaseModel):
    """Where and how a job ran."""

    id: str
    attempt: int
    max_attempts: int
    host: str | None
    pid: int | None
    worker_id: str | None
    exit_code: int | None
    work_dir: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    cleaned_at: dt.datetime | None = Field(description="When retention removed the job directory.")
    archive_path: str | None = Field(description="The tarball its logs were archived to, if it asked for that.")
    cluster_app: ClusterAppOut | None = Field(
        default=None, description="The application it runs on a cluster manager, once submitted (cluster mode)."
    )
    files_archived_at: dt.datetime | None = Field(
        description="When its worker copied its logs and outputs into the database (served when its host is gone)."
    )
    files_not_archived: int | None = Field(
        description="Files left out of that copy for HEADWATER_JOBS_DB_ARCHIVE_MAX_BYTES (they stay on its host)."
    )
    attempts: list[AttemptOut]


class JobOut(BaseModel):
    """A job as the API shows it."""

    id: str
    run_id: str
    name: str
    user: str
    version: str | None
    tags: list[str]
    status: JobStatus
    status_message: str | None
    cluster: str | None
    command: str | None
    memory_mb: int | None = Field(description="The memory it is counted for on its cluster (null: none).")
    exit_code: int | None
    attempt: int
    max_attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class OutputEntry(BaseModel):
    """One file or directory in a job's working directory."""

    path: str
    type: str
    size: int | None
