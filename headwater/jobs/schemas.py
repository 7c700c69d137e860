"""Pydantic request and response models of the jobs API (shaped after Genie's /api/v3)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from headwater.jobs.models import ClusterStatus, ClusterType, CommandStatus, JobStatus

__all__ = [
    "MAX_ARGS_CHARS",
    "ClusterCreate",
    "ClusterOut",
    "ClusterUpdate",
    "CommandCreate",
    "CommandOut",
    "CommandUpdate",
    "DatasetRef",
    "JobExecutionOut",
    "JobOut",
    "JobStatusOut",
    "JobSubmit",
    "OutputEntry",
    "TransitionOut",
]

# Genie's cap on the total length of a job's command arguments.
MAX_ARGS_CHARS = 10_000

Name = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]
TagSet = Annotated[list[Tag], Field(min_length=1, max_length=50)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterCreate(_In):
    """A new cluster."""

    name: Name
    type: ClusterType
    status: ClusterStatus = ClusterStatus.UP
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    config: dict[str, Any] = Field(default_factory=dict)
    max_concurrent_jobs: int = Field(default=8, ge=1, le=10_000)
    description: str | None = Field(default=None, max_length=10_000)


class ClusterUpdate(_In):
    """Fields of a cluster to change (absent fields stay as they are)."""

    status: ClusterStatus | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    config: dict[str, Any] | None = None
    max_concurrent_jobs: int | None = Field(default=None, ge=1, le=10_000)
    description: str | None = Field(default=None, max_length=10_000)


class ClusterOut(BaseModel):
    """A cluster as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    type: ClusterType
    status: ClusterStatus
    tags: list[str]
    config: dict[str, Any]
    max_concurrent_jobs: int
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class CommandCreate(_In):
    """A new command: ``executable`` is the program followed by its default arguments."""

    name: Name
    executable: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(min_length=1, max_length=200)
    status: CommandStatus = CommandStatus.ACTIVE
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    cluster_criteria: list[TagSet] = Field(default_factory=list, max_length=20)
    description: str | None = Field(default=None, max_length=10_000)

    @field_validator("executable")
    @classmethod
    def _program_named(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("the first element (the program) must not be empty")
        return value


class CommandUpdate(_In):
    """Fields of a command to change (absent fields stay as they are)."""

    executable: list[Annotated[str, StringConstraints(max_length=4096)]] | None = Field(
        default=None, min_length=1, max_length=200
    )
    status: CommandStatus | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    cluster_criteria: list[TagSet] | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=10_000)


class CommandOut(BaseModel):
    """A command as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    executable: list[str]
    status: CommandStatus
    tags: list[str]
    cluster_criteria: list[list[str]]
    description: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


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
    user: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    version: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    command_args: list[str] = Field(default_factory=list, max_length=5_000)
    cluster_criteria: list[TagSet] = Field(min_length=1, max_length=20)
    command_criteria: TagSet
    environment: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str
    ] = Field(default_factory=dict, max_length=200)
    timeout: int | None = Field(default=None, ge=1, le=7 * 24 * 3600, description="Seconds before the job is killed.")
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


class JobExecutionOut(BaseModel):
    """Where and how a job ran."""

    id: str
    host: str | None
    pid: int | None
    worker_id: str | None
    exit_code: int | None
    work_dir: str | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None


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
    exit_code: int | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class OutputEntry(BaseModel):
    """One file or directory in a job's working directory."""

    path: str
    type: str
    size: int | None
