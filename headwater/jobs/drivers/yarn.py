"""Spark on YARN in cluster deploy mode: the cluster manager "yarn" (:mod:`.base`).

The driver runs in YARN's ApplicationMaster container; Headwater tracks the application id
(``application_<clusterTimestamp>_<sequence>``) that spark-submit prints, reads its state from the ResourceManager
(``yarn application -status``, or the RM's REST API when ``resourcemanager_url`` is set), kills it through the
same way in, and copies the ApplicationMaster container's aggregated logs (``yarn logs``) into ``driver/``.

The formats parsed are those of Hadoop 3.3/3.4 (``ApplicationCLI.printApplicationReport``,
``LogToolUtils.formatContainerLogHeader``) and Spark 3.x/4.x (``deploy/yarn/Client.scala``); the recorded messages
are quoted in tests/jobs/yarn_recorded.py with their sources. Nothing here was run against a real YARN.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from headwater.jobs.drivers.base import AppState, AppStatus, ClusterManager, ManagerError, Submission, register

__all__ = [
    "YarnConfig",
    "YarnManager",
    "app_status",
    "parse_application_report",
    "split_container_logs",
]

# Hadoop's ApplicationId.toString: application_<clusterTimestamp>_<sequence, at least 4 digits>.
APP_ID = re.compile(r"\bapplication_\d+_\d{4,}\b")
# What spark-submit prints once the RM accepted the application: Hadoop's YarnClientImpl "Submitted application
# <id>", Spark's Client "Submitting application <id> to ResourceManager" and "Application report for <id> (state:".
SUBMITTED = re.compile(
    r"(?:Submitted application|Submitting application|Application report for) (application_\d+_\d{4,})\b"
)

# YarnApplicationState -> Headwater's state; FINISHED is decided by the final status the application reported.
STATES: dict[str, AppState] = {
    "NEW": AppState.SUBMITTED,
    "NEW_SAVING": AppState.SUBMITTED,
    "SUBMITTED": AppState.SUBMITTED,
    "ACCEPTED": AppState.SUBMITTED,
    "RUNNING": AppState.RUNNING,
    "FAILED": AppState.FAILED,
    "KILLED": AppState.KILLED,
}
# FinalApplicationStatus of a FINISHED application. UNDEFINED at the end is a failure, as Spark's Client reports it
# ("The final status of application ... is undefined").
FINAL_STATUSES: dict[str, AppState] = {
    "SUCCEEDED": AppState.SUCCEEDED,
    "FAILED": AppState.FAILED,
    "KILLED": AppState.KILLED,
    "UNDEFINED": AppState.FAILED,
}
NOT_FOUND = re.compile(r"Application with id '([^']+)' doesn't exist in RM")
NO_AGGREGATED_LOGS = (
    "Log aggregation has not completed or is not enabled",
    "Can not find the logs for the application",
    "Can not find any log file matching the pattern",
)
# Java exceptions of a ResourceManager that cannot be reached (worded as the REST path words it: "could not reach").
UNREACHABLE = ("ConnectException", "UnknownHostException", "NoRouteToHostException", "SocketTimeoutException")
AGGREGATING = frozenset({"NOT_START", "RUNNING"})  # LogAggregationStatus values of an aggregation not done yet
DETAIL_CHARS = 500


class YarnConfig(BaseModel):
    """The ``yarn`` manager's keys in a cluster's config (other keys, the engine's, are ignored here)."""

    model_config = ConfigDict(extra="ignore")

    yarn: str | None = None  # the yarn CLI; default $HADOOP_HOME/bin/yarn, then `yarn` on PATH
    # http(s)://rm:8088, or the list of an HA pair: status and kill through the RM's REST API
    resourcemanager_url: str | list[str] | None = None
    rm_user: str | None = None  # ?user.name= on REST calls to a cluster with simple (pseudo) authentication
    command_timeout: float = Field(default=60.0, gt=0)  # one `yarn application` call (its RM retries included)
    logs_timeout: float = Field(default=300.0, gt=0)  # one `yarn logs` call
    # The driver is the ApplicationMaster; -1 is its latest attempt (the one that ended, after any retry).
    logs_args: list[str] = Field(default_factory=lambda: ["-am", "-1"])
    logs_wait: float = Field(default=60.0, ge=0)  # how long to wait for log aggregation once the app ended
    logs_poll: float = Field(default=5.0, gt=0)
    log_max_bytes: int = Field(default=8 * 1024 * 1024, gt=0)  # the tail of each log file kept (`yarn logs -size -N`)
    log_files_max: int = Field(default=8, gt=0)  # the whole `yarn logs` output is cut at log_max_bytes times this
    timeout: float = Field(default=10.0, gt=0)  # one REST call


@dataclass(frozen=True)
class ContainerLog:
    """One log file of one container, cut out of ``yarn logs`` output."""

    container: str
    log_type: str
    text: str


def parse_application_report(text: str) -> dict[str, str]:
    """The fields of ``yarn application -status``'s "Application Report" block (``State``, ``Final-State``,
    ``Diagnostics``...); a value that runs over several lines (a diagnostic's stack trace) is kept whole."""
    fields: dict[str, str] = {}
    in_report = False
    key: str | None = None
    for line in text.splitlines():
        if line.strip() == "Application Report :":
            in_report, key = True, None
            continue
        if not in_report:
            continue
        # Each field is printed as "\t<Key> : <value>"; the timeouts line holds three on one line.
        match = re.match(r"^\t([A-Za-z][A-Za-z -]*?) : (.*)$", line)
        if match and not line.startswith("\t\t"):
            key = match.group(1)
            fields[key] = match.group(2).rstrip()
        elif key is not None and line.strip():
            fields[key] += "\n" + line.rstrip()
    return fields


def app_status(state: str, final_status: str, *, diagnostics: str = "", where: str = "") -> AppStatus:
    """Headwater's reading of a YARN application state and final status (as the CLI and REST API name them)."""
    state, final_status = state.strip().upper(), (final_status or "UNDEFINED").strip().upper()
    if state == "FINISHED":
        mapped = FINAL_STATUSES.get(final_status, AppState.FAILED)
        raw = f"FINISHED/{final_status}"
    else:
        mapped = STATES.get(state, AppState.UNKNOWN)
        raw = state
    return AppStatus(mapped, raw=raw, detail=_one_line(diagnostics), where=_where(where))


def split_container_logs(text: str) -> list[ContainerLog]:
    """The log files in ``yarn logs`` output (Hadoop 3's "Container: ... / LogType: / LogContents: / End of
    LogType:" blocks), in order; a block cut short (a bounded read) keeps what it had."""
    logs: list[ContainerLog] = []
    container = log_type = ""
    body: list[str] | None = None
    for line in text.splitlines(keepends=True):
        if body is None:
            if line.startswith("Container: "):
                container = line[len("Container: ") :].split(" on ")[0].strip()
            elif line.startswith("LogType:"):
                log_type = line[len("LogType:") :].strip()
            elif line.rstrip("\r\n") in ("LogContents:", "Log Contents:"):
                body = []
        elif line.startswith(f"End of LogType:{log_type}"):
            # Hadoop prints "\nEnd of LogType:<file>" after the content: that newline is not the file's.
            text = "".join(body)
            logs.append(ContainerLog(container, log_type, text[:-1] if text.endswith("\n") else text))
            body = None
        else:
            body.append(line)
    if body is not None:
        logs.append(ContainerLog(container, log_type, "".join(body)))
    return logs


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def _where(value: str) -> str:
    value = (value or "").strip()
    return "" if value in ("N/A", "null", "") else value


def _safe_name(name: str) -> str:
    """A log type as a file name in ``driver/``: no separators, and never ``.``, ``..`` or a hidden name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"_{name}" if not name or name.startswith(".") else name


@register
class YarnManager(ClusterManager):
    """Spark applications on YARN, followed through the yarn CLI or the ResourceManager's REST API."""

    name: ClassVar[str] = "yarn"
    app_id_pattern: ClassVar[re.Pattern[str]] = re.compile(r"application_\d{1,19}_\d{1,10}")
    submission_id: ClassVar[re.Pattern[str] | None] = SUBMITTED
    # What the engine adds to spark-submit (see :meth:`submit_confs`).
    SUBMIT_CONFS: ClassVar[dict[str, str]] = {"spark.yarn.submit.waitAppCompletion": "false"}

    def __init__(self, config: Mapping[str, Any], *, http: httpx.Client | None = None) -> None:
        super().__init__(config, http=http)
        try:
            self.settings = YarnConfig.model_validate(self.config)
        except ValidationError as exc:
            raise ManagerError(f"invalid yarn cluster config: {exc.errors(include_url=False)}") from None
        urls = self.settings.resourcemanager_url or []
        self._rm_urls = [url.rstrip("/") for url in ([urls] if isinstance(urls, str) else urls)]

    @classmethod
    def submit_confs(cls, config: Mapping[str, Any]) -> dict[str, str]:
        """The ``--conf``s spark-submit needs for Headwater to follow the application: spark-submit returns once
        YARN accepted it, and the supervisor, not spark-submit, follows it to its end."""
        return dict(cls.SUBMIT_CONFS)

    def submit(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, echo: Callable[[str], object]
    ) -> Submission:
        """Check first that the yarn CLI the manager follows the application with is there (else nothing is
        submitted: a driver nobody can follow or kill is not started), then submit as every manager does."""
        try:
            self.yarn_cli()
        except ManagerError as exc:
            echo(f"headwater: not submitted: {exc}\n")
            return Submission(app_id=None, returncode=2, output=str(exc))
        return super().submit(argv, env=env, cwd=cwd, echo=echo)

    # -- the yarn CLI ---------------------------------------------------------------------------------------------

    def yarn_cli(self) -> str:
        """The yarn executable: the ``yarn`` key, else ``$HADOOP_HOME/bin/yarn``, else ``yarn`` on PATH."""
        if self.settings.yarn:
            found = shutil.which(self.settings.yarn)
            if found is None:
                raise ManagerError(
                    f"no yarn CLI at {self.settings.yarn!r} (the cluster's `yarn` key): not an executable"
                )
            return found
        home = os.environ.get("HADOOP_HOME") or os.environ.get("HADOOP_YARN_HOME")
        if home and (Path(home) / "bin" / "yarn").is_file():
            return str(Path(home) / "bin" / "yarn")
        found = shutil.which("yarn")
        if found is None:
            raise ManagerError("no yarn CLI: set the cluster's `yarn` key, HADOOP_HOME, or put yarn on PATH")
        return found

    def _run(self, args: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        argv = [self.yarn_cli(), *args]
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise ManagerError(f"`yarn {' '.join(args)}` did not answer within {timeout:.0f} s") from None
        except OSError as exc:
            raise ManagerError(f"could not run {argv[0]}: {exc}") from None

    @staticmethod
    def _failure(args: Sequence[str], done: subprocess.CompletedProcess[str]) -> ManagerError:
        lines = [line for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
        # The last exception line says why (a ConnectException, an AccessControlException...), not the log noise.
        reason = next((line for line in reversed(lines) if "Exception" in line), lines[-1] if lines else "")
        unreachable = "could not reach the ResourceManager: " if any(e in reason for e in UNREACHABLE) else ""
        return ManagerError(f"{unreachable}`yarn {' '.join(args)}` exited {done.returncode}: {_one_line(reason)}")

    def _check_id(self, app_id: str) -> str:
        if not APP_ID.fullmatch(app_id):
            raise ManagerError(f"{app_id!r} is not a YARN application id (application_<timestamp>_<sequence>)")
        return app_id

    # -- the contract ---------------------------------------------------------------------------------------------

    def status(self, app_id: str) -> AppStatus:
        """The application's state from the ResourceManager (REST when configured, else ``yarn application``)."""
        return self._report(app_id)[0]

    def _report(self, app_id: str) -> tuple[AppStatus, str]:
        """The application's state and its log aggregation status (DISABLED, NOT_START, RUNNING, SUCCEEDED...)."""
        self._check_id(app_id)
        if self._rm_urls:
            return self._rest_status(app_id)
        args = ["application", "-status", app_id]
        done = self._run(args, timeout=self.settings.command_timeout)
        if NOT_FOUND.search(done.stdout):
            raise ManagerError(f"the ResourceManager does not know {app_id} (finished long ago, or RM state lost)")
        report = parse_application_report(done.stdout)
        if "State" not in report:
            raise self._failure(args, done)
        status = app_status(
            report["State"], report.get("Final-State", ""), diagnostics=report.get("Diagnostics", ""),
            where=report.get("AM Host", ""),
        )  # fmt: skip
        return status, report.get("Log Aggregation Status", "N/A").strip().upper()

    def kill(self, app_id: str) -> None:
        """``yarn application -kill`` (or the REST state API); an application already ended is no error."""
        self._check_id(app_id)
        if self._rm_urls:
            self._rest_kill(app_id)
            return
        args = ["application", "-kill", app_id]
        done = self._run(args, timeout=self.settings.command_timeout)
        if "has already finished" in done.stdout or NOT_FOUND.search(done.stdout):
            return  # nothing left to kill
        if done.returncode == 0 and "Killing application" in done.stdout:
            return
        raise self._failure(args, done)

    def fetch_logs(self, app_id: str, dest: Path) -> list[Path]:
        """The ApplicationMaster's aggregated logs (``yarn logs -applicationId ID -am -1 -size -N``: the last
        ``log_max_bytes`` of each file): the whole output in ``driver/yarn-logs.txt``, and each log file of the
        driver's container (stdout, stderr...) as ``driver/<name>``. None when YARN aggregated none (aggregation
        off, or not done within ``logs_wait``)."""
        self._check_id(app_id)
        if not self._aggregated(app_id):
            return []
        args = ["logs", "-applicationId", app_id, *self.settings.logs_args, "-size", f"-{self.settings.log_max_bytes}"]
        text, returncode, truncated = self._bounded_output(args)
        if any(marker in text for marker in NO_AGGREGATED_LOGS) and "LogType:" not in text:
            return []  # aggregation is off or not finished: nothing to copy, and no error to the job
        if returncode != 0 and not truncated and "LogType:" not in text:
            raise ManagerError(f"`yarn {' '.join(args)}` exited {returncode}: {_one_line(text[-DETAIL_CHARS:])}")
        dest.mkdir(parents=True, exist_ok=True)
        whole = dest / "yarn-logs.txt"
        whole.write_text(
            text + ("\n[headwater: cut at log_max_bytes x log_files_max]\n" if truncated else ""), encoding="utf-8"
        )
        written = [whole]
        seen: set[str] = set()
        for log in split_container_logs(text):
            name = _safe_name(log.log_type)
            if name in seen or name == whole.name:  # the first container (the AM) wins
                continue
            seen.add(name)
            path = dest / name
            path.write_text(log.text, encoding="utf-8")
            written.append(path)
        return written

    def _aggregated(self, app_id: str) -> bool:
        """Whether YARN aggregated (or may have aggregated) the application's logs, waiting up to ``logs_wait``
        seconds for an aggregation under way: the NodeManagers upload them only after the containers ended."""
        deadline = time.monotonic() + self.settings.logs_wait
        while True:
            try:
                aggregation = self._report(app_id)[1]
            except ManagerError:
                return True  # the RM forgot the application; the logs may still be in the remote log directory
            if aggregation == "DISABLED":
                return False
            if aggregation not in AGGREGATING or time.monotonic() >= deadline:
                return True
            time.sleep(min(self.settings.logs_poll, max(deadline - time.monotonic(), 0.0)))

    def _bounded_output(self, args: Sequence[str]) -> tuple[str, int, bool]:
        """Run ``yarn args``, keeping at most ``log_max_bytes * log_files_max`` of its output (it is stopped past
        that, and when it runs past ``logs_timeout``)."""
        argv = [self.yarn_cli(), *args]
        limit = self.settings.log_max_bytes * self.settings.log_files_max
        chunks: list[bytes] = []
        size, truncated, returncode = 0, False, 0
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise ManagerError(f"could not run {argv[0]}: {exc}") from None
        # A silent, stuck `yarn logs` (an RM or HDFS that does not answer) would block the read: a timer ends it.
        timer = threading.Timer(self.settings.logs_timeout, process.kill)
        timer.start()
        try:
            with process:
                assert process.stdout is not None
                while chunk := os.read(process.stdout.fileno(), 65536):
                    keep = chunk[: limit - size]
                    chunks.append(keep)
                    size += len(keep)
                    if size >= limit:
                        truncated = True
                        process.kill()
                        break
                returncode = process.wait()
        finally:
            expired = not timer.is_alive() and not truncated
            timer.cancel()
        if expired:
            raise ManagerError(f"`yarn {' '.join(args)}` did not end within {self.settings.logs_timeout:.0f} s")
        return b"".join(chunks).decode("utf-8", errors="replace"), returncode, truncated

    # -- the ResourceManager's REST API ----------------------------------------------------------------------------

    def _rest(self, method: str, app_id: str, suffix: str = "", body: dict[str, Any] | None = None) -> httpx.Response:
        """One request to the active ResourceManager: with several (HA), a standby's redirect or one that cannot
        be reached moves on to the next; the one that answered is asked first next time."""
        params = {"user.name": self.settings.rm_user} if self.settings.rm_user else None
        failures: list[str] = []
        for base in list(self._rm_urls):
            url = f"{base}/ws/v1/cluster/apps/{app_id}{suffix}"
            try:
                response = self.http.request(
                    method, url, params=params, json=body, headers={"Accept": "application/json"},
                    timeout=self.settings.timeout,
                )  # fmt: skip
            except Exception as exc:
                # An egress-checked client (the worker's, the reaper's) refuses or fails in its own words.
                if not isinstance(exc, httpx.HTTPError | OSError) and type(exc).__module__ != "headwater.egress":
                    raise
                failures.append(f"{base}: {type(exc).__name__}")
                continue
            if response.is_redirect:  # a standby RM points at the active one; it is in the list too
                failures.append(f"{base}: standby ({response.status_code})")
                continue
            self._rm_urls.remove(base)
            self._rm_urls.insert(0, base)
            return response
        raise ManagerError(f"could not reach the ResourceManager ({'; '.join(failures)})")

    @staticmethod
    def _remote_exception(response: httpx.Response) -> str:
        try:
            data = response.json().get("RemoteException") or {}
            return str(data.get("message") or data.get("exception") or response.reason_phrase)
        except ValueError:
            return response.reason_phrase

    def _rest_status(self, app_id: str) -> tuple[AppStatus, str]:
        response = self._rest("GET", app_id)
        if response.status_code == 404:
            raise ManagerError(f"the ResourceManager does not know {app_id}: {self._remote_exception(response)}")
        if response.status_code != 200:
            raise ManagerError(
                f"the ResourceManager answered {response.status_code} for {app_id}: {self._remote_exception(response)}"
            )
        try:
            app = response.json()["app"]
            status = app_status(
                str(app["state"]), str(app.get("finalStatus") or ""), diagnostics=str(app.get("diagnostics") or ""),
                where=str(app.get("amHostHttpAddress") or ""),
            )  # fmt: skip
            return status, str(app.get("logAggregationStatus") or "N/A").upper()
        except (ValueError, KeyError, TypeError):
            raise ManagerError(f"the ResourceManager's answer for {app_id} has no app state") from None

    def _rest_kill(self, app_id: str) -> None:
        response = self._rest("PUT", app_id, "/state", {"state": "KILLED"})
        # 200: killed (or already ended); 202: the kill is under way (the state is then polled as usual).
        if response.status_code in (200, 202, 404):
            return
        raise ManagerError(
            f"the ResourceManager refused to kill {app_id} ({response.status_code}): {self._remote_exception(response)}"
        )
