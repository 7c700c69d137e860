"""The one egress policy: where the server (and its job workers) may open connections and read files.

Every server-side outbound request goes through here: a job's application files named by URL, the
connections a source's connector opens (Iceberg REST, Hive Metastore, Kafka brokers and Schema Registry,
PostgreSQL), and whatever is added later (webhooks). The rules (docs/security/egress.md):

- schemes ``http`` and ``https`` only; local files (a path or ``file://``) only inside the directories
  ``HEADWATER_EGRESS_FILE_DIRS`` names (none by default), symlinks and ``..`` resolved first;
- addresses that are not globally routable (loopback, link-local, private, shared, multicast, reserved,
  unspecified; IPv4 and IPv6, IPv4-mapped and 6to4/Teredo forms unwrapped) are refused unless
  ``HEADWATER_EGRESS_ALLOW`` names the address, a network holding it, or the host name;
- the address checked is the address connected to: a name is resolved once, every address it resolves to
  is checked, and the connection goes to a checked address (a DNS answer that changes between the check
  and the connection cannot redirect it); the URL's host still goes in the Host header and TLS SNI;
- every redirect is checked again (the client follows them itself, at most ``MAX_REDIRECTS``);
- a connection that fails says "could not reach <host>:<port>" whatever the cause (refused, reset, timed
  out, no route), so an API caller cannot use the server to tell open ports from closed ones.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from headwater.allowlists import ALLOW_SETTING, Address, parse_address, path_inside
from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.settings import Settings

__all__ = [
    "ALLOW_SETTING",
    "FILE_DIRS_SETTING",
    "MAX_REDIRECTS",
    "EgressPolicy",
    "EgressRefused",
    "Unreachable",
    "default_policy",
    "http_client",
    "stream",
]

log = logging.getLogger("headwater.egress")

FILE_DIRS_SETTING = "HEADWATER_EGRESS_FILE_DIRS"
MAX_REDIRECTS = 5
WEB_SCHEMES = ("http", "https")
DEMO_WAREHOUSE = "demo-warehouse"  # under the data directory (headwater demo)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class EgressRefused(HeadwaterError, status_code=422, code="egress_refused"):
    """A destination the egress policy does not allow (a scheme, an address, a directory); nothing was sent."""


class Unreachable(HeadwaterError, status_code=502, code="unreachable"):
    """A connection that failed: the same message for a closed port, a silent one and an unknown host."""


def unreachable(host: str, port: int | None = None) -> Unreachable:
    """The one error a failed connection gives (never the cause, which would tell open ports from closed)."""
    where = f"{host}:{port}" if port is not None else host
    return Unreachable(f"could not reach {where}", detail={"host": host, "port": port})


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), in the resolver's order, without duplicates."""
    found: list[str] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in found:
            found.append(address)
    return found


def _unwrap(address: Address) -> Address:
    # An IPv6 address that carries an IPv4 one reaches that IPv4 host: judge the IPv4 address.
    if isinstance(address, ipaddress.IPv6Address):
        for inner in (address.ipv4_mapped, address.sixtofour, (address.teredo or (None, None))[1]):
            if inner is not None:
                return inner
    return address


def address_kind(address: Address) -> str | None:
    """Why an address is refused by default (``"loopback"``, ``"private"``...), or None for a global one."""
    address = _unwrap(address)
    for kind in ("unspecified", "loopback", "link-local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind.replace('-', '_')}"):
            return kind
    if not address.is_global:
        return "non-global"  # shared address space (100.64/10), documentation ranges and the like
    return None


def _a(kind: str | None) -> str:
    return f"an {kind}" if kind and kind[0] in "aeiou" else f"a {kind}"


@dataclass(frozen=True)
class EgressPolicy:
    """Where outbound connections may go and which local files may be read; empty allowlists by default."""

    allow: tuple[str, ...] = ()
    file_dirs: tuple[Path, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressPolicy:
        """The policy a server or worker with ``settings`` applies. The warehouse ``headwater demo`` builds in the
        data directory is always readable: it is the server's own, and the demo's Iceberg source reads it."""
        demo = settings.data_dir / DEMO_WAREHOUSE
        return cls(allow=tuple(settings.egress_allow), file_dirs=(*settings.egress_file_dirs, demo))

    @property
    def networks(self) -> list[Network]:
        """The allowlist's addresses and networks."""
        return [ipaddress.ip_network(e, strict=False) for e in self.allow if "/" in e or parse_address(e)]

    @property
    def host_names(self) -> set[str]:
        """The allowlist's host names (allowed whatever they resolve to)."""
        return {e for e in self.allow if "/" not in e and parse_address(e) is None}

    # ------------------------------------------------------------------------------ addresses

    def address_allowed(self, address: str | Address) -> bool:
        """Whether a connection to this address may be opened."""
        parsed = ipaddress.ip_address(address) if isinstance(address, str) else address
        if address_kind(parsed) is None:
            return True
        candidates = {parsed, _unwrap(parsed)}
        return any(candidate in network for candidate in candidates for network in self.networks)

    def addresses(self, host: str, port: int) -> list[str]:
        """The checked addresses to connect to for ``host``: every address it resolves to must be allowed.

        Raises EgressRefused naming the kind of address refused, or Unreachable when the name does not resolve.
        """
        literal = parse_address(host)
        if literal is not None:
            if not self.address_allowed(literal):
                raise EgressRefused(
                    f"{host} is {_a(address_kind(literal))} address, which the server may not connect to "
                    f"(an administrator can allow it in {ALLOW_SETTING})",
                    detail={"host": host},
                )
            return [str(literal)]
        name = host.lower().rstrip(".")
        try:
            resolved = self.resolver(name, port)
        except (OSError, UnicodeError):
            raise unreachable(host, port) from None
        if not resolved:
            raise unreachable(host, port)
        if name in self.host_names:
            return resolved
        for address in resolved:
            if not self.address_allowed(address):
                # The kind, not the address: the API does not map internal DNS for its callers.
                kind = address_kind(ipaddress.ip_address(address))
                raise EgressRefused(
                    f"{host} resolves to {_a(kind)} address, which the server may not connect to "
                    f"(an administrator can allow the host or its network in {ALLOW_SETTING})",
                    detail={"host": host},
                )
        return resolved

    def check_host(self, host: str, port: int, *, resolve: bool = True) -> None:
        """Refuse a host (and port) the policy does not allow. Without ``resolve`` only an address literal is
        judged; with it a name that does not resolve passes (the connection is checked again when opened)."""
        if not resolve and parse_address(host) is None:
            return
        with contextlib.suppress(Unreachable):
            self.addresses(host, port)

    def check_url(self, url: str, *, resolve: bool = True, schemes: Sequence[str] = WEB_SCHEMES) -> None:
        """Refuse a URL whose scheme is not http(s) (or ``schemes``) or whose host the policy does not allow."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in schemes:
            raise EgressRefused(
                f"{_shown(url)}: the scheme {scheme or '(none)'!r} is refused; the server connects with "
                f"{' or '.join(schemes)} only",
                detail={"url": _shown(url)},
            )
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise EgressRefused(f"{_shown(url)} has an invalid port", detail={"url": _shown(url)}) from None
        if not host:
            raise EgressRefused(f"{_shown(url)} names no host", detail={"url": _shown(url)})
        self.check_host(host, port or (443 if scheme in ("https", "wss") else 80), resolve=resolve)

    # ---------------------------------------------------------------------------------- files

    def check_file(self, ref: str) -> Path:
        """The resolved local path of ``ref`` (a path or a ``file://`` URI) if it lies in an allowed directory."""
        raw = unquote(urlsplit(ref).path) if ref.startswith("file:") else ref
        if not Path(raw).is_absolute():
            raise EgressRefused(f"{ref!r} is not an absolute path", detail={"path": ref})
        # A warehouse or a job's directory may be an allowed directory itself.
        real = path_inside(raw, self.file_dirs, directory_itself=True)
        if real is not None:
            return real
        allowed = ", ".join(str(d) for d in self.file_dirs) or "none are allowed"
        raise EgressRefused(
            f"{ref!r} is outside the directories the server may read files from ({allowed}; an administrator "
            f"sets them in {FILE_DIRS_SETTING})",
            detail={"path": ref},
        )


def _shown(url: str) -> str:
    # A URL as errors show it: never its user and password.
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    with contextlib.suppress(ValueError):
        if parts.port is not None:
            netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


_default: EgressPolicy | None = None


def default_policy() -> EgressPolicy:
    """The policy of this process's settings (``get_settings()``), for callers that were given none."""
    global _default
    if _default is None:
        from headwater.settings import get_settings

        _default = EgressPolicy.from_settings(get_settings())
    return _default


# ---------------------------------------------------------------------------------- HTTP client


class _CheckedBackend(httpcore.SyncBackend):
    """httpcore's network backend, connecting only to addresses the policy allowed (resolved here, once)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """A connection to one of ``host``'s checked addresses (TLS, started later, still uses ``host``)."""
        for address in self.policy.addresses(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                log.debug("could not connect to %s (%s) port %s: %s", host, address, port, exc)
        raise unreachable(host, port)


class _CheckedTransport(httpx.HTTPTransport):
    def __init__(self, policy: EgressPolicy, **options: typing.Any) -> None:
        super().__init__(trust_env=False, **options)  # no proxy from the environment: it would connect for us
        pool = self._pool
        self._pool = httpcore.ConnectionPool(
            ssl_context=pool._ssl_context,
            max_connections=pool._max_connections,
            max_keepalive_connections=pool._max_keepalive_connections,
            keepalive_expiry=pool._keepalive_expiry,
            network_backend=_CheckedBackend(policy),
        )


def http_client(policy: EgressPolicy, *, timeout: httpx.Timeout | float = 30.0, **options: typing.Any) -> httpx.Client:
    """An httpx client whose connections the policy checks (follow redirects with :func:`stream`)."""
    return httpx.Client(
        transport=_CheckedTransport(policy), timeout=timeout, follow_redirects=False, trust_env=False, **options
    )


@contextlib.contextmanager
def stream(
    client: httpx.Client,
    policy: EgressPolicy,
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> Iterator[httpx.Response]:
    """A streamed response to ``url``, redirects followed here so each one is checked like the first URL.

    Raises EgressRefused for a refused URL or redirect, Unreachable for a connection that failed.
    """
    request = client.build_request(method, url, headers=headers)
    for _ in range(max_redirects + 1):
        policy.check_url(str(request.url), resolve=False)  # the scheme; the address is checked on connect
        try:
            response = client.send(request, stream=True, follow_redirects=False)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.debug("could not connect for %s: %s", _shown(str(request.url)), exc)
            raise unreachable(request.url.host, request.url.port) from None
        if response.next_request is None:
            try:
                yield response
            finally:
                response.close()
            return
        response.close()
        request = response.next_request
    raise EgressRefused(f"{_shown(url)} redirected more than {max_redirects} times", detail={"url": _shown(url)})
