"""The first process of every job: starts the job's command and outlives nothing it started.

    python -m headwater.jobs.launcher --work-dir DIR [--grace S] [--uid U --gid G] -- ARGV...

The worker starts it as the leader of the job's process group, with the job's environment as a JSON object on
standard input (so nothing the job declares, ``LD_PRELOAD`` or ``PYTHONPATH`` say, affects the launcher itself,
which may run as root). It then

* becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every orphaned descendant, even one that left the
  process group with ``setsid``, is re-parented to it instead of to init, and stays findable as its descendant;
* starts ARGV in DIR (as uid U / gid G with no supplementary groups when given), in its own process group;
* the moment that process ends, writes its exit status into DIR (:func:`~headwater.jobs.exit_status.write_exit_status`;
  the status outlives a worker that died meanwhile);
* ends every descendant still alive (SIGTERM, then SIGKILL after ``--grace`` seconds): nothing a job started
  outlives it;
* on SIGTERM, SIGINT or SIGHUP (a kill, a timeout) sends SIGTERM to every descendant at once;
* with ``--uid``, gives DIR back to its own user once the job is over, so no later job of that uid can read it;
* exits as the job's process did (its code, or the same signal).

It imports nothing of Headwater but :mod:`headwater.jobs.exit_status`, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import psutil

from headwater.jobs.exit_status import EXIT_STATUS_FILE, write_exit_status

__all__ = ["main"]

PR_SET_CHILD_SUBREAPER = 36
_EXIT_CANNOT_RUN = 126
_EXIT_NOT_FOUND = 127
_terminating: list[int] = []


def _say(message: str) -> None:
    print(f"headwater launcher: {message}", file=sys.stderr, flush=True)


def _become_subreaper() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            _say(f"cannot become a child subreaper (errno {ctypes.get_errno()}); setsid children may escape a kill")


def _descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


def _signal_all(processes: list[psutil.Process], sig: int) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)


def _reap() -> None:
    """Collect every child that has ended (orphans re-parented here included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _terminating.append(signum)
    _signal_all(_descendants(), signal.SIGTERM)


def _end_leftovers(grace: float) -> None:
    """SIGTERM every descendant still alive, SIGKILL what is left after ``grace`` seconds, and reap them all."""
    left = _descendants()
    if not left:
        return
    _signal_all(left, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap()
        if not _descendants():
            return
        time.sleep(0.02)
    deadline = time.monotonic() + 10
    while (left := _descendants()) and time.monotonic() < deadline:
        _signal_all(left, signal.SIGKILL)
        time.sleep(0.02)
        _reap()


def _parse(argv: list[str]) -> tuple[Path, float, int | None, int | None, list[str]]:
    if "--" not in argv:
        raise SystemExit(
            "usage: python -m headwater.jobs.launcher --work-dir DIR [--grace S] [--uid U --gid G] -- ARGV"
        )
    split = argv.index("--")
    options = dict(zip(argv[:split:2], argv[1:split:2], strict=True))
    command = argv[split + 1 :]
    if not command or "--work-dir" not in options:
        raise SystemExit("headwater launcher: --work-dir and a command are required")
    uid = int(options["--uid"]) if "--uid" in options else None
    gid = int(options["--gid"]) if "--gid" in options else None
    return Path(options["--work-dir"]), float(options.get("--grace", "5")), uid, gid, command


def _start(command: list[str], env: dict[str, str], work_dir: Path, uid: int | None, gid: int | None) -> int:
    """Start the job's process and wait for it; its exit status (127 or 126, as a shell says, when it could not
    start)."""
    identity: dict[str, object] = {}
    if uid is not None:
        identity = {"user": uid, "group": gid if gid is not None else uid, "extra_groups": []}
    try:
        child = subprocess.Popen(command, cwd=work_dir, env=env, stdin=subprocess.DEVNULL, **identity)  # type: ignore[call-overload]
    except OSError as exc:
        _say(f"could not start {command[0]!r}: {exc}")
        return _EXIT_NOT_FOUND if isinstance(exc, FileNotFoundError) else _EXIT_CANNOT_RUN
    if _terminating:  # killed while starting
        _signal_all(_descendants(), signal.SIGTERM)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # cannot happen while the child lives; a guard against looping forever
            return -signal.SIGKILL
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return child.returncode


def _exit_as(code: int) -> None:
    if code >= 0:
        sys.exit(code)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the job dumped its core already, if it did
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    sys.exit(128 - code)  # a signal that does not end a process


def main(argv: list[str] | None = None) -> None:
    """Run one job's command (see the module's docstring)."""
    work_dir, grace, uid, gid, command = _parse(sys.argv[1:] if argv is None else argv)
    env = json.loads(sys.stdin.buffer.read() or b"{}")
    sys.stdin.close()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    _become_subreaper()
    with contextlib.suppress(OSError):
        (work_dir / EXIT_STATUS_FILE).unlink(missing_ok=True)  # an earlier attempt's, in the same directory
    code = _start(command, {str(k): str(v) for k, v in env.items()}, work_dir, uid, gid)
    try:
        write_exit_status(work_dir, code)
    except OSError as exc:
        _say(f"could not record the exit status {code} in {work_dir}: {exc}")
    _end_leftovers(grace)
    if uid is not None:
        with contextlib.suppress(OSError):
            os.chown(work_dir, os.geteuid(), os.getegid())
    _exit_as(code)


if __name__ == "__main__":
    main()
