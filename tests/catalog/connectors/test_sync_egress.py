"""Source connections obey the egress policy: a source pointing at a refused address is refused at registration
(422) and its sync fails with a message saying why, before any connection; a closed port and an open port that does
not speak the source's protocol give the same error, so sources cannot be used to scan ports; and catalog or client
properties that load code, run commands or read files are refused (422). Real sockets and servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headwater.app import create_app
from headwater.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Listener:
    """A TCP port that accepts connections, answers them with an HTTP error and hangs up (any service that is not
    the source's), counting them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    """An open port that speaks no source's protocol."""
    opened = Listener()
    yield opened
    opened.close()


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(kind: str, port: int, host: str = "127.0.0.1") -> dict[str, Any]:
    if kind == "postgres":
        return {"host": host, "port": port, "database": "db", "user": "reader", "connect_timeout": 3}
    if kind == "hive":
        return {"host": host, "port": port, "timeout_seconds": 3}
    if kind == "kafka":
        return {"bootstrap_servers": f"{host}:{port}", "timeout_seconds": 2}
    return {"type": "rest", "uri": f"http://{host}:{port}"}


async def _add(client: httpx.AsyncClient, name: str, kind: str, config: dict[str, Any]) -> httpx.Response:
    return await client.post(
        "/api/v1/sources", json={"name": name, "kind": kind, "namespace": f"{kind}://{name}", "config": config}
    )


@pytest.fixture
async def strict_client(
    app_settings: Settings, client: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server on the suite's database with the default (empty) egress allowlists."""
    settings = app_settings.model_copy(update={"egress_allow": [], "egress_file_dirs": [], "data_dir": tmp_path})
    transport = httpx.ASGITransport(app=create_app(settings, prepare=False), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as strict:
        yield strict


KINDS = ["postgres", "hive", "kafka", "iceberg"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_closed_port_and_an_open_one_give_the_same_error(
    client: httpx.AsyncClient, listener: Listener, kind: str
) -> None:
    closed = closed_port()
    assert (await _add(client, "closed", kind, _config(kind, closed))).status_code == 201
    assert (await _add(client, "open", kind, _config(kind, listener.port))).status_code == 201
    messages = []
    for name, port in (("closed", closed), ("open", listener.port)):
        report = (await client.post(f"/api/v1/sources/{name}/sync")).json()
        assert report["status"] == "failed" and report["listed"] == 0, report
        messages.append((report["message"] or "").replace(str(port), "PORT"))
        source = (await client.get(f"/api/v1/sources/{name}")).json()
        assert str(port) in (source["status_message"] or "")
        messages.append((source["status_message"] or "").replace(str(port), "PORT"))
    assert listener.connections >= 1  # the open port was really reached
    assert messages[0] == messages[2] and messages[1] == messages[3], messages
    assert "could not reach" in messages[0], messages


@pytest.mark.parametrize("kind", KINDS)
async def test_a_refused_address_is_refused_at_registration_and_sync(
    client: httpx.AsyncClient, strict_client: httpx.AsyncClient, listener: Listener, kind: str
) -> None:
    for host in ("127.0.0.1", "localhost", "169.254.169.254"):
        r = await _add(strict_client, "internal", kind, _config(kind, listener.port, host))
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "egress_refused" and "HEADWATER_EGRESS_ALLOW" in error["message"], error
    # Registered while the policy allowed it: the sync of a server whose policy refuses it fails, saying why.
    assert (await _add(client, "internal", kind, _config(kind, listener.port))).status_code == 201
    report = (await strict_client.post("/api/v1/sources/internal/sync")).json()
    assert (report["status"], report["complete"], report["deleted"]) == ("failed", False, 0), report
    assert "127.0.0.1 is a loopback address" in (report["message"] or ""), report
    assert listener.connections == 0  # refused before any connection


@pytest.mark.parametrize(
    ("kind", "config", "why"),
    [
        ("iceberg", {"type": "rest", "uri": "https://catalog.example.com", "properties": {"py-io-impl": "x.Y"}}, "py-"),
        ("iceberg", {"type": "sql", "uri": "sqlite:////etc/headwater/catalog.db"}, "HEADWATER_EGRESS_FILE_DIRS"),
        ("iceberg", {"type": "hive", "uri": "thrift://10.0.0.7:9083"}, "private address"),
        ("iceberg", {"type": "rest", "uri": "file:///etc/passwd"}, "scheme 'file' is refused"),
        (
            "iceberg",
            {
                "type": "rest",
                "uri": "https://catalog.example.com",
                "properties": {"oauth2-server-uri": "http://[::1]/"},
            },
            "loopback",
        ),
        (
            "kafka",
            {"bootstrap_servers": "broker.example.com:9092", "properties": {"plugin.library.paths": "x"}},
            "loads",
        ),
        (
            "kafka",
            {"bootstrap_servers": "broker.example.com:9092", "properties": {"sasl.kerberos.kinit.cmd": "touch /x"}},
            "runs a command",
        ),
        (
            "kafka",
            {"bootstrap_servers": "broker.example.com:9092", "properties": {"ssl.ca.location": "/etc/passwd"}},
            "HEADWATER_EGRESS_FILE_DIRS",
        ),
        (
            "kafka",
            {"bootstrap_servers": "broker.example.com:9092", "properties": {"metadata.broker.list": "10.0.0.1:9092"}},
            "names the brokers",
        ),
        (
            "kafka",
            {"bootstrap_servers": "broker.example.com:9092", "schema_registry_url": "http://127.0.0.1:8081"},
            "loopback",
        ),
    ],
)
async def test_properties_that_run_code_or_read_files_are_refused(
    strict_client: httpx.AsyncClient, kind: str, config: dict[str, Any], why: str
) -> None:
    r = await _add(strict_client, "unsafe", kind, config)
    assert r.status_code == 422, r.text
    assert why in r.json()["error"]["message"], r.json()
