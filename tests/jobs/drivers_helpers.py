"""Helpers of the cluster-manager tests: a submitter that prints a recorded spark-submit output, the supervisor
run as the job's process, and waiting for what it writes into the job's directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from headwater.jobs.drivers import SPEC_ENV, AppRecord, read_app_record

REPO = Path(__file__).resolve().parents[2]


def recorded_submitter(directory: Path, output: str, exit_code: int = 0) -> list[str]:
    """The argv of a stand-in spark-submit that prints ``output`` (as spark-submit prints its log) and exits."""
    script = directory / "spark-submit-standin.py"
    script.write_text(
        textwrap.dedent(f"""\
            import sys
            sys.stdout.write({output!r})
            sys.exit({exit_code})
        """)
    )
    return [sys.executable, str(script)]


def start_supervisor(
    manager: str, config: dict[str, Any], argv: list[str], work_dir: Path, *, poll: float = 0.05, kill_wait: float = 10
) -> subprocess.Popen[str]:
    """``python -m headwater.jobs.drivers.supervise`` in ``work_dir``, as the worker starts a job's process (the
    spec in its environment; this checkout first on its path, so it imports the code under test)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, SPEC_ENV: json.dumps({"manager": manager, "config": config}), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "headwater.jobs.drivers.supervise", "--poll", str(poll), "--kill-wait", str(kill_wait),
         "--lost-after", "5", "--", *argv],
        cwd=work_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_record(work_dir: Path, state: str, timeout: float = 20) -> AppRecord:
    """The job's app record once it says ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = read_app_record(work_dir)
        if record is not None and record.state == state:
            return record
        time.sleep(0.02)
    raise AssertionError(f"no {state} record in {work_dir} within {timeout} s: {read_app_record(work_dir)}")


def finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    """The supervisor's exit code, stdout and stderr once it ended."""
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr
