"""Flink application mode on a standalone deployment: each job gets its own Flink cluster on the worker.

:class:`FlinkApplicationManager` (manager ``flink-application``) starts, in the job's directory and process group,
a JobManager in application mode (``bin/standalone-job.sh start-foreground``: the job's PyFlink program, run by
``org.apache.flink.client.python.PythonDriver``, or its jar's main class) and one TaskManager
(``bin/taskmanager.sh start-foreground``), both bound to 127.0.0.1 on free ports through a per-job conf dir
(``flink-app/`` in the job's directory, also holding their logs). The Flink job id is fixed at launch (the job's
run id), so it is known before the cluster is up; ``execution.shutdown-on-application-finish: false`` keeps the
JobManager answering after the application ended, until :meth:`~FlinkApplicationManager.close` stops it.

State comes from the JobManager's REST API: Flink 2's application (``/applications/overview``: it ends when the
program ends) and its job's state (``/applications/<id>``, the dispatcher's own answer, where ``/jobs/<id>`` may
answer from a cache), ``/jobs/<id>/exceptions`` for a failure's root cause, ``/jobs/<id>/checkpoints`` for the
savepoint it was restored from or stopped with. A kill cancels the job (``PATCH /jobs/<id>?mode=cancel``)
or, when the cluster names a ``savepoint_dir``, stops it with a savepoint (``POST /jobs/<id>/stop``) into
``<savepoint_dir>/<job name>/``; a later job of that name restores the newest one there when it asks
(``restore: latest``). The JobManager and TaskManager start with SIGTERM ignored: the kill of the job's process
group must not end them before the kill reached the Flink job and its final state was read; ``close`` ends them
(SIGKILL), and the launcher SIGKILLs whatever a dead supervisor left (docs/guides/flink.md,
"Application mode").
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TextIO

import httpx

from headwater.jobs.drivers.base import AppState, AppStatus, ClusterManager, ManagerError, Submission, register
from headwater.jobs.drivers.flink_conf import conf_value, latest_savepoint, savepoint_target, write_local_flink_conf

__all__ = ["APP_DIR", "PYTHON_DRIVER", "FlinkApplicationManager"]

APP_DIR = "flink-app"  # in the job's directory: the per-job cluster's conf, lib, usrlib and log directories
PYTHON_DRIVER = "org.apache.flink.client.python.PythonDriver"  # runs a PyFlink program as the application

# Flink's job states (JobStatus) as Headwater sees them.
_JOB_STATES = {
    "INITIALIZING": AppState.SUBMITTED,
    "CREATED": AppState.SUBMITTED,
    "RECONCILING": AppState.SUBMITTED,
    "RUNNING": AppState.RUNNING,
    "FAILING": AppState.RUNNING,
    "CANCELLING": AppState.RUNNING,
    "RESTARTING": AppState.RUNNING,
    "FINISHED": AppState.SUCCEEDED,
    "FAILED": AppState.FAILED,
    "CANCELED": AppState.KILLED,
    # The JobManager shut down under the job without HA: it will not come back on a per-job cluster.
    "SUSPENDED": AppState.FAILED,
}
# Flink 2's application states (ApplicationState): the program ends after its job, so the application decides.
_APPLICATION_STATES = {
    "CREATED": AppState.SUBMITTED,
    "RUNNING": AppState.RUNNING,
    "FAILING": AppState.RUNNING,
    "CANCELING": AppState.RUNNING,
    "FINISHED": AppState.SUCCEEDED,
    "FAILED": AppState.FAILED,
    "CANCELED": AppState.KILLED,
}
_CAUSED_BY = re.compile(r"^Caused by: (.+)$", re.MULTILINE)
# A Python exception line the PythonDriver relays into the JobManager's log: "... PythonDriver [] - ValueError: x".
_PYTHON_ERROR = re.compile(r"PythonDriver\s+\[\] - ((?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception)\b.*)$")


def _tee(pipe: IO[bytes], copy: Path, out: TextIO) -> None:
    """Pass the JobManager's console (its log and the program's own output) on to the job's, and keep a copy: the
    driver's ``stdout`` / ``stderr`` that :meth:`FlinkApplicationManager.fetch_logs` fetches."""
    with copy.open("ab") as kept:
        for line in pipe:
            kept.write(line)
            kept.flush()
            out.write(line.decode(errors="replace"))
            out.flush()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sigterm_ignored(argv: list[str]) -> list[str]:
    """``argv`` run with SIGTERM ignored. An ignored signal stays ignored across exec (Flink's bash scripts cannot
    trap it back), and HotSpot then installs no shutdown handler for it, so the JVM outlives the SIGTERM a kill
    sends the job's whole process group. Through sh, not a preexec_fn: submit() runs in the supervisor's
    submitter thread, where forking Python code is unsafe."""
    return ["/bin/sh", "-c", 'trap "" TERM; exec "$0" "$@"', *argv]


def _root_cause(stacktrace: str) -> str:
    """The innermost cause of a Java stack trace, one line."""
    causes = _CAUSED_BY.findall(stacktrace)
    line = causes[-1] if causes else stacktrace.strip().splitlines()[0] if stacktrace.strip() else ""
    return line.strip()[:500]


@register
class FlinkApplicationManager(ClusterManager):
    """A per-job Flink cluster in application mode, on this host (manager ``flink-application``).

    Config (the engine writes it): ``flink_home``; ``conf_dir`` (the conf to copy, default the installation's);
    ``job_id`` (the fixed Flink job id); ``job_name``; ``python_job`` (put flink-python on the classpath);
    ``jars`` (user jars, linked into ``usrlib/``); ``taskmanager_conf`` (``-D`` options of the TaskManager);
    ``savepoint_dir``; ``restore`` (``latest`` or a savepoint path); ``allow_non_restored_state``;
    ``kill_timeout`` (seconds a kill waits for the job to end; default 20); ``timeout`` (REST calls, default 10).
    """

    name = "flink-application"
    app_id_pattern = re.compile(r"[0-9a-f]{32}")
    noun = "Flink job"
    # What submit() prints once the cluster's processes started: the supervisor records the id from it at once.
    submission_id = re.compile(r"Flink application cluster at \S+, job ([0-9a-f]{32})")

    def __init__(self, config: Mapping[str, Any], *, http: httpx.Client | None = None) -> None:
        super().__init__(config, http=http)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stopping = False  # this manager asked the job to end (a kill): a FINISHED job was stopped
        self._savepoint: str | None = None

    # ------------------------------------------------------------------------------------------ submission

    def _home(self) -> Path:
        home = Path(str(self.config.get("flink_home") or os.environ.get("FLINK_HOME") or ""))
        if not (home / "bin" / "standalone-job.sh").is_file():
            raise ManagerError(f"flink_home={str(home)!r} holds no bin/standalone-job.sh")
        return home

    @property
    def rest_url(self) -> str:
        """The per-job JobManager's REST address (set by :meth:`submit`, kept in the config for other processes)."""
        address = self.config.get("rest_address")
        if not address:
            raise ManagerError("the application cluster has no REST address yet (not submitted)")
        host = self.config.get("host")
        if host and host != socket.gethostname():
            # Its REST endpoint is 127.0.0.1 of that host; and it dies with its job's process group there.
            raise ManagerError(f"could not reach the application cluster: it runs on host {host}, not here")
        return f"http://{address}"

    def _lay_out(self, home: Path, app_dir: Path, rest_port: int, rpc_port: int) -> None:
        """The per-job conf, lib and usrlib directories."""
        base = Path(str(self.config["conf_dir"])) if self.config.get("conf_dir") else home / "conf"
        # Flink's and the JVMs' temporary files go into the job's directory: close() SIGKILLs the cluster, which
        # then cleans up nothing itself, and the job's directory is removed with the job's retention.
        tmp = (app_dir / "tmp").resolve()
        tmp.mkdir(exist_ok=True)
        settings: dict[str, object] = {
            "execution.shutdown-on-application-finish": False,
            "io.tmp.dirs": str(tmp),
            # The REST API answers jobs and checkpoint statistics from caches (3 s by default): a reader right
            # after a stop-with-savepoint would miss the savepoint. One client, so fresh answers cost nothing.
            "rest.cache.execution-graph.timeout": "0 ms",
            "rest.cache.checkpoint-statistics.timeout": "0 ms",
        }
        for role in ("jobmanager", "taskmanager"):
            key = f"env.java.opts.{role}"
            settings[key] = f"{conf_value(base, key)} -Djava.io.tmpdir={tmp}".strip()
        write_local_flink_conf(
            home, app_dir / "conf", rest_port=rest_port, rpc_port=rpc_port, source=base, settings=settings
        )
        lib = app_dir / "lib"
        lib.mkdir(exist_ok=True)
        jars = sorted((home / "lib").glob("*.jar"))
        if self.config.get("python_job"):
            # pip's PyFlink keeps flink-python in opt/: the PythonDriver and the Python operators need it on both.
            jars += sorted((home / "opt").glob("flink-python*.jar"))
        for jar in jars:
            with contextlib.suppress(FileExistsError):
                (lib / jar.name).symlink_to(jar)
        usrlib = app_dir / "usrlib"  # the entrypoint's user classpath: $FLINK_LIB_DIR/../usrlib
        usrlib.mkdir(exist_ok=True)
        for jar in self.config.get("jars") or []:
            with contextlib.suppress(FileExistsError):
                (usrlib / Path(str(jar)).name).symlink_to(Path(str(jar)).resolve())

    def _restore_args(self) -> list[str]:
        restore = self.config.get("restore")
        if not restore:
            return []
        path: str | None = str(restore)
        if restore == "latest":
            savepoint_dir = self.config.get("savepoint_dir")
            if not savepoint_dir:
                raise ManagerError("restore: latest needs the cluster's savepoint_dir")
            path = latest_savepoint(str(savepoint_dir), str(self.config.get("job_name", "")))
        if path is None:
            return []
        self.config["restored_from"] = path
        return ["-s", path, *(["-n"] if self.config.get("allow_non_restored_state") else [])]

    def submit(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, echo: Callable[[str], object]
    ) -> Submission:
        """Start the JobManager (``argv``: ``standalone-job.sh start-foreground ...``) and a TaskManager; the job id
        is the fixed one of the config, known at once. A cluster that cannot be started is a submission without id."""
        try:
            return self._start(argv, env=env, cwd=cwd, echo=echo)
        except (ManagerError, OSError) as exc:
            echo(f"headwater: the Flink application cluster could not be started: {exc}\n")
            return Submission(app_id=None, returncode=1, output=str(exc))

    def _start(
        self, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, echo: Callable[[str], object]
    ) -> Submission:
        home = self._home()
        job_id = str(self.config.get("job_id") or "")
        if not re.fullmatch(r"[0-9a-f]{32}", job_id):
            raise ManagerError(f"flink-application needs a fixed 32-hex-digit job_id, not {job_id!r}")
        app_dir = cwd / APP_DIR
        app_dir.mkdir(exist_ok=True)
        rest_port, rpc_port = _free_port(), _free_port()
        self._lay_out(home, app_dir, rest_port, rpc_port)
        self.config["rest_address"] = f"127.0.0.1:{rest_port}"
        self.config["host"] = socket.gethostname()
        self.config["log_dir"] = str((app_dir / "conf" / "log").resolve())
        restore = self._restore_args()
        if restore:
            echo(f"headwater: restoring Flink job {job_id} from savepoint {restore[1]}\n")
        elif self.config.get("restore") == "latest":
            echo(f"headwater: no savepoint of {self.config.get('job_name')!r} yet: starting without state\n")
        argv = list(argv)
        # The entrypoint's own options come before the program (its parser stops at the first it does not know).
        at = argv.index("start-foreground") + 1 if "start-foreground" in argv else 1
        argv[at:at] = restore
        process_env = {
            **env, "FLINK_HOME": str(home), "FLINK_CONF_DIR": str(app_dir / "conf"),
            "FLINK_LIB_DIR": str(app_dir / "lib"),
        }  # fmt: skip
        process_env.pop("FLINK_PID_DIR", None)
        taskmanager = [str(home / "bin" / "taskmanager.sh"), "start-foreground"]
        taskmanager += [f"-D{k}={v}" for k, v in (self.config.get("taskmanager_conf") or {}).items()]
        # The JobManager's console (the program's own output among its log) is the job's; the TaskManager's is not.
        jobmanager = subprocess.Popen(
            _sigterm_ignored(argv), cwd=cwd, env=process_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._processes.append(jobmanager)
        log_dir = app_dir / "conf" / "log"
        assert jobmanager.stdout is not None and jobmanager.stderr is not None
        for pipe, name, out in ((jobmanager.stdout, "stdout", sys.stdout), (jobmanager.stderr, "stderr", sys.stderr)):
            threading.Thread(
                target=_tee, args=(pipe, log_dir / name, out), name=f"jobmanager-{name}", daemon=True
            ).start()
        with (app_dir / "conf" / "log" / "taskmanager-console.out").open("ab") as console:
            self._processes.append(
                subprocess.Popen(
                    _sigterm_ignored(taskmanager), cwd=cwd, env=process_env, stdout=console, stderr=subprocess.STDOUT
                )
            )
        echo(f"headwater: Flink application cluster at http://127.0.0.1:{rest_port}, job {job_id}\n")
        return Submission(app_id=job_id, returncode=0)

    # -------------------------------------------------------------------------------------------- REST calls

    def _get(self, path: str) -> httpx.Response:
        try:
            return self.http.get(f"{self.rest_url}{path}")
        except httpx.HTTPError as exc:
            raise ManagerError(f"could not reach the JobManager at {self.rest_url} ({path}): {exc}") from exc

    def _json(self, path: str) -> Any:
        response = self._get(path)
        if response.status_code >= 400:
            raise ManagerError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def _check_id(self, app_id: str) -> None:
        """A per-job cluster knows one Flink job: the config's ``job_id``."""
        if app_id != self.config.get("job_id"):
            raise ManagerError(
                f"no Flink job {app_id} on this application cluster (its job is {self.config.get('job_id')})"
            )

    def _job_state(self, app_id: str, application: dict[str, Any] | None) -> str:
        """The job's state as the dispatcher knows it now ("" before it was submitted). Not ``GET /jobs/<id>``:
        that answers from a cache (``web.refresh-interval``), which still said RUNNING after the application had
        ended CANCELED; the application's details are the dispatcher's own."""
        if application is None:
            return ""
        jobs = self._json(f"/applications/{application['id']}").get("jobs") or []
        return next((str(job.get("state")) for job in jobs if job.get("jid") == app_id), "")

    def _application(self) -> dict[str, Any] | None:
        """The cluster's application: a per-job cluster runs one (None before the entrypoint created it)."""
        applications = self._json("/applications/overview").get("applications") or []
        return applications[0] if applications else None

    def _exited(self) -> int | None:
        """The JobManager's exit code when this manager started it and it has ended, else None."""
        return self._processes[0].poll() if self._processes else None

    def status(self, app_id: str) -> AppStatus:
        """The application's state from the JobManager's REST API (the application decides when the job ended:
        a program may go on after its job), the job's state as ``raw``, a failure's root cause as ``detail``."""
        if not self.config.get("rest_address"):
            raise ManagerError(f"no Flink job {app_id}: this application cluster was never started")
        try:
            # The application first: once it ended, its job has too, so the job read next is final as well.
            application = self._application()
            self._check_id(app_id)
        except ManagerError:
            if app_id != self.config.get("job_id"):
                raise
            code = self._exited()
            if code is not None:
                return AppStatus(
                    AppState.FAILED, raw="JOBMANAGER_EXITED", exit_code=code or 1,
                    detail=f"the JobManager exited with code {code} before the application ended (see its log)",
                )  # fmt: skip
            if self._processes:  # started here, not answering yet: still starting up
                return AppStatus(AppState.SUBMITTED, raw="STARTING", where=self.config.get("rest_address", ""))
            raise
        job_state = self._job_state(app_id, application)
        job = {"state": job_state} if job_state else None
        if application is not None:
            state = _APPLICATION_STATES.get(str(application.get("status")), AppState.UNKNOWN)
            if state == AppState.RUNNING and not job_state:
                state = AppState.SUBMITTED  # the program runs, its Flink job is not submitted yet
            if self._stopping and not state.final and _JOB_STATES.get(job_state, AppState.UNKNOWN).final:
                # Killed: the job's end is the application's, without waiting for the program to exit (the
                # supervisor has only the kill's grace left).
                state = _JOB_STATES[job_state]
        else:
            state = _JOB_STATES.get(job_state, AppState.UNKNOWN) if job else AppState.SUBMITTED
        raw = job_state or f"application {application.get('status') if application else 'CREATED'}"
        where = str(self.config.get("rest_address", ""))
        if not state.final:
            return AppStatus(state, raw=raw, where=where)
        notes = self._checkpoint_notes(app_id) if job else []
        if state == AppState.SUCCEEDED and job_state == "FINISHED" and (self._stopping or self._savepoint):
            state = AppState.KILLED  # stopped with a savepoint: a streaming job ends FINISHED
        if state == AppState.FAILED:
            notes.insert(0, self._failure(app_id, job, application))
        return AppStatus(
            state, raw=raw, detail="; ".join(n for n in notes if n), where=where,
            exit_code=None if state != AppState.FAILED else 1,
        )  # fmt: skip

    def _checkpoint_notes(self, app_id: str) -> list[str]:
        """What the job's checkpoint statistics say about savepoints: restored from, stopped with."""
        try:
            latest = (self._json(f"/jobs/{app_id}/checkpoints").get("latest")) or {}
        except (ManagerError, ValueError):
            return []
        notes = []
        restored = latest.get("restored") or {}
        if restored.get("external_path"):
            notes.append(f"restored from savepoint {restored['external_path']}")
        savepoint = latest.get("savepoint") or {}
        if savepoint.get("external_path") and savepoint.get("checkpoint_type") == "SYNC_SAVEPOINT":
            self._savepoint = str(savepoint["external_path"])  # a stop-with-savepoint's synchronous savepoint
            notes.append(f"stopped with savepoint {self._savepoint}")
        return notes

    def _failure(self, app_id: str, job: dict[str, Any] | None, application: dict[str, Any] | None) -> str:
        """The root cause of a failure: the job's newest exception, else the application's."""
        paths = [f"/jobs/{app_id}/exceptions"] if job else []
        if application is not None:
            paths.append(f"/applications/{application['id']}/exceptions")
        for path in paths:
            try:
                entries = (self._json(path).get("exceptionHistory") or {}).get("entries") or []
            except (ManagerError, ValueError):
                continue
            if entries:
                cause = _root_cause(str(entries[0].get("stacktrace") or entries[0].get("exceptionName") or ""))
                if "Python process exits with code" in cause:  # the program failed: say why, not only how
                    cause = f"{self._python_error() or cause}"
                return cause
        return ""

    def _python_error(self) -> str:
        """The last exception line of the PyFlink program's traceback, which the PythonDriver logs line by line in
        the JobManager's log ("" when not found: a log of another host, or no traceback)."""
        log_dir = Path(str(self.config.get("log_dir") or ""))
        error = ""
        for log in sorted(log_dir.glob("*standalonejob*.log")) if log_dir.parts else []:
            with contextlib.suppress(OSError), log.open(errors="replace") as lines:
                for line in lines:
                    found = _PYTHON_ERROR.search(line)
                    if found:
                        error = found.group(1).strip()
        return error[:500]

    # ----------------------------------------------------------------------------------------------- kill

    def kill(self, app_id: str) -> None:
        """Stop the job with a savepoint into ``<savepoint_dir>/<job name>`` when the cluster names one (falling
        back to a cancel when Flink refuses: a batch job, a job not running), else cancel it; then wait up to
        ``kill_timeout`` seconds for it to end, so its final state can be read before the processes go."""
        if not self.config.get("rest_address"):
            return  # never started: nothing to end
        if self._exited() is None:
            self._application()  # raises when the JobManager cannot be reached (unless it already exited here)
        if app_id != self.config.get("job_id"):
            return  # not this cluster's job: nothing of it to end
        self._stopping = True
        deadline = time.monotonic() + float(self.config.get("kill_timeout", 20.0))
        if self._ended(app_id):
            return  # ended already (the worker's kill came first): nothing to stop, and no time to lose
        savepoint_dir = self.config.get("savepoint_dir")
        if not (savepoint_dir and self._stop_with_savepoint(app_id, str(savepoint_dir), deadline)):
            try:
                response = self.http.patch(f"{self.rest_url}/jobs/{app_id}", params={"mode": "cancel"})
            except httpx.HTTPError as exc:
                raise ManagerError(f"cancelling Flink job {app_id} failed: {exc}") from exc
            if response.status_code == 404:  # the program has not submitted its job yet: end the program
                self._cancel_application()
            elif response.status_code >= 400 and response.status_code != 409:  # 409: it ended meanwhile
                raise ManagerError(f"cancelling Flink job {app_id} answered {response.status_code}")
        # The program too: it ends soon after its job, and then the supervisor reads a final state at once.
        while time.monotonic() < deadline and not self._ended(app_id, program=True):
            time.sleep(0.2)

    def _ended(self, app_id: str, *, program: bool = False) -> bool:
        """Whether the job has ended (``program``: and the application, when there is one); also when the cluster
        is gone, since nothing is left to end then."""
        try:
            application = self._application()
            state = self._job_state(app_id, application)
        except ManagerError:
            return True
        app_state = _APPLICATION_STATES.get(str(application.get("status"))) if application else None
        if app_state is not None and app_state.final:
            return True
        return not (program and application) and bool(state and _JOB_STATES.get(state, AppState.RUNNING).final)

    def _cancel_application(self) -> None:
        """Cancel the cluster's application (Flink 2: ``POST /applications/<id>/cancel``), jobs and program."""
        application = self._application()
        if application is None:
            return
        jobs = self._json(f"/applications/{application['id']}").get("jobs") or []
        if any(job.get("jid") != self.config.get("job_id") for job in jobs):
            return  # not this job's cluster (its port reused since): leave it alone
        try:
            self.http.post(f"{self.rest_url}/applications/{application['id']}/cancel")
        except httpx.HTTPError as exc:
            raise ManagerError(f"cancelling Flink application {application['id']} failed: {exc}") from exc

    def _savepoint_result(self, app_id: str, trigger: str, deadline: float) -> dict[str, Any] | None:
        """The completed savepoint operation ``trigger`` (a location, or a failure cause); None past ``deadline``."""
        while time.monotonic() < deadline:
            result: dict[str, Any] = self._json(f"/jobs/{app_id}/savepoints/{trigger}")
            if (result.get("status") or {}).get("id") == "COMPLETED":
                return result
            time.sleep(0.2)
        return None

    def _stop_with_savepoint(self, app_id: str, savepoint_dir: str, deadline: float) -> bool:
        """Stop the job with a savepoint; whether it was stopped (False: cancel it instead). A trigger that fails
        while the job still runs is tried again: its tasks may still be deploying (Flink then refuses a
        checkpoint), and a failed stop-with-savepoint leaves the job running."""
        target = savepoint_target(savepoint_dir, str(self.config.get("job_name", "")))
        give_up = deadline - 3.0  # time left for a cancel after the last try
        try:
            while True:
                response = self.http.post(
                    f"{self.rest_url}/jobs/{app_id}/stop", json={"targetDirectory": target, "drain": False}
                )
                if response.status_code >= 400:
                    return False  # not running (yet, or any more), a batch job: a cancel ends it all the same
                result = self._savepoint_result(app_id, response.json()["request-id"], deadline)
                if result is None:
                    return False
                operation = result.get("operation") or {}
                if operation.get("location"):
                    self._savepoint = str(operation["location"])
                    return True
                state = self._job_state(app_id, self._application())
                if state != "RUNNING" or time.monotonic() > give_up:
                    return False
                time.sleep(0.5)
        except (httpx.HTTPError, ManagerError, ValueError, KeyError):
            return False

    # --------------------------------------------------------------------------------------- logs and close

    def fetch_logs(self, app_id: str, dest: Path) -> list[Path]:
        """The JobManager's and TaskManager's log and console files of this job's cluster, into ``dest``."""
        log_dir = dest.parent / APP_DIR / "conf" / "log"  # write_local_flink_conf's env.log.dir
        written = []
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(log_dir.glob("*")):
            if path.is_file() and (path.suffix in {".log", ".out", ".err"} or path.name in {"stdout", "stderr"}):
                shutil.copy2(path, dest / path.name)
                written.append(dest / path.name)
        return written

    def close(self) -> None:
        """Stop the per-job cluster this manager started: SIGKILL every process of it (they ignore SIGTERM; their
        final state was read and their logs copied already) and wait for them. Quick, so it fits in a kill's grace."""
        if not self._processes:
            return
        import psutil

        for process in self._processes:
            try:
                tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
            except psutil.Error:
                tree = []
            for member in tree:
                with contextlib.suppress(psutil.Error):
                    member.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10.0)
            psutil.wait_procs(tree, timeout=5.0)
        self._processes.clear()
