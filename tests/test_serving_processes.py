"""``headwater serve --workers 2`` and ``headwater services`` as real processes, on PostgreSQL and SQLite.

Which process answered a request is read from the operating system (the worker process holding the accepted
connection), never from anything the server tells: the server gains no header for tests. Every test stops what it
started by its PIDs and checks that no child outlived its supervisor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from live_http import free_port

from headwater import migrations
from headwater.secrets import generate_key

pytestmark = pytest.mark.integration
MakeDatabase = Callable[..., str]
BACKENDS = ["postgres", "sqlite"]
# Three processes importing Headwater at once: about 8 s on an idle 2-core machine, far more on a loaded one.
# The servers here have databases of their own: any key serves (the suite's is in a conftest this module cannot
# import by name, since every test directory's conftest is a module called conftest).
TEST_SECRETS_KEY = generate_key()
START_SECONDS = 150  # four processes importing Headwater on a 2-core machine running the suite


@dataclass
class Server:
    """A started ``headwater`` process and what it started."""

    process: subprocess.Popen[bytes]
    base: str
    port: int

    def children(self) -> list[psutil.Process]:
        """The supervisor's child processes (uvicorn's workers, the services process, multiprocessing's tracker)."""
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def workers(self) -> list[psutil.Process]:
        """The children listening on the server's port: the serving processes."""
        return [child for child in self.children() if _listens(child, self.port)]

    def services(self) -> list[psutil.Process]:
        """The children started by multiprocessing that do not listen: the background services process."""
        return [
            child
            for child in self.children()
            if "spawn_main" in " ".join(child.cmdline()) and not _listens(child, self.port)
        ]

    def output(self) -> str:
        """What it printed (once it ended)."""
        return self.process.stdout.read().decode() if self.process.stdout else ""


def _listens(process: psutil.Process, port: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in process.net_connections(kind="tcp"))
    except psutil.Error:
        return False


def _environment(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "HEADWATER_DATABASE_URL": database_url,
        "HEADWATER_DATA_DIR": str(data_dir),
        "HEADWATER_SECRETS_KEY": TEST_SECRETS_KEY,
        "HEADWATER_LOG_LEVEL": "warning",
        "HEADWATER_SEARCH_INDEX_INTERVAL": "0.2",
        "HEADWATER_JOBS_POLL_INTERVAL": "0.2",
        "HEADWATER_JOBS_WORKER_ENABLED": "true",
        **extra,
    }


@contextmanager
def started(args: list[str], env: dict[str, str], *, port: int | None = None, ready: bool = True) -> Iterator[Server]:
    """``headwater ARGS`` (with ``--port``); once ``/readyz`` answers when ``ready``. Stopped by PID afterwards,
    with every child it left (a test that failed halfway must not leave a server behind)."""
    port = port or free_port()
    command = [sys.executable, "-m", "headwater.cli", *args]
    if args[0] == "serve":
        command += ["--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", port)
    known: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + START_SECONDS
        while ready:
            try:
                if httpx.get(f"{server.base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, server.output()
            assert time.monotonic() < deadline, f"not ready in {START_SECONDS} s: {_output_so_far(process)}"
            time.sleep(0.1)
        known = server.children()
        yield server
    finally:
        known += server.children()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for child in known:
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                child.kill()


def _output_so_far(process: subprocess.Popen[bytes]) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=20)
    return out.decode()


def _database(backend: str, fresh_database: MakeDatabase) -> str:
    url = fresh_database(backend, "workers")
    migrations.upgrade(url)
    return url


@pytest.fixture(scope="module", params=BACKENDS)
def two_workers(request: pytest.FixtureRequest, fresh_database: MakeDatabase, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """``serve --workers 2`` on each backend, shared by the tests that leave it running."""
    data_dir = tmp_path_factory.mktemp(f"two-workers-{request.param}")
    with started(
        ["serve", "--workers", "2"], _environment(_database(request.param, fresh_database), data_dir)
    ) as server:
        yield server


def _serving_pid(response: httpx.Response, server: Server) -> int:
    """The worker process holding the connection ``response`` came on, as the operating system lists it."""
    client_port = response.extensions["network_stream"].get_extra_info("socket").getsockname()[1]
    for worker in server.workers():
        for connection in worker.net_connections(kind="tcp"):
            if connection.raddr and connection.raddr.port == client_port and connection.laddr.port == server.port:
                return worker.pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def _clients_by_worker(server: Server, wanted: int = 2) -> dict[int, httpx.Client]:
    """One keep-alive client per worker process (each holds one connection, accepted by that worker)."""
    by_pid: dict[int, httpx.Client] = {}
    deadline = time.monotonic() + 20
    while len(by_pid) < wanted:
        assert time.monotonic() < deadline, f"only workers {sorted(by_pid)} answered in 20 s"
        client = httpx.Client(base_url=server.base, limits=httpx.Limits(max_connections=1), timeout=10)
        response = client.get("/healthz")
        assert response.status_code == 200
        pid = _serving_pid(response, server)
        if pid in by_pid:
            client.close()
        else:
            by_pid[pid] = client
    return by_pid


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} not within {timeout:g} s"
        time.sleep(0.05)


def _gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``processes`` still running after ``timeout`` seconds."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_two_workers_both_answer_and_a_write_through_one_is_read_through_the_other(two_workers: Server) -> None:
    server = two_workers
    assert len(server.workers()) == 2 and len(server.services()) == 1, server.children()
    clients = _clients_by_worker(server)
    (writer_pid, writer), (reader_pid, reader) = clients.items()
    created = writer.post("/api/v1/datasets", json={"name": "two.processes"})
    assert created.status_code == 201, created.text
    url = f"/api/v1/datasets/{created.json()['id']}"
    for _ in range(3):  # the reader caches the dataset, then answers from its cache
        assert reader.get(url).json()["description"] is None
    assert _serving_pid(reader.get(url), server) == reader_pid

    patched = writer.patch(url, json={"description": "changed"}, headers={"If-Match": "*"})
    assert patched.status_code == 200, patched.text
    assert _serving_pid(patched, server) == writer_pid
    # The reader's cache learns of the write from the change outbox, polled every 0.25 s.
    _wait_for(lambda: reader.get(url).json()["description"] == "changed", 3, "the other worker seeing the write")
    listed = reader.get("/api/v1/datasets", params={"limit": 100}).json()["items"]
    assert [item["description"] for item in listed if item["id"] == created.json()["id"]] == ["changed"]
    for client in clients.values():
        client.close()


def test_background_services_run_once_in_their_own_process(two_workers: Server, tmp_path: Path) -> None:
    server, runs = two_workers, tmp_path / "runs.txt"
    with httpx.Client(base_url=server.base) as client:
        (services,) = server.services()
        worker_pids = {worker.pid for worker in server.workers()}
        assert client.post("/api/v1/datasets", json={"name": "indexed.once"}).status_code == 201
        found = _wait_for(
            lambda: client.get("/api/v1/search", params={"q": "indexed.once"}).json()["items"], 10, "indexing"
        )
        assert [item["name"] for item in found] == ["indexed.once"]
        owner = client.get("/api/v1/search/status").json()["lease_owner"]
        assert owner is not None and int(owner.split(":")[1]) == services.pid, (owner, worker_pids)

        cluster = {"name": "local", "type": "shell", "tags": ["sched:test"]}
        assert client.post("/api/v1/clusters", json=cluster).status_code == 201
        command = {"name": "sh", "executable": ["/bin/sh", "-c"], "tags": ["type:sh"]}
        assert client.post("/api/v1/commands", json=command).status_code == 201
        job = {
            "name": "once",
            "user": "alice",
            "command_args": [f"echo $$ >> {runs}"],
            "cluster_criteria": [["sched:test"]],
            "command_criteria": ["type:sh"],
        }
        job_id = client.post("/api/v1/jobs", json=job).json()["id"]
        status = _wait_for(
            lambda: (s := client.get(f"/api/v1/jobs/{job_id}").json()["status"]) in {"SUCCEEDED", "FAILED"} and s,
            15,
            "the job ending",
        )
        assert status == "SUCCEEDED"
        execution = client.get(f"/api/v1/jobs/{job_id}/execution").json()
        assert int(execution["worker_id"].split(":")[1]) == services.pid
        time.sleep(1)  # another worker, had one run, would have claimed and run it again by now
        assert len(runs.read_text().splitlines()) == 1
        assert len(server.services()) == 1 and {w.pid for w in server.workers()} == worker_pids


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["TERM", "KILL"])
def test_stopping_the_supervisor_stops_every_child(
    stop: signal.Signals, fresh_database: MakeDatabase, tmp_path: Path
) -> None:
    env = _environment(_database("sqlite", fresh_database), tmp_path)
    with started(["serve", "--workers", "2"], env) as server:
        children = [c for c in server.children() if "resource_tracker" not in " ".join(c.cmdline())]
        assert len(children) == 3, children  # two workers, one services process
        server.process.send_signal(stop)
        server.process.wait(timeout=20)
        # SIGKILL gives the supervisor no chance: its children end because they asked Linux to end them with it.
        assert _gone(children, 20) == [], "children outlived their supervisor"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base}/healthz", timeout=2)
        if stop != signal.SIGKILL:
            assert server.process.returncode == 0, server.output()


def test_api_only_workers_beside_headwater_services(fresh_database: MakeDatabase, tmp_path: Path) -> None:
    env = _environment(_database("postgres", fresh_database), tmp_path)
    with started(["serve", "--workers", "2", "--no-services"], env) as server, httpx.Client(base_url=server.base) as c:
        assert server.services() == [] and len(server.workers()) == 2
        assert c.post("/api/v1/datasets", json={"name": "waits.for.services"}).status_code == 201
        time.sleep(1)  # five index intervals: nobody indexes
        assert c.get("/api/v1/search/status").json()["lag"] >= 1
        with started(["services"], env, ready=False) as services:
            found = _wait_for(
                lambda: c.get("/api/v1/search", params={"q": "waits.for.services"}).json()["items"], 15, "indexing"
            )
            assert [item["name"] for item in found] == ["waits.for.services"]
            owner = c.get("/api/v1/search/status").json()["lease_owner"]
            assert int(owner.split(":")[1]) == services.process.pid
            services.process.send_signal(signal.SIGTERM)
            assert services.process.wait(timeout=20) == 0, services.output()
        assert "search-indexer" in services.output()


def test_services_with_every_service_turned_off_says_so(tmp_path: Path, fresh_database: MakeDatabase) -> None:
    env = _environment(
        _database("sqlite", fresh_database),
        tmp_path,
        HEADWATER_SYNC_SCHEDULER_ENABLED="false",
        HEADWATER_SEARCH_INDEXER_ENABLED="false",
        HEADWATER_JOBS_WORKER_ENABLED="false",
        HEADWATER_JOBS_REAPER_INTERVAL="0",
        HEADWATER_RETENTION_ENABLED="false",
    )
    done = subprocess.run(
        [sys.executable, "-m", "headwater.cli", "services"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "every background service is turned off" in done.stderr and "nothing to run" in done.stderr


def test_a_run_as_user_the_services_cannot_honour_stops_serve_before_any_child_starts(
    tmp_path: Path, fresh_database: MakeDatabase
) -> None:
    env = _environment(
        _database("sqlite", fresh_database), tmp_path, HEADWATER_JOBS_RUN_AS="no_such_user_for_headwater"
    )
    command = [sys.executable, "-m", "headwater.cli", "serve", "--port", str(free_port()), "--workers", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no_such_user_for_headwater" in done.stderr and "Traceback" not in done.stderr + done.stdout
    assert "Started parent process" not in done.stderr + done.stdout
