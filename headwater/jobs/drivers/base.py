"""The contract every cluster manager implements: submit a job's driver, read its state, kill it, fetch its logs.

A job whose work runs on a cluster manager (a Spark standalone master in cluster deploy mode, YARN, Kubernetes, a
Flink application cluster) is still one process on the worker: the supervisor (:mod:`.supervise`), which submits
the application, records its id in the job's directory (:data:`APP_RECORD`), follows its state through the manager
until it ends, fetches the driver's logs into the job's directory, and exits as the driver ended. So the worker's
slots, heartbeats, kills, timeouts and fencing apply unchanged (docs/concepts/jobs.md, "Jobs on cluster managers").

A manager is named in its cluster's config and built by :func:`manager_for`; implementations register themselves
with :func:`register`. Every call is synchronous and bounded by the manager's own timeouts.
"""

from __future__ import annotations

import abc
import enum
import importlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx

from headwater.jobs.exit_status import write_atomically

__all__ = [
    "APP_RECORD",
    "DRIVER_LOGS_DIR",
    "SPEC_ENV",
    "AppRecord",
    "AppState",
    "AppStatus",
    "ClusterManager",
    "ManagerError",
    "Submission",
    "describe",
    "manager_class",
    "manager_for",
    "read_app_record",
    "register",
    "say",
    "write_app_record",
]

APP_RECORD = "cluster-app.json"  # in the job's directory: which manager runs it, its application id, how it ended
DRIVER_LOGS_DIR = "driver"  # in the job's directory: the driver's logs, fetched once it ended
SPEC_ENV = "HEADWATER_CLUSTER_MANAGER"  # the supervisor's manager spec (JSON: {"manager": ..., "config": {...}})


class ManagerError(Exception):
    """The cluster manager could not be reached or refused the request; the message says which and why."""


class AppState(enum.StrEnum):
    """An application's state as Headwater sees it, whatever the manager calls it."""

    SUBMITTED = "SUBMITTED"  # accepted, not yet running (queued, scheduling, relaunching)
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    UNKNOWN = "UNKNOWN"  # the manager does not know (yet, or any more): not final

    @property
    def final(self) -> bool:
        """Whether the application has ended."""
        return self in {AppState.SUCCEEDED, AppState.FAILED, AppState.KILLED}


@dataclass(frozen=True)
class AppStatus:
    """One reading of an application's state: Headwater's state, the manager's own word for it, and detail."""

    state: AppState
    raw: str = ""  # the manager's own state name (FINISHED, ERROR, Succeeded...)
    detail: str = ""  # a message the manager gave (an exception, a diagnostic), one line
    exit_code: int | None = None  # the driver's exit code, where the manager reports it
    where: str = ""  # where the driver runs (a worker's host:port, a pod, a container), where known


@dataclass(frozen=True)
class Submission:
    """What submitting printed, and the application id found in it (None: none was)."""

    app_id: str | None
    returncode: int
    output: str = ""


@dataclass
class AppRecord:
    """What the supervisor writes into the job's directory (:data:`APP_RECORD`), read by the worker and reaper."""

    manager: str
    app_id: str
    config: dict[str, Any] = field(default_factory=dict)
    state: str = AppState.SUBMITTED.value
    raw: str = ""
    detail: str = ""
    exit_code: int | None = None
    where: str = ""
    logs: list[str] = field(default_factory=list)  # fetched log files, relative to the job's directory


class ClusterManager(abc.ABC):
    """One cluster manager: how a driver is submitted to it, followed, killed and its logs fetched."""

    name: ClassVar[str]
    noun: ClassVar[str] = "application"  # what the manager runs, in messages ("driver" for Spark's)
    # The submitter's output that names the application id (first group); used by the default parse_submission.
    submission_id: ClassVar[re.Pattern[str] | None] = None
    # What an application id of this manager looks like: the worker takes an id from the job's own record (which
    # the job can write) only when it matches, so a job cannot make the worker act on something else.
    app_id_pattern: ClassVar[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")

    @classmethod
    def valid_id(cls, app_id: object) -> bool:
        """Whether ``app_id`` has the form of one of this manager's application ids."""
        return isinstance(app_id, str) and cls.app_id_pattern.fullmatch(app_id) is not None

    def __init__(self, config: Mapping[str, Any], *, http: httpx.Client | None = None) -> None:
        self.config = dict(config)
        # Server-side callers (the worker's kill, the reaper) pass a client of the egress policy
        # (headwater.egress.http_client); the supervisor, which is the job's own process, uses a plain one.
        self._http = http

    @property
    def http(self) -> httpx.Client:
        """The HTTP client the manager's REST calls use (made on first use when none was given)."""
        if self._http is None:
            self._http = httpx.Client(timeout=float(self.config.get("timeout", 10.0)), trust_env=False)
        return self._http

    @classmethod
    def submit_confs(cls, config: Mapping[str, Any]) -> dict[str, str]:
        """Settings the engine adds to the submitter's command (Spark ``--conf`` key/values) so that the submitter
        returns once the application is accepted and the supervisor follows it; none by default."""
        return {}

    def submit(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, echo: Callable[[str], object]
    ) -> Submission:
        """Run the submitter ``argv`` (spark-submit, flink run-application...) to its end, each line of its output
        passed to ``echo`` as it comes, and find the application id in what it printed."""
        lines: list[str] = []
        with subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace", bufsize=1,
        ) as process:  # fmt: skip
            assert process.stdout is not None
            for line in process.stdout:
                echo(line)
                if len(lines) < 20_000:  # the id comes early; a chatty submitter is not kept whole
                    lines.append(line)
        output = "".join(lines)
        return Submission(app_id=self.parse_submission(output), returncode=process.returncode, output=output)

    def parse_submission(self, output: str) -> str | None:
        """The application id the submitter printed, or None."""
        if self.submission_id is None:
            raise NotImplementedError(f"{type(self).__name__} must set submission_id or override parse_submission")
        match = self.submission_id.search(output)
        return match.group(1) if match else None

    @abc.abstractmethod
    def status(self, app_id: str) -> AppStatus:
        """The application's state now (raise :class:`ManagerError` when the manager cannot be asked, or does not
        know the id)."""

    @abc.abstractmethod
    def kill(self, app_id: str) -> None:
        """Ask the manager to end the application; idempotent (an application already ended is no error)."""

    def fetch_logs(self, app_id: str, dest: Path) -> list[Path]:
        """Copy the driver's logs into ``dest`` (created); the files written. Managers that cannot, write none."""
        return []

    def close(self) -> None:
        """Release what :meth:`submit` started on this host (an application cluster's own processes); called once
        the application ended and its logs were fetched, and on every way out of the supervisor."""
        return None


_MANAGERS: dict[str, type[ClusterManager]] = {}
# Where each manager lives; a module registers its manager when imported, by name, when first asked for (so this
# module has no import edge to them, tests/test_architecture.py, and a supervisor loads only its own).
MODULES = {
    "spark-standalone": "spark_standalone",
    "yarn": "yarn",
    "kubernetes": "kubernetes",
    "flink-application": "flink_application",
}


def _import(name: str) -> None:
    if name in MODULES and name not in _MANAGERS:
        importlib.import_module(f"headwater.jobs.drivers.{MODULES[name]}")


def register(cls: type[ClusterManager]) -> type[ClusterManager]:
    """Class decorator: make ``cls`` available to :func:`manager_for` under ``cls.name``."""
    _MANAGERS[cls.name] = cls
    return cls


def manager_for(name: str, config: Mapping[str, Any], *, http: httpx.Client | None = None) -> ClusterManager:
    """The manager called ``name``, configured by ``config`` (``http``: see :class:`ClusterManager`)."""
    _import(name)

    try:
        cls = _MANAGERS[name]
    except KeyError:
        raise ManagerError(f"no cluster manager {name!r}; known: {sorted({*MODULES, *_MANAGERS})}") from None
    return cls(config, http=http)


def manager_class(name: str) -> type[ClusterManager] | None:
    """The class of the manager called ``name`` (None: no such manager)."""
    _import(name)
    return _MANAGERS.get(name)


def describe(record: AppRecord) -> str:
    """How the application stands, in one line: "driver driver-... FAILED on the cluster (ERROR): message"."""
    cls = manager_class(record.manager)
    noun = cls.noun if cls is not None else "application"
    state = AppState(record.state) if record.state in AppState.__members__ else AppState.UNKNOWN
    where = "on the cluster" if state.final else f"still {state.value} on the cluster"
    text = f"{noun} {record.app_id} {state.value if state.final else ''}".rstrip() + f" {where}"
    if record.raw and record.raw != state.value:
        text += f" ({record.raw})"
    return text + (f": {record.detail}" if record.detail else "")


def write_app_record(work_dir: Path, record: AppRecord) -> None:
    """Write ``record`` into ``work_dir`` atomically (a reader sees a whole record or the previous one)."""
    write_atomically(work_dir, APP_RECORD, json.dumps(asdict(record)))


def read_app_record(work_dir: Path) -> AppRecord | None:
    """The record in ``work_dir``, or None (not a cluster-manager job, not submitted yet, or unreadable)."""
    try:
        data = json.loads((work_dir / APP_RECORD).read_text())
        return AppRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def say(message: str) -> None:
    """A line of the supervisor's own on the job's stderr."""
    print(f"headwater: {message}", file=sys.stderr, flush=True)
