"""Keeping a job away from the server and from other jobs: the environment it gets, the OS user it runs as, and
the permissions of its directory and of the worker's data directory (docs/security/jobs.md).

* **Environment.** A job gets an allowlist of the worker's variables (:data:`PASSED_ENV`: the locale, the time
  zone, ``PATH``, ``JAVA_HOME``, the engines' homes and configuration directories, plus the names listed in
  ``HEADWATER_JOBS_PASS_ENV``), ``HOME`` set to its own directory, and what its engine, applications and request
  declare. Nothing else of the server's environment, and never a ``HEADWATER_*`` setting.
* **Run as.** ``HEADWATER_JOBS_RUN_AS`` names an unprivileged user (a name, a uid, or a range of uids ``lo-hi``
  giving each concurrent job a uid of its own) that a worker running as root starts job processes as.
* **Directories.** A job's directory is 0700 and owned by the job's user while it runs; when it ends the launcher
  gives it back to the worker's user, so no later job of the same uid can read it. With a run-as user, the data
  directory is 0711 (it can be passed through, not listed), the SQLite database, its journals and the secrets key
  file are 0600, and the file cache's directory 0700.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PASSED_ENV",
    "Identity",
    "JobIsolation",
    "RunAsError",
    "parse_run_as",
    "secure_work_dir",
    "worker_isolation",
]

# What a job gets of the worker's own environment when it is set there. Engines need the homes and conf dirs of
# their installations (spark-submit and flink are shell scripts reading them); nothing here holds a secret.
PASSED_ENV = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_NUMERIC",
    "LC_TIME",
    "TZ",
    "TMPDIR",
    "JAVA_HOME",
    "SPARK_HOME",
    "SPARK_CONF_DIR",
    "PYSPARK_PYTHON",
    "PYSPARK_DRIVER_PYTHON",
    "HADOOP_HOME",
    "HADOOP_CONF_DIR",
    "YARN_CONF_DIR",
    "HIVE_CONF_DIR",
    "FLINK_HOME",
    "FLINK_CONF_DIR",
)
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Files of the data directory no job may read (the embedded database and its journals, the secrets key).
_PRIVATE_FILES = ("headwater.db", "headwater.db-wal", "headwater.db-shm", "headwater.db-journal", "secrets.key")


class RunAsError(ValueError):
    """``HEADWATER_JOBS_RUN_AS`` cannot be used: malformed, an unknown user, root, or a worker that is not root."""


@dataclass(frozen=True)
class Identity:
    """The OS user and group a job's processes run as (``name`` when the uid has a passwd entry)."""

    uid: int
    gid: int
    name: str | None


@dataclass(frozen=True)
class RunAs:
    """A parsed ``HEADWATER_JOBS_RUN_AS``: one identity, or a range of uids handed out one per running job."""

    first: int
    last: int

    def candidates(self) -> range:
        """Every uid jobs may run as."""
        return range(self.first, self.last + 1)


def _identity(uid: int) -> Identity:
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return Identity(uid=uid, gid=uid, name=None)  # a bare uid: its own number as its group
    return Identity(uid=uid, gid=entry.pw_gid, name=entry.pw_name)


def parse_run_as(value: str) -> RunAs:
    """Read a user name, a uid or a range ``lo-hi`` of uids; root (uid 0) is refused."""
    text = value.strip()
    if "-" in text and all(part.strip().isdigit() for part in text.split("-", 1)):
        low, high = (int(part) for part in text.split("-", 1))
        if low > high:
            raise RunAsError(f"HEADWATER_JOBS_RUN_AS={value!r}: the range's first uid is above its last")
        run_as = RunAs(low, high)
    elif text.isdigit():
        run_as = RunAs(int(text), int(text))
    else:
        try:
            uid = pwd.getpwnam(text).pw_uid
        except KeyError:
            raise RunAsError(
                f"HEADWATER_JOBS_RUN_AS={value!r}: no such user on this host (create it, e.g. "
                "`useradd --system --no-create-home --shell /usr/sbin/nologin headwater-jobs`, or give a uid)"
            ) from None
        run_as = RunAs(uid, uid)
    if run_as.first == 0:
        raise RunAsError(f"HEADWATER_JOBS_RUN_AS={value!r}: jobs must not run as root (uid 0)")
    return run_as


class JobIsolation:
    """How one worker isolates its jobs: the variables passed through and the identities it starts jobs as."""

    def __init__(self, *, run_as: str | None = None, pass_env: Iterable[str] = ()) -> None:
        self.pass_env = tuple(dict.fromkeys([*PASSED_ENV, *pass_env]))
        self.run_as = parse_run_as(run_as) if run_as else None
        if self.run_as is not None and os.geteuid() != 0:
            raise RunAsError(
                f"HEADWATER_JOBS_RUN_AS is set, but this worker runs as uid {os.geteuid()}, not root: only root can "
                "start processes as another user. Run the worker as root, or unset HEADWATER_JOBS_RUN_AS."
            )
        if self.run_as is not None and _sysctl("fs/protected_hardlinks") == "0":
            # Else a job could hard-link the database (its name is known) into its directory and download it.
            raise RunAsError(
                "HEADWATER_JOBS_RUN_AS needs fs.protected_hardlinks=1 (sysctl -w fs.protected_hardlinks=1), so a "
                "job cannot hard-link files it cannot read into its directory"
            )

    def identity(self, in_use: Collection[int]) -> Identity | None:
        """The identity of a job about to start (None: the worker's own); ``in_use`` are the uids of this
        worker's running jobs. In a range, the first uid no running job and no live process has."""
        if self.run_as is None:
            return None
        candidates = self.run_as.candidates()
        if len(candidates) == 1:
            return _identity(candidates[0])
        busy = set(in_use) | _uids_with_processes()
        for uid in candidates:
            if uid not in busy:
                return _identity(uid)
        raise RunAsError(
            f"every uid of HEADWATER_JOBS_RUN_AS {self.run_as.first}-{self.run_as.last} is in use: widen the range "
            "to at least HEADWATER_JOBS_WORKER_SLOTS uids"
        )

    def environment(self, declared: Mapping[str, str], *, work_dir: Path, identity: Identity | None) -> dict[str, str]:
        """A job's environment: the allowlisted variables of the worker, ``HOME``, then ``declared`` (engine,
        applications, request: later wins), which may override any of them."""
        env = {name: os.environ[name] for name in self.pass_env if name in os.environ}
        env.setdefault("PATH", _DEFAULT_PATH)
        env["HOME"] = str(work_dir)
        if identity is not None and identity.name:
            env["USER"] = env["LOGNAME"] = identity.name
        env.update(declared)
        return env

    def protect_data_dir(self, data_dir: Path, database_file: Path | None) -> None:
        """With a run-as user: the data directory passable but not listable, the database, its journals and the
        secrets key readable by the worker's user only, the file cache's metadata out of reach."""
        if self.run_as is None:
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o711)
        (data_dir / "cache").mkdir(exist_ok=True)
        os.chmod(data_dir / "cache", 0o700)
        files = [data_dir / name for name in _PRIVATE_FILES]
        if database_file is not None:
            files += [
                database_file.with_name(database_file.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")
            ]
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(path, 0o600)


def secure_work_dir(work_dir: Path, identity: Identity | None) -> None:
    """Make a prepared job directory private to the job: 0700, and (run as another user) owned by it with what
    the worker wrote in it. Files with other hard links (the file cache's copies) keep their owner."""
    jobs_dir = work_dir.parent
    with contextlib.suppress(OSError):
        os.chmod(jobs_dir, 0o711)  # other jobs' directory names are not listed
    os.chmod(work_dir, 0o700)
    if identity is None:
        return
    for root, dirs, files in os.walk(work_dir):
        for name in [*dirs, *files]:
            path = os.path.join(root, name)
            info = os.lstat(path)
            if info.st_nlink > 1 and stat.S_ISREG(info.st_mode):
                continue  # a hard link to the cache: changing its owner would let this job change others' copy
            os.lchown(path, identity.uid, identity.gid)
    os.chown(work_dir, identity.uid, identity.gid)


def _sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return None


def _uids_with_processes() -> set[int]:
    """The real uids of every live process on the host (a uid an orphan of a lost worker still uses is busy)."""
    uids: set[int] = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                uids.add(os.stat(entry.path).st_uid)
    return uids


def worker_isolation(data_dir: Path, bind: object, *, run_as: str | None, pass_env: Sequence[str]) -> JobIsolation:
    """A worker's job isolation, its run-as user checked now (a worker that cannot honour it stops) and its data
    directory (with the SQLite database ``bind`` opens, if that is one) protected from the jobs."""
    from sqlalchemy import Engine

    isolation = JobIsolation(run_as=run_as, pass_env=pass_env)
    url = bind.url if isinstance(bind, Engine) else None
    database = (
        Path(url.database).resolve()
        if url is not None and url.get_backend_name() == "sqlite" and url.database
        else None
    )
    isolation.protect_data_dir(data_dir, database)
    return isolation
