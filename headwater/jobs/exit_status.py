"""A job's exit status kept in its directory, so that it outlives the worker that started the job.

The process that waits for a job's main process (its launcher) writes the exit status here the moment that
process ends; a worker that finds the job's original worker gone reads it and records the job from it instead
of as "worker lost". The file is written atomically (a temporary file renamed into place): a reader sees a
whole status or none.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["EXIT_STATUS_FILE", "clear_exit_status", "read_exit_status", "write_atomically", "write_exit_status"]

EXIT_STATUS_FILE = "exit-status"


def write_atomically(work_dir: Path, name: str, text: str) -> None:
    """Write ``text`` to ``work_dir/name`` through a temporary file renamed into place (synced first): a reader
    sees the whole new content or the previous one, never a part."""
    handle, temporary = tempfile.mkstemp(dir=work_dir, prefix=f".{name}-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, work_dir / name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def write_exit_status(work_dir: Path, code: int) -> None:
    """Record ``code`` (a negative number -N for death by signal N, as subprocess reports it) in ``work_dir``."""
    write_atomically(work_dir, EXIT_STATUS_FILE, f"{code}\n")


def read_exit_status(work_dir: Path) -> int | None:
    """The exit status recorded in ``work_dir``, or None when none was (still running, or never started)."""
    try:
        text = (work_dir / EXIT_STATUS_FILE).read_text().strip()
    except OSError:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def clear_exit_status(work_dir: Path) -> None:
    """Forget the status in ``work_dir``: a retry runs in the same directory, and an earlier attempt's exit status
    must not be read as its own."""
    with contextlib.suppress(OSError):
        (work_dir / EXIT_STATUS_FILE).unlink()
