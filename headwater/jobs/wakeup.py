"""How an idle job worker waits: until a job is queued (PostgreSQL LISTEN/NOTIFY), one of its processes
exits (a pidfd per process), or the poll interval passes; whichever comes first.

Without these a worker sleeps its whole poll interval between loops, which adds half an interval to the
start of every job and caps throughput at ``slots / interval`` for short jobs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine

from headwater.jobs.service import JOBS_CHANNEL

__all__ = ["Wakeup", "open_pidfd"]

log = logging.getLogger("headwater.jobs.wakeup")


def open_pidfd(pid: int) -> int | None:
    """A file descriptor readable once ``pid`` exits (Linux 5.3+); None where unsupported."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


class Wakeup:
    """Waits for notifications on ``channel`` (queued jobs by default) and process exits; falls back to sleeping
    where neither is available."""

    def __init__(self, engine: Engine | None, *, channel: str = JOBS_CHANNEL) -> None:
        self._channel = channel
        self._url = (
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            if engine is not None and engine.dialect.name == "postgresql"
            else None
        )
        self._connection: Any = None
        self._retry_at = 0.0

    def _listener(self) -> Any:
        if self._url is None or self._connection is not None or time.monotonic() < self._retry_at:
            return self._connection
        try:
            import psycopg

            self._connection = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            self._connection.execute(f"LISTEN {self._channel}")
        except Exception as exc:  # the database may be briefly down: poll meanwhile, retry later
            log.warning("cannot LISTEN on %s (polling meanwhile): %s", self._channel, exc)
            self._drop()
            self._retry_at = time.monotonic() + 30
        return self._connection

    def wait(self, timeout: float, pidfds: Iterable[int] = ()) -> None:
        """Return when notified, when a process behind ``pidfds`` exits, or after ``timeout`` seconds."""
        listener = self._listener()
        with selectors.DefaultSelector() as selector:
            for fd in pidfds:
                selector.register(fd, selectors.EVENT_READ)
            if listener is not None:
                selector.register(listener.pgconn.socket, selectors.EVENT_READ, data="pg")
            if not selector.get_map():
                time.sleep(timeout)
                return
            ready = selector.select(timeout)
        if listener is not None and any(key.data == "pg" for key, _ in ready):
            self._consume(listener)

    def _consume(self, listener: Any) -> None:
        try:
            listener.pgconn.consume_input()
            while listener.pgconn.notifies() is not None:
                pass
        except Exception as exc:  # a dropped connection reads as readable: reconnect on the next wait
            log.warning("lost the LISTEN connection: %s", exc)
            self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
        self._connection = None

    def close(self) -> None:
        """Close the LISTEN connection."""
        self._drop()
