"""Application files a worker fetches over HTTP(S), kept in a per-host cache (Genie's dependency cache).

An application may name its dependencies and configs by ``http://`` or ``https://`` URL (an artifact store, an
S3 bucket behind its HTTPS endpoint, a web server) instead of a path on the worker's host. A worker fetches each
URL once into ``<data dir>/cache/files/<sha256 of the URL>/data/<file name>`` and, for each later job, asks the
server whether it changed (``If-None-Match`` / ``If-Modified-Since``); jobs get a hard link to the cached copy (a
copy across file systems). When the server cannot be reached but a copy is cached, the copy is used and a warning
logged: a flaky artifact store does not fail jobs whose files it served before. Entries no job used for the
jobs' retention period are removed with the expired job directories.

A URL's entry is a folder: ``data/<file name>`` and ``meta.json`` (its URL, ETag and Last-Modified). A download
goes to a temporary file renamed into place, so a job never sees half a file, and two workers on one
host never both write the same path. A response that is not 200, a body over ``max_bytes`` or a stalled
transfer (``timeout`` seconds without a byte) fails the job's preparation with a message naming the URL.

Every fetch obeys the egress policy (:mod:`headwater.egress`): http(s) only, addresses checked when connected and
after every redirect, local files only from the allowed directories; a refused URL never uses a cached copy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from headwater.egress import EgressPolicy, EgressRefused, Unreachable, default_policy, http_client, stream

__all__ = ["FileCache", "FileFetchError", "file_name", "is_remote"]

log = logging.getLogger("headwater.jobs.files")

_META = "meta.json"  # beside the data/ folder, so no file name can collide with it


class FileFetchError(Exception):
    """A remote application file that could not be fetched; the message names the URL and why."""


def is_remote(ref: str) -> bool:
    """Whether an application file reference is an HTTP(S) URL (else a local path or ``file://`` URI)."""
    return ref.startswith(("http://", "https://"))


def file_name(ref: str) -> str:
    """The name a referenced file gets in a job's application directory: the last segment of its path (of the
    URL's path, without its query, for a URL)."""
    path = unquote(urlsplit(ref).path) if is_remote(ref) else ref
    return path.rstrip("/").rsplit("/", 1)[-1]


class FileCache:
    """The per-host cache of remote application files."""

    def __init__(
        self,
        directory: Path,
        *,
        timeout: float = 60.0,
        max_bytes: int = 2 * 1024**3,
        policy: EgressPolicy | None = None,
    ) -> None:
        self.directory = directory
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.policy = policy or default_policy()

    def fetch(self, url: str) -> Path:
        """The cached copy of ``url``, fetched or revalidated now (read-only: jobs get hard links to it); for a local
        path or ``file://`` URI, the file itself once the egress policy allowed its directory."""
        if not is_remote(url):
            try:
                return self.policy.check_file(url)
            except EgressRefused as exc:
                raise FileFetchError(exc.message) from None
        folder = self.directory / hashlib.sha256(url.encode()).hexdigest()[:32]
        folder.mkdir(parents=True, exist_ok=True)
        with _entry_lock(folder):  # one fetch of a URL at a time on this host, workers and threads alike
            try:
                return self._fetch(url, folder)
            except FileFetchError:
                raise
            except Exception as exc:  # anything httpx or the file system raises, named for the job's message
                raise FileFetchError(f"could not fetch {url}: {exc}") from exc

    def remove_unused(self, older_than: float) -> int:
        """Remove the entries no job has used for ``older_than`` seconds; how many were removed. A file that jobs
        keep using is never removed (each use counts), and one removed is fetched again by the next job. Partial
        downloads a killed worker left behind go too."""
        if not self.directory.is_dir():
            return 0
        cutoff = time.time() - older_than
        removed = 0
        for folder in self.directory.iterdir():
            with _entry_lock(folder, wait=False) as held:
                if not held:
                    continue  # a job is fetching it right now: it is in use
                for part in folder.glob(".part-*"):
                    with contextlib.suppress(OSError):
                        if part.stat().st_mtime < time.time() - 3600:
                            part.unlink()
                try:
                    used = (folder / _META).stat().st_mtime
                except OSError:
                    used = folder.stat().st_mtime if folder.exists() else 0.0
                if used < cutoff:
                    shutil.rmtree(folder / "data", ignore_errors=True)
                    with contextlib.suppress(OSError):
                        (folder / _META).unlink()
                    removed += 1
        return removed

    def _fetch(self, url: str, folder: Path) -> Path:
        name = file_name(url)
        if name in ("", ".", "..") or "\x00" in name:
            raise FileFetchError(f"{url} names no file")  # refused at submission; a guard all the same
        target = folder / "data" / name
        meta = _read_meta(folder)
        cached = target.is_file() and meta.get("url") == url
        headers: dict[str, str] = {}
        if cached:
            if meta.get("etag"):
                headers["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                headers["If-Modified-Since"] = meta["last_modified"]
        try:
            with (
                http_client(self.policy, timeout=httpx.Timeout(self.timeout, connect=10.0)) as client,
                stream(client, self.policy, url, headers=headers) as response,
            ):
                if response.status_code == 304 and cached:
                    _touch(folder)
                    return target
                if response.status_code != 200:
                    raise FileFetchError(f"GET {url} answered {response.status_code} {response.reason_phrase}")
                target.parent.mkdir(parents=True, exist_ok=True)
                self._download(url, response, folder, target)
                _write_meta(folder, url, response)
                return target
        except EgressRefused as exc:
            raise FileFetchError(f"{url} is refused: {exc.message}") from None
        except (httpx.HTTPError, Unreachable) as exc:
            reason = exc.message if isinstance(exc, Unreachable) else str(exc)
            if cached:
                log.warning("could not revalidate %s (%s); using the copy cached on this host", url, reason)
                _touch(folder)
                return target
            raise FileFetchError(f"could not fetch {url}: {reason}") from exc

    def _download(self, url: str, response: httpx.Response, folder: Path, target: Path) -> None:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise FileFetchError(
                f"{url} is {declared} bytes; the limit is {self.max_bytes} (HEADWATER_JOBS_FILE_MAX_BYTES)"
            )
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".part-")
        try:
            size = 0
            with os.fdopen(handle, "wb") as out:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FileFetchError(
                            f"{url} is larger than {self.max_bytes} bytes (HEADWATER_JOBS_FILE_MAX_BYTES)"
                        )
                    out.write(chunk)
            # Read-only for the jobs that get a hard link to it (a job appending to a config must not change the
            # copy the next jobs get); executable, as a script or a launcher may need to be.
            os.chmod(temporary, 0o555)
            os.replace(temporary, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


@contextlib.contextmanager
def _entry_lock(folder: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on a cache entry across the processes and threads of this host (flock on its lock file);
    yields whether it is held (always, when ``wait``)."""
    try:
        handle = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(handle)  # closing the descriptor releases the lock


def _touch(folder: Path) -> None:
    # The metadata file's mtime is when a job last used the entry (what remove_unused goes by).
    with contextlib.suppress(OSError):
        os.utime(folder / _META)


def _read_meta(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / _META).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(folder: Path, url: str, response: httpx.Response) -> None:
    meta = {"url": url, "etag": response.headers.get("etag"), "last_modified": response.headers.get("last-modified")}
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".meta-")
    with os.fdopen(handle, "w") as out:
        json.dump({k: v for k, v in meta.items() if v}, out)
    os.replace(temporary, folder / _META)
