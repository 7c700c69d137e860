"""What keeps other web sites out: the Host check, the refusal of cross-site writes, and the security headers of
every answer.

A browser lets any page send some requests to any server without asking it first: a form POST
(``application/x-www-form-urlencoded``, ``multipart/form-data``, ``text/plain``) and a ``fetch`` in ``no-cors``
mode. So, for unsafe methods:

* a request whose ``Sec-Fetch-Site`` says another site sent it, or whose ``Origin`` is neither the server's own
  nor one of ``HEADWATER_CORS_ORIGINS``, is refused (403) whatever its body: Go 1.25's ``CrossOriginProtection``
  and Django's origin check work this way. Clients that are not browsers send neither header and are let through;
* a body must be JSON (``application/json`` or ``application/*+json``): 415 otherwise. A page can send JSON to
  another origin only after a CORS preflight, which this server answers only for configured origins;
* multipart is taken only where a route needs it (job submission with attachments), and only with the header
  ``X-Headwater-Client`` (any value) or ``Authorization``, which no form can send;
* the UI's own forms (``form_prefixes``, ``/ui/``) may post form bodies: the session middleware
  (``headwater.api.session``) refuses each one that lacks the session's CSRF token.

The ``Host`` check stops DNS rebinding: a page of ``evil.example`` whose name is made to resolve to 127.0.0.1 sends
``Host: evil.example``. Details and settings: docs/security/crosssite.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.allowlists import host_name
from headwater.api.headers import SECURITY_HEADERS
from headwater.api.responses import refusal

__all__ = [
    "CLIENT_HEADER",
    "CrossSiteWrites",
    "HostCheck",
    "SecurityHeaders",
    "is_json_media_type",
]

CLIENT_HEADER = "X-Headwater-Client"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class SecurityHeaders:
    """Add the security headers (CSP, nosniff, no referrer, no framing) to every answer that lacks them; a page
    that needs another Content-Security-Policy sets its own and keeps it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in SECURITY_HEADERS]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                missing = [(name, value) for name, value in self.headers if name not in present]
                if missing:
                    message["headers"] = [*message.get("headers", ()), *missing]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostCheck:
    """Answer only requests whose ``Host`` names this server (``HEADWATER_ALLOWED_HOSTS``, any port): 400 otherwise.

    Entries are names or addresses (``[::1]`` for IPv6), ``*.example.com`` for its subdomains, or ``*`` for any.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]
        self.allow_any = "*" in hosts
        self.suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        self.names = {name for h in hosts if not h.startswith("*") and (name := host_name(h))}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("host")
        name = host_name(header) if header else None
        if name is not None and (name in self.names or name.endswith(self.suffixes)):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # policy violation
            return
        shown = repr(header[:100]) if header else "missing"
        await refusal(
            400,
            "host_not_allowed",
            f"the Host header ({shown}) is not a name this server answers to; its operator lists the names "
            "clients use in HEADWATER_ALLOWED_HOSTS",
        )(scope, receive, send)


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type is JSON: ``application/json`` or a ``+json`` type (parameters ignored)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


def _origin_key(scheme: str, netloc: str) -> str:
    """``host[:port]`` without the scheme's default port, lower case."""
    netloc = netloc.strip().lower()
    default = _DEFAULT_PORTS.get(scheme)
    return netloc.removesuffix(f":{default}") if default else netloc


class CrossSiteWrites:
    """Refuse writes a web page of another site could have sent (403), and bodies that are not JSON (415), except
    multipart on ``multipart_paths`` from a client that sends ``X-Headwater-Client`` or ``Authorization``, and forms
    under ``form_prefixes`` (whose CSRF token the session middleware checks)."""

    def __init__(
        self,
        app: ASGIApp,
        trusted_origins: Iterable[str] = (),
        multipart_paths: Iterable[str] = (),
        form_prefixes: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.trusted_origins = {o.lower().rstrip("/") for o in trusted_origins}
        self.multipart_paths = frozenset(multipart_paths)
        self.form_prefixes = tuple(form_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._cross_site(scope, headers) or self._body(scope, headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, code, message = problem
        await refusal(status, code, message)(scope, receive, send)

    def _cross_site(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        fetch_site = headers.get("sec-fetch-site", "").strip().lower()
        origin = headers.get("origin")
        if fetch_site in ("same-origin", "none"):
            return None
        if origin is not None and origin.strip().lower().rstrip("/") in self.trusted_origins:
            return None
        if fetch_site not in ("cross-site", "same-site"):
            if origin is None:
                return None  # not a browser (or one too old to say): nothing a web page could forge
            parts = urlsplit(origin.strip())
            own = headers.get("host", "")
            if parts.scheme in _DEFAULT_PORTS and _origin_key(parts.scheme, parts.netloc) == _origin_key(
                parts.scheme, own
            ):
                return None
        sender = repr(origin[:200]) if origin else f"Sec-Fetch-Site: {fetch_site}"
        return (
            403,
            "cross_origin_refused",
            f"{scope['method']} from a web page of another origin ({sender}) is refused; the server's operator "
            "lists origins allowed to write in HEADWATER_CORS_ORIGINS",
        )

    def _body(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        if not _has_body(headers):
            return None
        content_type = headers.get("content-type")
        if is_json_media_type(content_type):
            return None
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media in _FORM_TYPES and self.form_prefixes and scope["path"].startswith(self.form_prefixes):
            return None
        if media == "multipart/form-data" and scope["path"] in self.multipart_paths:
            if headers.get(CLIENT_HEADER, "").strip() or headers.get("authorization", "").strip():
                return None
            return (
                403,
                "client_header_required",
                f"a multipart request needs the header {CLIENT_HEADER} (any value, e.g. your tool's name) or an "
                "Authorization header; a web form cannot send either",
            )
        accepted = "application/json" + (" (or multipart/form-data)" if scope["path"] in self.multipart_paths else "")
        return (
            415,
            "unsupported_media_type",
            f"send the request body as {accepted}, not {media or 'a body without a Content-Type'}",
        )
