"""The UI's session: a signed cookie naming who signed in, the CSRF token every UI form carries, and the middleware
that turns the cookie into the request's principal before :class:`~headwater.api.auth.Authenticate` runs.

The cookie (``headwater_session``) is signed with itsdangerous (HMAC-SHA256 keyed by ``HEADWATER_SESSION_SECRET``,
else a key derived from the secrets key, else a random key per process), HttpOnly, SameSite=Lax, Secure when the
request came over https, and carries its own expiry (``HEADWATER_SESSION_MAX_AGE``). It holds the signed-in
identity (name, kind, groups) and a CSRF token; a visitor who has not signed in gets one holding the CSRF token
only, so UI forms are protected in every mode, local mode included. Roles are not in the cookie: they are read
from the role bindings (cached like a bearer token's), so a changed binding takes effect without signing out.

Every UI write (an unsafe method under ``/ui/``, without an ``Authorization`` header) must carry the session's
CSRF token in the form field ``csrf_token`` or the header ``X-CSRF-Token``: 403 otherwise. Sign-in:
:mod:`headwater.ui.signin`; docs/security/oidc.md.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup
from starlette.datastructures import Headers
from starlette.formparsers import FormParser, MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.api.auth import LOGIN_PATH
from headwater.api.responses import refusal
from headwater.auth.authenticate import Authenticator, Identity
from headwater.auth.principal import ANONYMOUS, Principal, PrincipalKind
from headwater.db import read_scope
from headwater.errors import HeadwaterError

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOGIN_PATH",
    "SESSION_COOKIE",
    "SessionSigner",
    "Sessions",
    "UiSession",
    "Viewer",
    "csrf_field",
    "current_session",
    "local_next",
    "session_key",
    "viewer",
]

log = logging.getLogger("headwater.auth.session")

SESSION_COOKIE = "headwater_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UI_PREFIX = "/ui/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CACHE_ENTRIES = 10_000
ANONYMOUS_SESSION_SECONDS = 24 * 3600


@dataclass(frozen=True)
class UiSession:
    """What a session cookie holds: the CSRF token, and the signed-in identity (None before sign-in)."""

    csrf: str
    identity: Identity | None = None
    expires_at: float = 0.0  # epoch seconds

    def dump(self) -> dict[str, Any]:
        """The cookie's payload."""
        data: dict[str, Any] = {"c": self.csrf, "e": int(self.expires_at)}
        if self.identity is not None:
            data["u"] = self.identity.name
            data["k"] = self.identity.kind.value
            data["g"] = sorted(self.identity.groups)
        return data

    @classmethod
    def load(cls, data: Any) -> UiSession | None:
        """The session a verified payload holds (None for a malformed or expired one)."""
        if not isinstance(data, dict) or not isinstance(data.get("c"), str) or not isinstance(data.get("e"), int):
            return None
        if data["e"] < time.time():
            return None
        identity = None
        if isinstance(data.get("u"), str):
            try:
                kind = PrincipalKind(str(data.get("k")))
            except ValueError:
                return None
            groups = frozenset(g for g in data.get("g") or () if isinstance(g, str))
            identity = Identity(name=data["u"], kind=kind, groups=groups, expires_at=float(data["e"]))
        return cls(csrf=data["c"], identity=identity, expires_at=float(data["e"]))

    @classmethod
    def fresh(cls, identity: Identity | None = None, *, lifetime: float) -> UiSession:
        """A new session (a new CSRF token: a sign-in never keeps the token of before it)."""
        return cls(csrf=secrets.token_urlsafe(32), identity=identity, expires_at=time.time() + lifetime)


class SessionSigner:
    """Signs and reads the session cookie (and the short-lived sign-in cookie) with one key."""

    def __init__(self, key: bytes, *, max_age: int) -> None:
        self.max_age = max_age
        self._serializer = URLSafeTimedSerializer(key, salt="headwater.session")
        self._signin = URLSafeTimedSerializer(key, salt="headwater.signin")

    def dumps(self, session: UiSession) -> str:
        """The cookie value of ``session``."""
        return self._serializer.dumps(session.dump())

    def loads(self, value: str) -> UiSession | None:
        """The session a cookie value holds, or None when it is forged, malformed or expired."""
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except (BadSignature, ValueError, TypeError):
            return None
        return UiSession.load(data)

    def dumps_signin(self, data: dict[str, str]) -> str:
        """The value of the cookie that carries a sign-in's state, nonce and PKCE verifier to the callback."""
        return self._signin.dumps(data)

    def loads_signin(self, value: str, *, max_age: int) -> dict[str, str] | None:
        """A sign-in cookie's content, or None when forged, malformed or older than ``max_age``."""
        try:
            data = self._signin.loads(value, max_age=max_age)
        except (BadSignature, ValueError, TypeError):
            return None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return None
        return data


def session_key(secret: str | None, derive_from: str | None) -> bytes:
    """The cookie-signing key: the configured secret, else one derived from the secrets key (so sign-ins survive a
    restart and every process agrees), else random for this process."""
    if secret:
        return secret.encode("utf-8")
    if derive_from:
        return hmac.new(derive_from.encode("utf-8"), b"headwater session cookie", hashlib.sha256).digest()
    log.warning(
        "no HEADWATER_SESSION_SECRET and no secrets key: UI sign-ins are signed with a random key and end when "
        "this process stops (and are not understood by other processes)"
    )
    return secrets.token_bytes(32)


def local_next(target: str | None, default: str = "/ui") -> str:
    """``target`` if it is a path on this server (``/ui/...``), else ``default``: ``?next=`` never sends a visitor
    to another site (``//evil.example``, ``https://...``, ``/\\evil``, control characters are all refused)."""
    if not target or len(target) > 2048:
        return default
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


# The session of the request being answered, for the UI's templates (which are rendered without the request).
_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("headwater_ui_state", default=None)


def current_session() -> dict[str, Any]:
    """The answering request's ``state``: ``principal`` (after authentication), ``ui_session``."""
    return _current.get() or {}


def _cookie(headers: Headers, name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw or name not in raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is the client's problem: treat it as no cookie
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def set_cookie_header(name: str, value: str, *, max_age: int, secure: bool, path: str = "/") -> bytes:
    """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, Secure over https."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


class Sessions:
    """Read the session cookie into ``state["ui_session"]`` and, when it names a signed-in identity, into
    ``state["principal"]``; give a UI visitor without one a fresh (CSRF-only) session; refuse UI writes without the
    session's CSRF token (403)."""

    def __init__(self, app: ASGIApp, signer: SessionSigner, authenticator: Authenticator, max_body: int) -> None:
        self.app = app
        self.signer = signer
        self.authenticator = authenticator
        self.max_body = max_body
        self.ttl = authenticator.settings.auth_cache_seconds
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        raw = _cookie(headers, SESSION_COOKIE)
        session = self.signer.loads(raw) if raw else None
        state = scope.setdefault("state", {})
        path: str = scope["path"]
        issue = session is None and path.startswith(UI_PREFIX) and not path.startswith("/ui/static/")
        if issue:
            session = UiSession.fresh(lifetime=min(self.signer.max_age, ANONYMOUS_SESSION_SECONDS))
        if session is not None:
            state["ui_session"] = session
            if session.identity is not None and self.authenticator.mode == "on" and raw is not None:
                try:
                    state["principal"] = await self._principal(raw, session.identity)
                except HeadwaterError as exc:  # the database is down: the request goes on unauthenticated
                    log.warning("could not read the roles of the signed-in %s: %s", session.identity.name, exc)
        if scope["method"] not in SAFE_METHODS and path.startswith(UI_PREFIX) and "authorization" not in headers:
            receive, problem = await self._check_csrf(scope, receive, headers, session)
            if problem == "too_large":
                await refusal(413, "payload_too_large", f"the request body is larger than {self.max_body} bytes")(
                    scope, receive, send
                )
                return
            if problem is not None:
                await refusal(
                    403,
                    "csrf_failed",
                    "this form is stale or was not sent by a Headwater page (its CSRF token is missing or does not "
                    "match your session); reload the page and try again",
                )(scope, receive, send)
                return
        token = _current.set(state)
        send_with_cookie = send
        if issue and session is not None:
            cookie = set_cookie_header(
                SESSION_COOKIE,
                self.signer.dumps(session),
                max_age=int(session.expires_at - time.time()),
                secure=scope.get("scheme") == "https",
            )

            async def send_with_cookie(message: Message) -> None:
                if message["type"] == "http.response.start":
                    existing = message.get("headers", [])
                    already = any(
                        n == b"set-cookie" and v.startswith(SESSION_COOKIE.encode() + b"=") for n, v in existing
                    )
                    if not already:
                        message["headers"] = [*existing, (b"set-cookie", cookie)]
                await send(message)

        try:
            await self.app(scope, receive, send_with_cookie)
        finally:
            _current.reset(token)

    async def _principal(self, raw: str, identity: Identity) -> Principal:
        hit = self._cache.get(raw)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]

        def resolve() -> Principal:
            with read_scope(self.authenticator._sessionmaker) as db:
                return self.authenticator.principal_of(identity, db)

        principal = await anyio.to_thread.run_sync(resolve)
        with self._lock:
            self._cache[raw] = (time.monotonic() + self.ttl, principal)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return principal

    def forget(self) -> None:
        """Drop cached principals (a role binding changed)."""
        with self._lock:
            self._cache.clear()

    async def _check_csrf(
        self, scope: Scope, receive: Receive, headers: Headers, session: UiSession | None
    ) -> tuple[Receive, str | None]:
        """The receive that replays the body read here, and why the request is refused (None: it is not)."""
        expected = session.csrf if session is not None else None
        offered = headers.get(CSRF_HEADER)
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return receive, "too_large"
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        if offered is None:
            offered = await _form_token(headers, body)
        if expected is None or offered is None or not hmac.compare_digest(expected.encode(), offered.encode()):
            return replay, "csrf"
        return replay, None


async def _form_token(headers: Headers, body: bytes) -> str | None:
    media = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()

    async def stream() -> Any:
        yield body

    try:
        if media == "application/x-www-form-urlencoded":
            form = await FormParser(headers, stream()).parse()
        elif media == "multipart/form-data":
            form = await MultiPartParser(headers, stream()).parse()
        else:
            return None
    except Exception:  # a malformed form has no token in it
        return None
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Viewer:
    """Who the answering UI page is for, as the header shows it."""

    name: str | None
    local: bool  # no authentication configured: everyone is the local admin
    signed_in: bool  # by the UI's sign-in (so there is a session to sign out of)
    csrf: str | None


def viewer() -> Viewer:
    """The viewer of the page being rendered (a template global)."""
    state = current_session()
    principal: Principal = state.get("principal", ANONYMOUS)
    session: UiSession | None = state.get("ui_session")
    signed_in = session is not None and session.identity is not None and principal.name == session.identity.name
    return Viewer(
        name=None if principal is ANONYMOUS else principal.name,
        local=principal.kind is PrincipalKind.LOCAL,
        signed_in=signed_in and principal.kind is not PrincipalKind.LOCAL,
        csrf=session.csrf if session is not None else None,
    )


def csrf_field() -> Markup:
    """The hidden input every UI form carries (a template global: ``{{ csrf_field() }}``)."""
    token = viewer().csrf or ""
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(token)
