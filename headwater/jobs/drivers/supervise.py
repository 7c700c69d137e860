"""The supervisor of a job that runs on a cluster manager: the job's own process on the worker.

    python -I -m headwater.jobs.drivers.supervise [--poll S] [--kill-wait S] [--lost-after S] -- SUBMIT_ARGV...

with the manager's spec (``{"manager": NAME, "config": {...}}``) as JSON in ``$HEADWATER_CLUSTER_MANAGER``. It

1. runs the submitter (``spark-submit --deploy-mode cluster ...``), its output on the job's stdout, and finds the
   application id in it as it is printed (the submitter may go on meanwhile); no id is a failed job (the
   submitter's exit code, else 1);
2. writes the id into the job's directory (:data:`~.base.APP_RECORD`) at once, where the worker and the reaper
   find it;
3. reads the application's state every ``--poll`` seconds until it is final, writing each change into the record
   and a line on stderr; a manager that cannot be reached for ``--lost-after`` seconds fails the job, the
   application killed first (best effort), so nothing runs on unwatched;
4. on SIGTERM (a kill or a timeout: the launcher passes it on) kills the application through the manager and
   waits up to ``--kill-wait`` seconds for it to end;
5. fetches the driver's logs into ``driver/`` in the job's directory, and exits 0 when the application succeeded,
   its exit code (else 1) when it failed, 143 when it was killed.

It runs in the job's directory, as the job's user, with the job's environment, and imports nothing of Headwater but
this package, so it never sees the server's settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

from headwater.jobs.drivers.base import (
    DRIVER_LOGS_DIR,
    SPEC_ENV,
    AppRecord,
    AppState,
    AppStatus,
    ClusterManager,
    ManagerError,
    Submission,
    manager_for,
    say,
    write_app_record,
)

__all__ = ["command", "main", "supervise"]

# The directory holding this Headwater's package: the supervisor imports it from there (see :func:`command`).
PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])

EXIT_KILLED = 128 + signal.SIGTERM
_stop: list[int] = []


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _stop.append(signum)


def _update(work_dir: Path, record: AppRecord, status: AppStatus) -> AppRecord:
    record = replace(
        record, state=status.state.value, raw=status.raw, detail=status.detail, exit_code=status.exit_code,
        where=status.where or record.where,
    )  # fmt: skip
    write_app_record(work_dir, record)
    return record


# A line naming an exception: Python's "RuntimeError: ...", the JVM's "java.io.FileNotFoundException: ...".
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.$]*(?:Error|Exception|Exit): .+$")
_TAIL_BYTES = 64 * 1024


def failure_line(logs: list[Path]) -> str:
    """The last line naming an exception in the first of ``logs`` (their tails) that has one: why a driver failed,
    when its manager gave no message (a Spark master says only FAILED)."""
    for path in logs:
        try:
            with path.open("rb") as handle:
                handle.seek(max(0, path.stat().st_size - _TAIL_BYTES))
                lines = handle.read().decode(errors="replace").splitlines()
        except OSError:
            continue
        found = [line.strip() for line in lines if _EXCEPTION_LINE.match(line.strip())]
        if found:
            return found[-1][:500]
    return ""


def _exit_code(record: AppRecord) -> int:
    if record.state == AppState.SUCCEEDED.value:
        return 0
    if record.state == AppState.KILLED.value:
        return EXIT_KILLED
    return record.exit_code if record.exit_code not in (None, 0) else 1


class _Submitting:
    """The submitter, run in a thread: the application is followed from the moment its id is printed, while a
    submitter that goes on (spark-submit polls the master once, 5 s later) finishes beside it. The id is recorded
    at once, so a kill meanwhile finds the application and ends it through the manager."""

    def __init__(self, manager: ClusterManager, argv: list[str], *, work_dir: Path, env: dict[str, str]) -> None:
        self.manager, self.work_dir = manager, work_dir
        self._found: list[str] = []
        self._result: list[Submission | BaseException] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(argv, env), name="submitter", daemon=True)
        self._thread.start()

    def _echo(self, line: str) -> None:
        print(line, end="", flush=True)
        if not self._found and (found := self.manager.parse_submission(line)):
            self._record(found)

    def _record(self, app_id: str) -> None:
        self._found.append(app_id)
        write_app_record(self.work_dir, AppRecord(manager=self.manager.name, app_id=app_id, config=self.manager.config))
        self._ready.set()

    def _run(self, argv: list[str], env: dict[str, str]) -> None:
        try:
            submission = self.manager.submit(argv, env=env, cwd=self.work_dir, echo=self._echo)
            if not self._found and submission.app_id:  # an id only the whole output shows
                self._record(submission.app_id)
            self._result.append(submission)
        except BaseException as exc:  # re-raised in the supervisor's thread
            self._result.append(exc)
        finally:
            self._ready.set()

    def app_id(self) -> str | None:
        """The application's id once printed, or None once the submitter ended without printing one."""
        while not self._ready.wait(0.5):  # a timeout: signals are handled between waits
            pass
        if not self._found:
            self.returncode()  # raises what the submitter raised
        return self._found[0] if self._found else None

    def returncode(self, wait: float = 10.0) -> int | None:
        """The submitter's exit code (None while it still runs after ``wait`` seconds)."""
        self._thread.join(wait)
        if not self._result:
            return None
        result = self._result[0]
        if isinstance(result, BaseException):
            raise result
        return result.returncode


def supervise(
    manager: ClusterManager,
    argv: list[str],
    *,
    work_dir: Path,
    env: dict[str, str],
    poll: float = 2.0,
    kill_wait: float = 30.0,
    lost_after: float = 300.0,
) -> int:
    """Submit ``argv`` to ``manager``, follow the application to its end, fetch its logs; the exit code."""
    with contextlib.closing(manager):  # releases what submit started, on every way out
        submitting = _Submitting(manager, argv, work_dir=work_dir, env=env)
        app_id = submitting.app_id()
        if app_id is None:
            code = submitting.returncode()
            say(f"the submitter printed no {manager.name} application id (exit code {code})")
            return code or 1
        say(f"submitted {app_id} to {manager.name}")
        record = AppRecord(manager=manager.name, app_id=app_id, config=manager.config)
        killed_at: float | None = None
        reached = time.monotonic()
        last: tuple[str, str] | None = None
        while True:
            if _stop and killed_at is None:
                killed_at = time.monotonic()
                say(f"killing {app_id} through {manager.name}")
                try:
                    manager.kill(app_id)
                except ManagerError as exc:
                    say(f"kill of {app_id} failed: {exc}")
            try:
                status = manager.status(app_id)
                reached = time.monotonic()
            except ManagerError as exc:
                if time.monotonic() - reached > lost_after:
                    say(f"{manager.name} unreachable for {lost_after:.0f} s: {exc}; killing {app_id}")
                    with contextlib.suppress(ManagerError):
                        manager.kill(app_id)
                    record = _update(work_dir, record, AppStatus(AppState.FAILED, raw="LOST", detail=str(exc)))
                    break
                status = None
            if status is not None:
                if (status.state.value, status.raw) != last:
                    last = (status.state.value, status.raw)
                    where = f" on {status.where}" if status.where else ""
                    say(
                        f"{app_id} {status.state.value} ({status.raw}){where}"
                        + (f": {status.detail}" if status.detail else "")
                    )
                    record = _update(work_dir, record, status)
                if status.state.final:
                    break
            if killed_at is not None and time.monotonic() - killed_at > kill_wait:
                say(f"{app_id} did not end within {kill_wait:.0f} s of its kill")
                record = _update(
                    work_dir, record, AppStatus(AppState.KILLED, raw=record.raw, detail="kill not confirmed")
                )
                break
            time.sleep(min(poll, 0.2) if _stop else poll)
        code = submitting.returncode()
        if code not in (0, None):
            say(f"the submitter exited {code} after printing the id (the application was followed all the same)")
        try:
            logs = manager.fetch_logs(app_id, work_dir / DRIVER_LOGS_DIR)
            record = replace(record, logs=[str(path.relative_to(work_dir)) for path in logs])
            if record.state == AppState.FAILED.value and not record.detail:
                record = replace(record, detail=failure_line(logs))
            write_app_record(work_dir, record)
        except (ManagerError, OSError, ValueError) as exc:
            say(f"could not fetch the driver's logs of {app_id}: {exc}")
        return _exit_code(record)


def command(
    submit_argv: list[str], *, poll: float = 2.0, kill_wait: float = 30.0, lost_after: float = 300.0
) -> list[str]:
    """The argv that runs the supervisor over ``submit_argv`` with this interpreter: isolated (``-I``: the job's
    ``PYTHONPATH`` cannot put modules of its own in it), importing the Headwater this worker runs, not whichever one
    the interpreter's site-packages hold."""
    boot = (
        f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); "
        "from headwater.jobs.drivers.supervise import main; sys.exit(main(sys.argv[1:]))"
    )
    options = ["--poll", str(poll), "--kill-wait", str(kill_wait), "--lost-after", str(lost_after)]
    return [sys.executable, "-I", "-c", boot, *options, "--", *submit_argv]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and the spec, then :func:`supervise`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        raise SystemExit("usage: python -m headwater.jobs.drivers.supervise [--poll S] [--kill-wait S] -- ARGV")
    split = args.index("--")
    options = dict(zip(args[:split:2], args[1:split:2], strict=True))
    command = args[split + 1 :]
    env = dict(os.environ)
    try:
        spec = json.loads(env.pop(SPEC_ENV))
        manager = manager_for(str(spec["manager"]), spec.get("config") or {})
    except (KeyError, ValueError, TypeError, ManagerError) as exc:
        say(f"no usable cluster manager spec in ${SPEC_ENV}: {exc}")
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    return supervise(
        manager, command, work_dir=Path.cwd(), env=env,
        poll=float(options.get("--poll", 2.0)), kill_wait=float(options.get("--kill-wait", 30.0)),
        lost_after=float(options.get("--lost-after", 300.0)),
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
