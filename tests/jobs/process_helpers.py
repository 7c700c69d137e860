"""Helpers of the kill tests of real engines: the live processes of a job, found in /proc, and whether a pid still runs.

A job's processes are found two ways, because a kill test must not miss one that escaped: every process whose
environment carries the job's ``HEADWATER_JOB_ID`` (the worker sets it on the job's leader; the launcher script,
its JVM and the Python processes the JVM starts inherit it), and every descendant of the job's leader pid.
"""

from __future__ import annotations

import os
from pathlib import Path


def _stat(pid: int) -> tuple[str, int] | None:
    """The state letter and parent pid of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def gone(pid: int) -> bool:
    """The process no longer runs (gone, or a zombie waiting for a reaper that is not us)."""
    stat = _stat(pid)
    return stat is None or stat[0] in {"Z", "X"}


def cmdline(pid: int) -> str:
    """The command line of ``pid`` ("" when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def job_processes(job_id: str, leader: int | None = None) -> dict[int, str]:
    """Every live process of job ``job_id`` (by its environment, and below ``leader``): pid -> command line."""
    marker = f"HEADWATER_JOB_ID={job_id}".encode()
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _stat(pid)
        if stat is None or stat[0] in {"Z", "X"}:
            continue
        parents[pid] = stat[1]
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\x00"):
            found.add(pid)
    if leader is not None and leader in parents:
        found.add(leader)
    # Descendants of anything found so far, whatever their environment.
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return {pid: cmdline(pid) for pid in found if not gone(pid)}
