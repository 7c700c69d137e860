"""The background loop base: iterations at an interval, failures survived with backoff, early wake-ups, and a stop
that joins the thread and runs the loop's last step."""

from __future__ import annotations

import threading
import time

import pytest

from headwater.loops import LoopService


class Counting(LoopService[int]):
    """Counts its iterations; fails the ones listed in ``failing``."""

    def __init__(self, *, failing: set[int] | None = None, **options: object) -> None:
        super().__init__(name="test-loop", **options)  # type: ignore[arg-type]
        self.calls = 0
        self.failing = failing or set()
        self.stopped = 0
        self.ran = threading.Event()

    def run_once(self) -> int:
        self.calls += 1
        self.ran.set()
        if self.calls in self.failing:
            raise RuntimeError(f"iteration {self.calls} fails")
        return self.calls

    def on_stop(self) -> None:
        self.stopped += 1


def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_failed_iteration_is_counted_and_the_next_one_resets_the_count() -> None:
    loop = Counting(interval=1, failing={1, 2})
    assert loop.tick() is None and loop.failures == 1
    assert loop.tick() is None and loop.failures == 2
    assert loop.tick() == 3 and loop.failures == 0


@pytest.mark.parametrize(("failures", "delay"), [(0, 0.5), (1, 1.0), (3, 4.0), (9, 16.0)])
def test_the_wait_after_failures_backs_off_up_to_the_cap(failures: int, delay: float) -> None:
    loop = Counting(interval=0.5, max_backoff=30)
    loop.failures = failures
    assert loop.delay() == delay
    plain = Counting(interval=0.5)
    plain.failures = failures
    assert plain.delay() == 0.5  # no backoff asked for


def test_the_thread_survives_failures_and_stop_joins_it() -> None:
    loop = Counting(interval=0.01, failing={1, 3}, run_first=True)
    loop.start()
    wait_for(lambda: loop.calls >= 5)
    loop.stop()
    assert not loop._thread.is_alive()  # noqa: SLF001
    assert loop.stopped == 1


def test_a_loop_that_waits_first_runs_only_after_an_interval_unless_woken() -> None:
    loop = Counting(interval=60)
    loop.start()
    try:
        assert not loop.ran.wait(0.2)  # waits its interval before the first iteration
        loop.wake()
        assert loop.ran.wait(5)
    finally:
        started = time.monotonic()
        loop.stop()
    assert time.monotonic() - started < 5  # the stop cut the minute's wait short


def test_a_stopped_loop_starts_again() -> None:
    loop = Counting(interval=0.01, run_first=True)
    loop.start()
    loop.start()  # a no-op while it runs
    wait_for(lambda: loop.calls >= 1)
    loop.stop()
    calls = loop.calls
    loop.start()
    wait_for(lambda: loop.calls > calls)
    loop.stop()
    assert loop.stopped == 2


def test_a_shared_stop_event_ends_a_loop_run_in_the_calling_thread() -> None:
    stop = threading.Event()
    loop = Counting(interval=0.01, run_first=True, stop=stop)
    runner = threading.Thread(target=loop.run)
    runner.start()
    wait_for(lambda: loop.calls >= 2)
    stop.set()
    runner.join(timeout=5)
    assert not runner.is_alive()
