"""The fast tier's guard: a test without the ``integration`` marker starts no server.

A server is anything a test starts that listens on a TCP port: a thread of the test process (a stand-in, uvicorn)
or a process it spawns (a Kafka broker, a Hive Metastore, the Elasticsearch emulator, Chromium). PostgreSQL runs
before the suite and is not the test's. So ``pytest -m "not integration"`` stays a tier that needs nothing but
PostgreSQL, the guard fails an unmarked test (in every run, not only the fast tier: a forgotten marker is a bug
either way) that

- requests a fixture named in :data:`SERVER_FIXTURES` (before the fixture runs, so nothing starts);
- calls ``listen()`` on a TCP socket in the test process (refused at the call);
- has a descendant process listening on TCP that was not there before its setup (looked at after setup and after
  the call, and sampled while they run, which catches a server started and stopped inside the test).

Short-lived subprocesses (the ``headwater`` CLI, a shell job, ``grep``) are fine: they listen on nothing.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any

import psutil
import pytest

MARKER = "integration"
# Fixtures that start a server (or hand out one already running, which an earlier test may have started).
SERVER_FIXTURES = frozenset(
    {
        "elasticsearch_emulator",
        "endpoint",
        "hive_image",
        "hive_metastore",
        "k8s_api",
        "kafka_broker",
        "kafka_server",
        "oidc_app",
        "oidc_client",
        "oidc_provider",
        "oidc_stack",
        "private_kafka_broker",
        "rest_catalog",
        "rm_standin",
        "schema_registry_standin",
        "scratch_metastore",
    }
)
SAMPLE_SECONDS = 0.1
TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class ServerInFastTier(RuntimeError):
    """Raised by ``listen()`` on a TCP socket while a test without the integration marker runs."""


def _children(pid: int) -> list[int] | None:
    """The pids of a process's children from /proc/<pid>/task/*/children; None where Linux does not offer it."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None if pid == os.getpid() else []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found.extend(int(child) for child in listing.read().split())
        except FileNotFoundError:
            if pid == os.getpid():
                return None
        except OSError:  # the thread or the process ended meanwhile
            continue
    return found


def descendants() -> list[psutil.Process]:
    """This process's descendants. Read from /proc where it can (a few small files, where psutil scans every
    process on the machine: about 4 ms a call here, three calls a test), otherwise from psutil."""
    pending = _children(os.getpid())
    if pending is None:
        try:
            return psutil.Process().children(recursive=True)
        except psutil.Error:
            return []
    found: list[psutil.Process] = []
    while pending:
        pid = pending.pop()
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            continue
        pending.extend(_children(pid) or [])
    return found


def listening_descendants() -> dict[int, str]:
    """Descendant processes of this one that listen on TCP: pid -> what and where."""
    found: dict[int, str] = {}
    for child in descendants():
        try:
            for connection in child.net_connections(kind="tcp"):
                if connection.status == psutil.CONN_LISTEN:
                    address = connection.laddr
                    found[child.pid] = (
                        f"process {child.name()} (pid {child.pid}) listening on {address.ip}:{address.port}"
                    )
                    break
        except psutil.Error:  # gone, or not ours to inspect: a process that ended listens on nothing
            continue
    return found


class ServerGuard:
    """The pytest plugin: watches each unmarked test's setup and call, and fails it when it starts a server."""

    def __init__(self) -> None:
        self.watching: pytest.Item | None = None
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._baseline: set[int] = set()
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._real_listen: Callable[..., None] = socket.socket.listen

    # ------------------------------------------------------------------------ socket.listen

    def install(self) -> None:
        """Route ``socket.socket.listen`` through the guard."""
        guard = self

        def listen(sock: socket.socket, *args: Any) -> None:
            if guard.watching is not None and sock.family in TCP_FAMILIES:
                host, port = sock.getsockname()[:2]
                problem = f"listen() on TCP {host}:{port} in the test process"
                guard._record(problem)
                raise ServerInFastTier(f"{problem}: {guard._advice(guard.watching)}")
            guard._real_listen(sock, *args)

        socket.socket.listen = listen  # type: ignore[method-assign]

    def uninstall(self) -> None:
        """Give ``socket.socket.listen`` back."""
        socket.socket.listen = self._real_listen  # type: ignore[method-assign]

    def pytest_unconfigure(self) -> None:
        """Undo the patch when the session ends."""
        self.uninstall()

    # ----------------------------------------------------------------------------- phases

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, None, None]:
        """Refuse server fixtures up front; watch what setup starts."""
        if item.get_closest_marker(MARKER) is not None:
            return (yield)
        self._refuse_server_fixtures(item, getattr(item, "fixturenames", ()))
        self._baseline = set(listening_descendants())
        result = yield from self._watch(item)
        # A fixture can ask for a server with request.getfixturevalue(), which the item's fixturenames do not list.
        request = getattr(item, "_request", None)
        self._refuse_server_fixtures(item, getattr(request, "fixturenames", ()))
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """Watch what the test body starts."""
        return (yield from self._watch(item))

    def _refuse_server_fixtures(self, item: pytest.Item, names: Iterable[str]) -> None:
        used = sorted(SERVER_FIXTURES.intersection(names))
        if used:
            pytest.fail(f"{self._advice(item)}; it uses the server fixture(s) {', '.join(used)}", pytrace=False)

    def _watch(self, item: pytest.Item) -> Generator[None, None, None]:
        if item.get_closest_marker(MARKER) is not None:
            return (yield)
        self._begin(item)
        try:
            result = yield
        except BaseException:
            problems = self._end()
            if problems:
                pytest.fail(self._report(item, problems), pytrace=False)
            raise
        problems = self._end()
        if problems:
            pytest.fail(self._report(item, problems), pytrace=False)
        return result

    def _begin(self, item: pytest.Item) -> None:
        self.watching = item
        self.problems = []
        self._stop.clear()
        self._sampler = threading.Thread(target=self._sample, name="server-guard", daemon=True)
        self._sampler.start()

    def _end(self) -> list[str]:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        self._check_descendants()
        self.watching = None
        with self._lock:
            return list(dict.fromkeys(self.problems))

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._check_descendants()

    def _check_descendants(self) -> None:
        for pid, what in listening_descendants().items():
            if pid not in self._baseline:
                self._record(what)

    def _record(self, problem: str) -> None:
        with self._lock:
            self.problems.append(problem)

    @staticmethod
    def _advice(item: pytest.Item) -> str:
        return (
            f"{item.nodeid} starts a server but is not marked {MARKER} "
            f'(the fast tier, -m "not {MARKER}", starts none): mark it @pytest.mark.{MARKER}'
        )

    def _report(self, item: pytest.Item, problems: list[str]) -> str:
        return f"{self._advice(item)}; seen: {'; '.join(problems)}"


def install(config: pytest.Config) -> ServerGuard:
    """Register the guard with this pytest run (from a conftest's ``pytest_configure``)."""
    guard = ServerGuard()
    guard.install()
    config.pluginmanager.register(guard, "server-guard")
    return guard
