"""``headwater serve --workers N``: a supervisor of serving processes and of the background services process.

``serve`` with more than one worker supervises N uvicorn processes answering on the one socket it bound, and one
process running the shared background services (:mod:`headwater.services`), which must not run once per worker.
The supervisor is uvicorn's own (it restarts a worker that dies, and stops all of them on SIGINT or SIGTERM); it
also starts the services process before the workers, restarts it when it dies, and stops it with them. Every child
asks Linux to end it when the supervisor ends, so one killed outright (SIGKILL) leaves no orphan serving the port.
docs/operate/processes.md says how many workers to run and how to run the services elsewhere.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

import typer
from pydantic import SecretStr
from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from headwater.cli.common import console
from headwater.jobs.isolation import JobIsolation
from headwater.secrets import SecretVault
from headwater.services import services_process
from headwater.settings import Settings

__all__ = ["Supervisor", "prepare_for_workers", "serve_workers"]

log = logging.getLogger("uvicorn.error")  # the supervisor's own lines go where uvicorn's go
_spawn = multiprocessing.get_context("spawn")  # as uvicorn starts its workers: no state forked from the parent
SERVING_APP = "headwater.app:serving_app"
SERVICES_RESTART_SECONDS = 5.0  # at most one restart of a dying services process this often
SERVICES_STOP_SECONDS = 60.0  # the job worker gives its jobs the kill grace; then the process is killed


class Supervisor(Multiprocess):
    """uvicorn's supervisor of serving processes, supervising the services process too (when ``services``)."""

    def __init__(self, config: Config, sockets: list[socket.socket], *, settings: Settings, services: bool) -> None:
        super().__init__(config, sockets)
        self.settings, self.run_services = settings, services
        self.services: BaseProcess | None = None
        self.services_ready: ProcessEvent | None = None
        self.failed = False
        self.services_were_ready = False  # once they were, a services process that dies is restarted
        self._services_started = 0.0

    def _start_services(self) -> BaseProcess:
        ready = _spawn.Event()
        process = _spawn.Process(target=services_process, args=(self.settings, ready), name="headwater-services")
        process.start()
        self.services, self.services_ready, self._services_started = process, ready, time.monotonic()
        log.info("Started background services process [%s]", process.pid)
        return process

    def init_processes(self) -> None:
        """The services process and the workers, starting side by side."""
        if self.run_services:
            self._start_services()
        super().init_processes()

    def keep_subprocess_alive(self) -> None:
        """Restart a dead worker (uvicorn's way) or a dead services process (at most every few seconds); services
        that died before they ever started (a database they cannot use, a bad setting) stop everything."""
        super().keep_subprocess_alive()
        process, ready = self.services, self.services_ready
        if ready is not None and ready.is_set():
            self.services_were_ready = True
        if self.should_exit.is_set() or process is None or process.is_alive():
            return
        if not self.services_were_ready:
            log.error("The background services did not start (exit code %s, see above); stopping.", process.exitcode)
            self.failed = True
            self.should_exit.set()
            return
        if time.monotonic() - self._services_started < SERVICES_RESTART_SECONDS:
            return
        log.error(
            "Background services process [%s] ended (exit code %s); starting it again", process.pid, process.exitcode
        )
        self._start_services()

    def terminate_all(self) -> None:
        """SIGTERM to the services process and every worker."""
        if self.services is not None and self.services.is_alive():
            assert self.services.pid is not None
            os.kill(self.services.pid, signal.SIGTERM)
        super().terminate_all()

    def join_all(self) -> None:
        """Wait for the workers, then for the services process (killed when it takes too long)."""
        super().join_all()
        if self.services is not None:
            self.services.join(SERVICES_STOP_SECONDS)
            if self.services.is_alive():
                log.error("Background services process [%s] did not stop: killing it", self.services.pid)
                self.services.kill()
                self.services.join()


def prepare_for_workers(settings: Settings) -> Settings:
    """Settings every process of a multi-process server agrees on: the embedded database's key file made once, here
    (not raced by N processes), and a UI session key shared by all when no setting fixes one. A job worker's run-as
    user that cannot be honoured raises RunAsError here, as it does in one process, before any child starts."""
    vault = SecretVault.from_settings(settings)
    vault.check_keys()
    if settings.serve_services and settings.should_run_job_worker:
        JobIsolation(run_as=settings.jobs_run_as, pass_env=settings.jobs_pass_env)
    if settings.session_secret is None and vault.key_ring is None:
        console.print(
            "[yellow]No HEADWATER_SESSION_SECRET and no secrets key: the worker processes share a random key for UI "
            "sign-ins, which end when the server stops.[/]"
        )
        shared = secrets.token_urlsafe(32)
        os.environ["HEADWATER_SESSION_SECRET"] = shared  # the workers read their settings from the environment
        settings = settings.model_copy(update={"session_secret": SecretStr(shared)})
    return settings


def serve_workers(config: dict[str, Any], listener: socket.socket, settings: Settings, *, services: bool) -> None:
    """Serve with ``settings.workers`` processes on ``listener`` (and the services process); returns once all ended."""
    # Each worker reads its settings from this environment once uvicorn's health check answers in it: importing the
    # app before that (as unpickling a function of settings would) can outlast the check on a busy machine.
    os.environ.update({"HEADWATER_HOST": settings.host, "HEADWATER_PORT": str(settings.port)})
    uvicorn_config = Config(SERVING_APP, factory=True, workers=settings.workers, **config)
    supervisor = Supervisor(uvicorn_config, [listener], settings=settings, services=services)
    supervisor.run()
    if supervisor.failed:
        raise typer.Exit(code=1)
