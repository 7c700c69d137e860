"""The egress policy (headwater.egress): which addresses, schemes and files server-side requests may reach; the
connected address is the checked one (DNS rebinding through a resolver the test controls), every redirect is checked
again, and a failed connection never tells an open port from a closed one. Against real HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from headwater.egress import EgressPolicy, EgressRefused, Unreachable, http_client, stream
from headwater.jobs.files import FileCache, FileFetchError
from headwater.settings import Settings

pytestmark = pytest.mark.integration

PUBLIC = "93.184.216.34"  # a global address; no test connects to it


@dataclass
class Server:
    """A real HTTP server on 127.0.0.1: ``routes`` maps a path to a body or to ("redirect", location)."""

    port: int = 0
    routes: dict[str, bytes | tuple[str, str]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def server() -> Iterator[Server]:
    """The HTTP server, stopped after the test."""
    served = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append((self.path, self.headers.get("Host", "")))
            route = served.routes.get(self.path)
            if route is None:
                self.send_error(404)
            elif isinstance(route, tuple):
                self.send_response(302)
                self.send_header("Location", route[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(len(route)))
                self.end_headers()
                self.wfile.write(route)

        def log_message(self, *_args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()


class Resolver:
    """A DNS the test controls: each name answers its list of answers in turn (the last one repeats)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise socket.gaierror(f"{host} does not resolve")
        return queue.pop(0) if len(queue) > 1 else queue[0]


def _get(policy: EgressPolicy, url: str) -> bytes:
    with http_client(policy, timeout=5) as client, stream(client, policy, url) as response:
        return response.read()


# ------------------------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "0.0.0.0",
        "::",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "fe80::1",
        "fc00::1",
        "100.64.0.1",  # shared address space
        "224.0.0.1",
        "240.0.0.1",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
        "::ffff:169.254.169.254",
    ],
)
def test_addresses_that_are_not_global_are_refused_by_default(address: str) -> None:
    policy = EgressPolicy()
    assert not policy.address_allowed(address)
    with pytest.raises(EgressRefused, match="HEADWATER_EGRESS_ALLOW"):
        policy.addresses(address, 80)


def test_global_addresses_are_allowed_and_the_allowlist_opens_networks_and_names() -> None:
    assert EgressPolicy().address_allowed(PUBLIC) and EgressPolicy().address_allowed("2606:4700::1111")
    policy = EgressPolicy(
        allow=("10.20.0.0/16", "::1", "metastore.internal"),
        resolver=Resolver({"metastore.internal": [["10.99.0.1"]], "other.internal": [["10.99.0.1"]]}),
    )
    assert policy.address_allowed("10.20.3.4") and policy.address_allowed("::1")
    assert policy.address_allowed("::ffff:10.20.3.4")  # the mapped form of an allowed address
    assert not policy.address_allowed("10.21.0.1") and not policy.address_allowed("127.0.0.1")
    assert policy.addresses("metastore.internal", 9083) == ["10.99.0.1"]  # an allowed name, whatever it resolves to
    with pytest.raises(EgressRefused, match="resolves to a private address") as refused:
        policy.addresses("other.internal", 9083)
    assert "10.99.0.1" not in refused.value.message  # the API does not map internal DNS for its callers


def test_a_name_is_refused_when_any_of_its_addresses_is() -> None:
    policy = EgressPolicy(resolver=Resolver({"mixed.test": [[PUBLIC, "127.0.0.1"]]}))
    with pytest.raises(EgressRefused, match="loopback"):
        policy.addresses("mixed.test", 443)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1:6379/_INFO", "dict://x:11211/", "//x/y"]
)
def test_only_http_and_https_urls_are_fetched(url: str) -> None:
    with pytest.raises(EgressRefused, match="http or https only"):
        EgressPolicy(allow=("127.0.0.1",)).check_url(url)


def test_the_settings_read_the_allowlist_and_refuse_nonsense(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER_EGRESS_ALLOW", raising=False)  # the suite's own allowlist (tests/conftest.py)
    monkeypatch.delenv("HEADWATER_EGRESS_FILE_DIRS", raising=False)
    settings = Settings(egress_allow="10.0.0.0/8, ::1 ,Metastore.Internal", egress_file_dirs=str(tmp_path))
    policy = EgressPolicy.from_settings(settings)
    assert policy.allow == ("10.0.0.0/8", "::1", "metastore.internal")
    assert policy.file_dirs == (tmp_path, settings.data_dir / "demo-warehouse")  # the demo's own warehouse too
    assert Settings().egress_allow == [] and Settings().egress_file_dirs == []  # nothing allowed by default
    with pytest.raises(ValidationError, match="HEADWATER_EGRESS_ALLOW"):
        Settings(egress_allow="10.0.0.0/33")
    with pytest.raises(ValidationError, match="HEADWATER_EGRESS_FILE_DIRS"):
        Settings(egress_file_dirs="relative/dir")


# ------------------------------------------------------------------------------------------------ files


def test_local_files_are_read_only_inside_the_allowed_directories(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ok.jar").write_text("ok")
    (allowed / "escape").symlink_to("/etc/passwd")
    policy = EgressPolicy(file_dirs=(allowed,))
    assert policy.check_file(str(allowed / "ok.jar")) == (allowed / "ok.jar").resolve()
    assert policy.check_file(f"file://{allowed}/ok.jar") == (allowed / "ok.jar").resolve()
    for ref in ("/etc/passwd", "file:///etc/passwd", str(allowed / "escape"), f"{allowed}/../allowed2/x"):
        with pytest.raises(EgressRefused, match="HEADWATER_EGRESS_FILE_DIRS"):
            policy.check_file(ref)
    with pytest.raises(EgressRefused, match="none are allowed"):
        EgressPolicy().check_file(str(allowed / "ok.jar"))


# ------------------------------------------------------------------------------------- the HTTP client


def test_the_connection_goes_to_the_checked_address_and_keeps_the_host_name(server: Server) -> None:
    server.routes["/lib.jar"] = b"jar bytes"
    policy = EgressPolicy(allow=("127.0.0.1",), resolver=Resolver({"artifacts.test": [["127.0.0.1"]]}))
    assert _get(policy, f"http://artifacts.test:{server.port}/lib.jar") == b"jar bytes"
    assert server.requests == [("/lib.jar", f"artifacts.test:{server.port}")]  # Host header (and SNI) kept


def test_dns_rebinding_cannot_move_a_checked_name_to_a_refused_address(server: Server) -> None:
    server.routes["/secret"] = b"internal secret"
    # The first answer is a public address (what a check at submission sees), every later one is loopback.
    resolver = Resolver({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    policy = EgressPolicy(resolver=resolver)
    policy.check_url(f"http://rebind.test:{server.port}/secret")  # passes: the name looked public then
    with pytest.raises(EgressRefused, match="rebind.test resolves to a loopback address"):
        _get(policy, f"http://rebind.test:{server.port}/secret")
    assert server.requests == []  # the connection was never opened
    assert resolver.asked == ["rebind.test", "rebind.test"]  # resolved once at check, once at connect, no more


def test_every_redirect_is_checked_again(server: Server) -> None:
    server.routes["/secret"] = b"internal secret"
    server.routes["/to-loopback"] = ("redirect", f"{server.base}/secret")
    server.routes["/to-file"] = ("redirect", "file:///etc/passwd")
    server.routes["/loop"] = ("redirect", f"http://artifacts.test:{server.port}/loop")
    # artifacts.test is allowed by name (it resolves to the test server); 127.0.0.1 itself is not.
    policy = EgressPolicy(allow=("artifacts.test",), resolver=Resolver({"artifacts.test": [["127.0.0.1"]]}))
    base = f"http://artifacts.test:{server.port}"
    with pytest.raises(EgressRefused, match="127.0.0.1 is a loopback address"):
        _get(policy, f"{base}/to-loopback")
    with pytest.raises(EgressRefused, match="scheme 'file' is refused"):
        _get(policy, f"{base}/to-file")
    with pytest.raises(EgressRefused, match="redirected more than 5 times"):
        _get(policy, f"{base}/loop")
    assert "/secret" not in [path for path, _ in server.requests]


def test_a_closed_port_and_an_unknown_name_give_one_message() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    policy = EgressPolicy(allow=("127.0.0.1",), resolver=Resolver({}))
    with pytest.raises(Unreachable) as refused:
        _get(policy, f"http://127.0.0.1:{closed}/x")
    assert refused.value.message == f"could not reach 127.0.0.1:{closed}"
    with pytest.raises(Unreachable) as unknown:
        _get(policy, "http://no-such-host.test/x")
    assert unknown.value.message == "could not reach no-such-host.test:80"


def test_the_file_cache_refuses_a_redirect_to_a_private_address(server: Server, tmp_path: Path) -> None:
    server.routes["/secret"] = b"internal secret"
    server.routes["/tool.sh"] = ("redirect", f"{server.base}/secret")
    policy = EgressPolicy(allow=("artifacts.test",), resolver=Resolver({"artifacts.test": [["127.0.0.1"]]}))
    cache = FileCache(tmp_path / "cache", timeout=5, policy=policy)
    with pytest.raises(FileFetchError, match="is refused: 127.0.0.1 is a loopback address"):
        cache.fetch(f"http://artifacts.test:{server.port}/tool.sh")
    assert not any(b"internal secret" in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    with pytest.raises(FileFetchError, match="outside the directories"):
        cache.fetch("file:///etc/passwd")
