"""Who sent this request: the one authentication step REST, GraphQL, the UI and the OpenLineage endpoint share.

A request carries at most one credential: ``Authorization: Bearer <token>`` (an API token ``hw_...`` or an OIDC
JWT) or the UI's session cookie. None at all makes the anonymous principal, which every action but ``public``
refuses with 401. A credential that is expired, revoked, forged or for another audience is refused with 401
at once, whatever the path. Verified credentials are cached for
``auth_cache_seconds``, so a busy client costs no database read per request (keyed by the header itself,
in this process's memory only: the request brought it there anyway).

With no authentication configured, :func:`auth_mode` decides: on a loopback address everyone is the local
admin (an embedded install, the quick start); on any other address Headwater refuses to start unless
``HEADWATER_AUTH=none`` says that is meant.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from headwater.auth.actions import Action
from headwater.auth.models import SubjectKind
from headwater.auth.principal import ANONYMOUS, LOCAL_ADMIN, Principal, PrincipalKind
from headwater.auth.roles import roles_of
from headwater.auth.tokens import TOKEN_PREFIX, principal_kind, touch, verify_token
from headwater.db import read_scope
from headwater.errors import HeadwaterError, Unauthenticated
from headwater.settings import Settings

__all__ = ["AuthMode", "Authenticator", "Identity", "StartRefused", "auth_mode", "is_loopback"]

log = logging.getLogger("headwater.auth")

AuthMode = Literal["on", "local", "none"]
CACHE_ENTRIES = 10_000


class StartRefused(HeadwaterError, status_code=500, code="start_refused"):
    """The server would run open to the network without anyone having said so."""


@dataclass(frozen=True)
class Identity:
    """What a verified external credential (an OIDC JWT) says: who, of which kind, in which groups, until when."""

    name: str
    kind: PrincipalKind
    groups: frozenset[str]
    expires_at: float | None = None  # epoch seconds


# Verifies a JWT (signature, issuer, audience, expiry) and names its holder, or raises Unauthenticated.
JwtVerifier = Callable[[str], Identity]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to bind) is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_mode(settings: Settings) -> AuthMode:
    """How requests are authenticated, or StartRefused for a server open to the network without authentication."""
    if settings.auth_configured:
        return "on"
    if settings.auth == "none":
        return "none"
    if is_loopback(settings.host):
        return "local"
    raise StartRefused(
        f"Headwater is to bind {settings.host}, which is not a loopback address, and no authentication is "
        "configured: anyone who reaches it could run jobs and change the catalog. Configure OIDC "
        "(HEADWATER_OIDC_ISSUER) or API tokens (HEADWATER_AUTH=on), or set HEADWATER_AUTH=none to run it open "
        "on purpose"
    )


def _refused(message: str) -> Unauthenticated:
    return Unauthenticated(message, detail={"bearer_error": "invalid_token"})


class Authenticator:
    """Turns a request's credential into a Principal (thread-safe; database work runs in the caller's thread)."""

    def __init__(
        self, settings: Settings, sessionmaker: sessionmaker[Session], jwt_verifier: JwtVerifier | None = None
    ) -> None:
        self.settings = settings
        self.mode = auth_mode(settings)
        self._sessionmaker = sessionmaker
        self._jwt_verifier = jwt_verifier
        self._ttl = settings.auth_cache_seconds
        self._cache: OrderedDict[str, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    def announce(self) -> None:
        """Say in the log how requests are authenticated (the UI's header says it too)."""
        if self.mode == "local":
            log.warning(
                "no authentication is configured: every request acts as the local admin (loopback only; see "
                "docs/security/identity.md to configure OIDC or API tokens)"
            )
        elif self.mode == "none":
            log.warning("HEADWATER_AUTH=none: authentication is off and every request acts as the local admin")
        else:
            log.info("authentication is on (API tokens%s)", ", OIDC" if self._jwt_verifier else "")

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal of a credential verified within the cache's lifetime (no database, no thread hop), or
        None when it has to be verified."""
        if self.mode != "on":
            return LOCAL_ADMIN
        if not authorization:
            return ANONYMOUS
        hit = self._cache.get(authorization)  # one dict read, atomic under the GIL: no lock on the hot path
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value (blocking: may read the database)."""
        cached = self.cached(authorization)
        if cached is not None:
            return cached
        assert authorization is not None
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise _refused("send credentials as `Authorization: Bearer <token>`")
        principal, expires = self._verify(credential)
        lifetime = time.monotonic() + self._ttl
        if expires is not None:
            lifetime = min(lifetime, time.monotonic() + max(0.0, expires - time.time()))
        with self._lock:
            self._cache[authorization] = (lifetime, principal)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return principal

    def forget(self, token_id: int | None = None) -> None:
        """Drop cached principals (of one token, or all): a revocation takes effect in this process at once."""
        with self._lock:
            if token_id is None:
                self._cache.clear()
                return
            for key in [k for k, (_, p) in self._cache.items() if p.token_id == token_id]:
                del self._cache[key]

    def principal_of(self, identity: Identity, session: Session) -> Principal:
        """The principal of an identity established elsewhere (the UI's OIDC sign-in), with its roles."""
        kind = SubjectKind.SERVICE if identity.kind is PrincipalKind.SERVICE else SubjectKind.USER
        roles = roles_of(session, self.settings, kind=kind, name=identity.name, groups=identity.groups)
        return Principal(name=identity.name, kind=identity.kind, groups=identity.groups, roles=roles)

    def _verify(self, credential: str) -> tuple[Principal, float | None]:
        if credential.startswith(TOKEN_PREFIX):
            with self._sessionmaker.begin() as session:
                token = verify_token(session, credential)
                if token is None:
                    raise _refused("the API token is unknown, revoked or expired; create a new one")
                touch(session, token)
                kind = principal_kind(token)
                groups = frozenset(token.groups or ())
                subject = SubjectKind.SERVICE if kind is PrincipalKind.SERVICE else SubjectKind.USER
                roles = roles_of(session, self.settings, kind=subject, name=token.principal_name, groups=groups)
                principal = Principal(
                    name=token.principal_name,
                    kind=kind,
                    groups=groups,
                    roles=roles,
                    scopes=frozenset(Action(s) for s in token.scopes) if token.scopes is not None else None,
                    namespaces=frozenset(token.namespaces) if token.namespaces is not None else None,
                    token_id=token.id,
                )
                expires = token.expires_at.timestamp() if token.expires_at is not None else None
            return principal, expires
        if self._jwt_verifier is None:
            raise _refused("this server accepts API tokens (hw_...) only: no OIDC issuer is configured")
        identity = self._jwt_verifier(credential)
        with read_scope(self._sessionmaker) as session:
            principal = self.principal_of(identity, session)
        return principal, identity.expires_at
