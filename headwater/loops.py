"""One base for the server's background loops: the cache poller, the sync scheduler, the search indexer, the job
worker and the job reaper each write one iteration; this module runs it.

Modelled on Prefect's ``LoopService``: a loop has a name, an interval and :meth:`LoopService.run_once`; it runs in a
daemon thread (:meth:`~LoopService.start`, :meth:`~LoopService.stop`, which joins it) or in the calling thread
(:meth:`~LoopService.run`). A failed iteration is logged and counted and the loop goes on, waiting longer after each
failure when it has a ``max_backoff``; :meth:`~LoopService.wake` cuts the current wait short.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

__all__ = ["LoopService"]

T = TypeVar("T")

log = logging.getLogger("headwater.loops")


class LoopService(ABC, Generic[T]):
    """A background loop: :meth:`run_once` every ``interval`` seconds until stopped.

    ``run_first`` runs an iteration as soon as the loop starts (else it waits an interval first); ``max_backoff``
    makes the wait after ``n`` failures in a row ``interval * 2**min(n, 5)``, at most ``max_backoff`` seconds;
    ``stop`` is an event shared with whoever may end the loop (the CLI's signal handler): a loop that shares one
    notices it at its next wait, or at once when its :meth:`pause` waits on it.
    """

    log: logging.Logger = log

    def __init__(
        self,
        *,
        name: str,
        interval: float,
        run_first: bool = False,
        max_backoff: float | None = None,
        join_timeout: float = 10.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.name, self.interval, self.join_timeout = name, interval, join_timeout
        self.run_first, self.max_backoff = run_first, max_backoff
        self.failures = 0  # iterations failed in a row
        self._stop = stop or threading.Event()
        self._wake = threading.Event()
        self._thread = self._new_thread()

    @abstractmethod
    def run_once(self) -> T:
        """One iteration; an exception it raises is logged by :meth:`on_error` and the loop goes on."""

    # -- hooks ------------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Runs in the starting thread before the loop's thread starts (e.g. to read a first position)."""

    def on_stop(self) -> None:
        """Runs after the loop's thread was joined (e.g. to release a lease)."""

    def on_error(self, exc: Exception) -> None:
        """Report a failed iteration (default: logged with its traceback)."""
        self.log.exception("%s: iteration failed (%d in a row)", self.name, self.failures)

    def pause(self, seconds: float) -> None:
        """Wait between iterations: ``seconds``, or until :meth:`wake` or :meth:`stop`."""
        if self._wake.wait(seconds):
            self._wake.clear()

    # -- running ----------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """Whether the loop was asked to stop (an iteration doing many things checks this between them)."""
        return self._stop.is_set()

    def tick(self) -> T | None:
        """One iteration as the loop runs it: its result, or None when it failed (logged and counted)."""
        try:
            result = self.run_once()
        except Exception as exc:  # one bad iteration (a database blip, a bug) must not end the loop
            self.failures += 1
            self.on_error(exc)
            return None
        if self.failures:
            self.log.info("%s recovered after %d failed attempt(s)", self.name, self.failures)
        self.failures = 0
        return result

    def delay(self) -> float:
        """Seconds to wait before the next iteration: the interval, longer after failures when backing off."""
        if not self.failures or self.max_backoff is None:
            return self.interval
        return min(self.max_backoff, self.interval * 2 ** min(self.failures, 5))

    def run(self) -> None:
        """Loop in the calling thread until stopped."""
        if not self.run_first:
            self.pause(self.interval)
        while not self.stopping:
            self.tick()
            if self.stopping:
                break
            self.pause(self.delay())

    def start(self) -> None:
        """Start looping in a daemon thread (a no-op while it runs; a stopped loop starts again)."""
        if self._thread.is_alive():
            return
        self._stop.clear()
        self._wake.clear()
        self.on_start()
        if self._thread.ident is not None:  # a thread runs once: a restart needs a new one
            self._thread = self._new_thread()
        self._thread.start()

    def wake(self) -> None:
        """Run the next iteration now rather than at the end of the current wait."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current iteration, wait for the thread (``join_timeout`` by default), then :meth:`on_stop`."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(self.join_timeout if timeout is None else timeout)
        self.on_stop()

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self.run, name=self.name, daemon=True)
