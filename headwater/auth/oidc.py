"""OpenID Connect: bearer JWTs verified against the issuer's published keys, and the UI sign-in's code exchange.

:class:`OidcProvider` holds what one issuer publishes: its discovery document
(``/.well-known/openid-configuration``) and its key set (JWKS), fetched lazily through the egress policy, cached,
and fetched again when a token names a key id the cache does not know (at most once per
``JWKS_REFETCH_SECONDS``: a key rotation is picked up at the first token signed with the new key, and a stream
of forged ``kid`` values cannot make Headwater hammer the issuer).
:class:`OidcVerifier` is the Authenticator's :data:`~headwater.auth.authenticate.JwtVerifier`: it checks a
JWT's algorithm against an allow-list (asymmetric only: never ``none``, never an HMAC keyed with a public key),
its signature, ``iss``, ``aud``, ``exp`` and ``nbf`` (with ``LEEWAY_SECONDS``), and maps its claims to an
:class:`~headwater.auth.authenticate.Identity`. A token that fails any check raises
:class:`~headwater.errors.Unauthenticated` (401 ``invalid_token``); an issuer that cannot be reached raises
:class:`~headwater.errors.IdentityProviderUnavailable` (503): a token is never let in unverified.
Configuration: docs/security/oidc.md.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet

from headwater.auth.authenticate import Identity, StartRefused
from headwater.auth.principal import PrincipalKind
from headwater.egress import EgressPolicy, EgressRefused, Unreachable, http_client, stream
from headwater.errors import IdentityProviderUnavailable, Unauthenticated
from headwater.settings import Settings

__all__ = [
    "ALLOWED_ALGORITHMS",
    "LEEWAY_SECONDS",
    "OidcProvider",
    "OidcVerifier",
    "ProviderMetadata",
    "TokenResponse",
]

log = logging.getLogger("headwater.auth.oidc")

# Asymmetric signatures only: `none` and the HS* family (which a forger would key with the public key) are refused.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
LEEWAY_SECONDS = 60  # clock skew tolerated on exp, nbf and iat
JWKS_REFETCH_SECONDS = 30.0  # least time between fetches of the JWKS for an unknown kid
METADATA_TTL_SECONDS = 3600.0  # discovery and keys are fetched again after this, rotation or not
RETRY_AFTER_SECONDS = 5.0  # after a failed fetch, requests are answered 503 this long without asking again
FETCH_TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 512 * 1024
MAX_TOKEN_BYTES = 16 * 1024


def _refused(message: str) -> Unauthenticated:
    return Unauthenticated(message, detail={"bearer_error": "invalid_token"})


@dataclass(frozen=True)
class ProviderMetadata:
    """What an issuer's discovery document says Headwater needs."""

    issuer: str
    jwks_uri: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    end_session_endpoint: str | None = None


@dataclass(frozen=True)
class TokenResponse:
    """The token endpoint's answer to a code exchange (the ID token is still to be verified)."""

    id_token: str
    access_token: str | None = None


class OidcProvider:
    """One issuer's discovery document and keys, fetched through the egress policy and cached (thread-safe)."""

    def __init__(
        self,
        issuer: str,
        egress: EgressPolicy,
        *,
        refetch_seconds: float = JWKS_REFETCH_SECONDS,
        retry_after: float = RETRY_AFTER_SECONDS,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.egress = egress
        self.refetch_seconds = refetch_seconds
        self.retry_after = retry_after
        self.clock = clock
        self._client = http_client(egress, timeout=timeout)
        self._lock = threading.Lock()
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._keys: tuple[float, KeySet] | None = None
        self._failed_until = 0.0
        self._last_refetch = float("-inf")  # the last fetch for an unknown kid
        self.jwks_fetches = 0  # how often the keys were fetched (tests and the benchmark read it)

    # ---------------------------------------------------------------------------------- fetching

    def _unavailable(self, why: str) -> IdentityProviderUnavailable:
        self._failed_until = self.clock() + self.retry_after
        return IdentityProviderUnavailable(
            f"the identity provider {self.issuer} cannot be reached ({why}); sign-in and OIDC tokens are "
            "refused until it answers, API tokens still work",
            detail={"issuer": self.issuer, "retry_after": round(self.retry_after)},
        )

    def _check_backoff(self) -> None:
        if self.clock() < self._failed_until:
            raise IdentityProviderUnavailable(
                f"the identity provider {self.issuer} could not be reached a moment ago; try again shortly",
                detail={"issuer": self.issuer, "retry_after": round(self.retry_after)},
            )

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            with stream(self._client, self.egress, url, headers={"Accept": "application/json"}) as response:
                if response.status_code != 200:
                    raise self._unavailable(f"its {what} answered HTTP {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise self._unavailable(f"its {what} is larger than {MAX_DOCUMENT_BYTES} bytes")
        except EgressRefused as exc:
            raise self._unavailable(f"the egress policy refuses it: {exc.message}") from None
        except Unreachable:
            raise self._unavailable(f"could not connect for its {what}") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"its {what} did not answer: {type(exc).__name__}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise self._unavailable(f"its {what} is not JSON") from None
        if not isinstance(document, dict):
            raise self._unavailable(f"its {what} is not a JSON object")
        return document

    def metadata(self) -> ProviderMetadata:
        """The discovery document (fetched on first use, then every ``METADATA_TTL_SECONDS``)."""
        cached = self._metadata
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        with self._lock:
            cached = self._metadata
            if cached is not None and cached[0] > self.clock():
                return cached[1]
            self._check_backoff()
            document = self._get_json(f"{self.issuer}/.well-known/openid-configuration", "discovery document")
            if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                raise self._unavailable(f"its discovery document names another issuer, {document.get('issuer')!r}")
            if not isinstance(document.get("jwks_uri"), str):
                raise self._unavailable("its discovery document names no jwks_uri")

            def text(name: str) -> str | None:
                value = document.get(name)
                return value if isinstance(value, str) else None

            metadata = ProviderMetadata(
                issuer=str(document["issuer"]),
                jwks_uri=document["jwks_uri"],
                authorization_endpoint=text("authorization_endpoint"),
                token_endpoint=text("token_endpoint"),
                end_session_endpoint=text("end_session_endpoint"),
            )
            self._metadata = (self.clock() + METADATA_TTL_SECONDS, metadata)
            return metadata

    def _fetch_keys(self) -> KeySet:
        # Called with the lock held.
        self._check_backoff()
        jwks_uri = self._metadata[1].jwks_uri if self._metadata else None
        if jwks_uri is None:
            raise self._unavailable("no discovery document")
        document = self._get_json(jwks_uri, "key set (JWKS)")
        keys = document.get("keys")
        if not isinstance(keys, list):
            raise self._unavailable("its key set (JWKS) has no keys")
        # Keys of a type or curve this library cannot use are left out, not fatal: the others still verify.
        usable = []
        for key in keys:
            try:
                KeySet.import_key_set({"keys": [key]})
            except (JoseError, ValueError, TypeError, KeyError):
                log.warning("the identity provider's JWKS holds a key Headwater cannot use (kid %r)", key.get("kid"))
                continue
            if key.get("use", "sig") == "sig":
                usable.append(key)
        key_set = KeySet.import_key_set({"keys": usable})
        self.jwks_fetches += 1
        self._keys = (self.clock(), key_set)
        return key_set

    def key_set(self, kid: str | None) -> KeySet:
        """The issuer's keys, fetched again when ``kid`` is unknown (rate-limited) or they are old."""
        self.metadata()
        cached = self._keys
        now = self.clock()
        if cached is not None and now - cached[0] < METADATA_TTL_SECONDS and _holds(cached[1], kid):
            return cached[1]
        with self._lock:
            cached = self._keys
            now = self.clock()
            if cached is None or now - cached[0] >= METADATA_TTL_SECONDS:
                return self._fetch_keys()
            if _holds(cached[1], kid) or now - self._last_refetch < self.refetch_seconds:
                return cached[1]
            log.info("a token names key id %r, which the JWKS does not hold: fetching the JWKS again", kid)
            self._last_refetch = now
            return self._fetch_keys()

    # ------------------------------------------------------------------------------ code exchange

    def exchange_code(
        self, *, code: str, redirect_uri: str, code_verifier: str, client_id: str, client_secret: str | None
    ) -> TokenResponse:
        """Trade an authorization code (and its PKCE verifier) for tokens at the token endpoint."""
        endpoint = self.metadata().token_endpoint
        if endpoint is None:
            raise self._unavailable("its discovery document names no token_endpoint")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        form["code_verifier"] = code_verifier
        auth = httpx.BasicAuth(client_id, client_secret) if client_secret else None
        if auth is None:
            form["client_id"] = client_id  # a public client names itself; PKCE is its proof
        try:
            self.egress.check_url(endpoint, resolve=False)
            response = self._client.post(
                endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT, headers={"Accept": "application/json"}
            )
        except EgressRefused as exc:
            raise self._unavailable(f"the egress policy refuses it: {exc.message}") from None
        except Unreachable:
            raise self._unavailable("could not connect to its token endpoint") from None
        except httpx.HTTPError as exc:
            raise self._unavailable(f"its token endpoint did not answer: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500:
            raise self._unavailable(f"its token endpoint answered HTTP {response.status_code}")
        if response.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            error = body.get("error") if isinstance(body, dict) else None
            raise _refused(
                f"the identity provider refused the sign-in code ({error or f'HTTP {response.status_code}'}); "
                "sign in again"
            )
        access = body.get("access_token")
        return TokenResponse(id_token=body["id_token"], access_token=access if isinstance(access, str) else None)

    def close(self) -> None:
        """Close the HTTP client's connections."""
        self._client.close()


def _holds(key_set: KeySet, kid: str | None) -> bool:
    if kid is None:
        return bool(key_set.keys)
    return any(key.kid == kid for key in key_set.keys)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (Keycloak's ``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _groups(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(g for g in value.replace(",", " ").split() if g)
    if isinstance(value, list):
        return frozenset(g for g in value if isinstance(g, str) and g)
    return frozenset()


def _is_service(claims: Mapping[str, Any]) -> bool:
    """Whether a token was issued to a client for itself (client credentials), not to a person.

    Providers say so differently: the subject is the client itself (RFC 9068 access tokens, oidc-provider, Okta,
    Auth0's ``gty``), Azure AD's ``idtyp: app``, Keycloak's ``service-account-`` user.
    """
    sub = claims.get("sub")
    if sub is not None and sub in (claims.get("client_id"), claims.get("azp"), claims.get("clientId")):
        return True
    if claims.get("idtyp") == "app" or claims.get("gty") == "client-credentials":
        return True
    return str(claims.get("preferred_username", "")).startswith("service-account-")


class OidcVerifier:
    """Verifies bearer JWTs (and the UI's ID tokens) of one issuer and names their holder."""

    def __init__(
        self,
        provider: OidcProvider,
        *,
        audience: str,
        client_id: str | None = None,
        user_claim: str = "preferred_username",
        groups_claim: str = "groups",
        algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS,
    ) -> None:
        refused = sorted(a for a in algorithms if a not in ALLOWED_ALGORITHMS)
        if refused:
            raise ValueError(f"algorithms {refused} are not allowed (asymmetric signatures only)")
        self.provider = provider
        self.audience = audience
        self.client_id = client_id
        self.user_claim = user_claim
        self.groups_claim = groups_claim
        self.algorithms = algorithms

    @classmethod
    def from_settings(cls, settings: Settings, egress: EgressPolicy) -> OidcVerifier:
        """The verifier of ``settings.oidc_issuer``; StartRefused when no audience can be named."""
        assert settings.oidc_issuer is not None
        audience = settings.oidc_audience or settings.oidc_client_id
        if not audience:
            raise StartRefused(
                "HEADWATER_OIDC_ISSUER is set but neither HEADWATER_OIDC_AUDIENCE nor HEADWATER_OIDC_CLIENT_ID: "
                "bearer JWTs could not be checked for being meant for this server"
            )
        parts = urlsplit(settings.oidc_issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise StartRefused(f"HEADWATER_OIDC_ISSUER {settings.oidc_issuer!r} is not an http(s) URL")
        provider = OidcProvider(settings.oidc_issuer, egress)
        return cls(
            provider,
            audience=audience,
            client_id=settings.oidc_client_id,
            user_claim=settings.oidc_user_claim,
            groups_claim=settings.oidc_groups_claim,
        )

    def __call__(self, token: str) -> Identity:
        """The identity of a bearer JWT (an access token for ``audience``); Unauthenticated when it fails a check."""
        claims = self.verify(token, audience=self.audience)
        return self.identity(claims)

    def verify_id_token(self, token: str, *, nonce: str) -> Identity:
        """The identity of the UI sign-in's ID token: for the UI's client, carrying the sign-in's nonce."""
        if self.client_id is None:
            raise _refused("no OIDC client id is configured for sign-in")
        claims = self.verify(token, audience=self.client_id)
        if claims.get("nonce") != nonce:
            raise _refused("the ID token does not carry this sign-in's nonce; sign in again")
        audiences = claims.get("aud")
        if isinstance(audiences, list) and len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise _refused("the ID token was issued to another client (azp); sign in again")
        return self.identity(claims)

    def verify(self, token: str, *, audience: str) -> dict[str, Any]:
        """The claims of a JWT whose algorithm, signature, issuer, audience and lifetime all check out."""
        if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise _refused("the bearer token is neither an API token (hw_...) nor a JWT")
        try:
            header = jws.extract_compact(token.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeError):
            raise _refused("the bearer token is not a well-formed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise _refused(f"the JWT's algorithm {alg!r} is not accepted (accepted: {', '.join(self.algorithms)})")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _refused("the JWT's key id (kid) is not a string")
        key_set = self.provider.key_set(kid)
        if not _holds(key_set, kid):
            raise _refused("the JWT is signed with a key the identity provider does not publish")
        try:
            decoded = jwt.decode(token, key_set, algorithms=list(self.algorithms))
        except BadSignatureError:
            raise _refused("the JWT's signature does not verify") from None
        except (JoseError, ValueError, TypeError):
            raise _refused("the JWT cannot be verified with the identity provider's keys") from None
        claims = dict(decoded.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.provider.issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise _refused("the JWT has expired; get a new one from the identity provider") from None
        except MissingClaimError as exc:
            raise _refused(f"the JWT lacks a required claim ({exc.description})") from None
        except InvalidClaimError as exc:
            claim = exc.claim
            if claim == "iss":
                raise _refused("the JWT was issued by another issuer (iss)") from None
            if claim == "aud":
                raise _refused(f"the JWT is not meant for this server (aud must include {audience!r})") from None
            raise _refused(f"the JWT's claim {claim!r} is invalid (not yet valid, or malformed)") from None
        except JoseError:
            raise _refused("the JWT's claims are invalid") from None
        return claims

    def identity(self, claims: Mapping[str, Any]) -> Identity:
        """Who a verified token names: user or service account, and its groups."""
        service = _is_service(claims)
        name = _claim(claims, self.user_claim)
        if not isinstance(name, str) or not name:
            fallback = claims.get("client_id") or claims.get("azp") if service else None
            name = fallback if isinstance(fallback, str) and fallback else claims["sub"]
        if service and str(name).startswith("service-account-"):
            client = claims.get("client_id") or claims.get("azp")
            name = client if isinstance(client, str) and client else name
        exp = claims.get("exp")
        return Identity(
            name=str(name),
            kind=PrincipalKind.SERVICE if service else PrincipalKind.USER,
            groups=_groups(_claim(claims, self.groups_claim)),
            expires_at=float(exp) if isinstance(exp, int | float) else None,
        )
