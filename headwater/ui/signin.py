"""Signing in to the UI with the OIDC provider: ``/ui/login``, ``/ui/auth/callback``, ``/ui/logout``.

The authorization-code flow with PKCE (S256), a ``state`` and a ``nonce``, all three made per sign-in and carried to
the callback in a signed cookie of ten minutes (``headwater_signin``, path ``/ui/auth``). The callback trades the
code for tokens at the provider (through the egress policy), verifies the ID token (signature, issuer, audience =
the client id, expiry, nonce) and sets the session cookie (:mod:`headwater.api.session`). ``?next=`` is followed only
to a path on this server. Sign-out is a POST carrying the session's CSRF token. Configuration: docs/security/oidc.md.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from headwater.api.auth import allow
from headwater.api.session import LOGIN_PATH, SESSION_COOKIE, SessionSigner, UiSession, local_next
from headwater.auth.actions import Action
from headwater.auth.oidc import OidcVerifier
from headwater.errors import HeadwaterError, InvalidInput, NotFound, Unauthenticated
from headwater.ui.routes import _error_page, _page, sign_in_link

__all__ = ["CALLBACK_PATH", "LOGOUT_PATH", "signin_router"]

log = logging.getLogger("headwater.auth.signin")

CALLBACK_PATH = "/ui/auth/callback"
LOGOUT_PATH = "/ui/logout"
SIGNED_OUT_PATH = "/ui/signed-out"
SIGNIN_COOKIE = "headwater_signin"
SIGNIN_SECONDS = 600

signin_router = APIRouter(include_in_schema=False, dependencies=[allow(Action.PUBLIC)])


def _oidc(request: Request) -> OidcVerifier:
    verifier: OidcVerifier | None = getattr(request.app.state, "oidc", None)
    if verifier is None or verifier.client_id is None:
        raise NotFound(
            "this server has no OIDC sign-in configured (HEADWATER_OIDC_ISSUER and HEADWATER_OIDC_CLIENT_ID); "
            "use an API token, or ask its operator (docs/security/oidc.md)"
        )
    return verifier


def _signer(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.session_signer
    return signer


def _redirect_uri(request: Request) -> str:
    configured: str | None = request.app.state.settings.oidc_redirect_uri
    return configured or str(request.base_url).rstrip("/") + CALLBACK_PATH


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@signin_router.get(LOGIN_PATH)
def login(request: Request) -> Response:
    """Send the visitor to the provider to sign in, and back to ``next`` (a local path) afterwards."""
    target = local_next(request.query_params.get("next"))
    try:
        verifier = _oidc(request)
        endpoint = verifier.provider.metadata().authorization_endpoint
        if endpoint is None:
            raise NotFound("the identity provider's discovery document names no authorization_endpoint")
    except HeadwaterError as exc:
        return _error_page(exc)
    state, nonce, code_verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(64)
    settings = request.app.state.settings
    url = add_params_to_uri(
        endpoint,
        [
            ("response_type", "code"),
            ("client_id", str(verifier.client_id)),
            ("redirect_uri", _redirect_uri(request)),
            ("scope", settings.oidc_scopes),
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", create_s256_code_challenge(code_verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    response = RedirectResponse(url, status_code=302)
    cookie = _signer(request).dumps_signin({"s": state, "n": nonce, "v": code_verifier, "next": target})
    response.set_cookie(
        SIGNIN_COOKIE,
        cookie,
        max_age=SIGNIN_SECONDS,
        path="/ui/auth",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return response


@signin_router.get(CALLBACK_PATH)
def callback(request: Request) -> Response:
    """Where the provider sends the visitor back: check ``state``, trade the code, verify the ID token, sign in."""
    params = request.query_params
    raw = request.cookies.get(SIGNIN_COOKIE)
    pending = _signer(request).loads_signin(raw, max_age=SIGNIN_SECONDS) if raw else None
    try:
        verifier = _oidc(request)
        if params.get("error"):
            error = params.get("error", "")[:100]
            raise Unauthenticated(f"the identity provider did not sign you in ({error}); sign in again")
        if pending is None:
            raise InvalidInput(
                "this sign-in was not started here, or took longer than ten minutes; sign in again from the start"
            )
        state, code = params.get("state"), params.get("code")
        if not state or not hmac.compare_digest(state.encode(), pending["s"].encode()):
            raise InvalidInput("the sign-in's state does not match the one this browser started; sign in again")
        if not code or len(code) > 2048:
            raise InvalidInput("the identity provider sent no authorization code; sign in again")
        tokens = verifier.provider.exchange_code(
            code=code,
            redirect_uri=_redirect_uri(request),
            code_verifier=pending["v"],
            client_id=str(verifier.client_id),
            client_secret=_client_secret(request),
        )
        identity = verifier.verify_id_token(tokens.id_token, nonce=pending["n"])
    except HeadwaterError as exc:
        again = sign_in_link(request, local_next(pending.get("next") if pending else None))
        refused = _error_page(exc, sign_in=again if exc.status_code in (400, 401) else None)
        refused.delete_cookie(SIGNIN_COOKIE, path="/ui/auth")
        return refused
    signer = _signer(request)
    session = UiSession.fresh(identity, lifetime=signer.max_age)
    log.info("signed in to the UI: %s %s", identity.kind.value, identity.name)
    response = RedirectResponse(local_next(pending.get("next")), status_code=303)
    response.delete_cookie(SIGNIN_COOKIE, path="/ui/auth")
    response.set_cookie(
        SESSION_COOKIE,
        signer.dumps(session),
        max_age=int(session.expires_at - time.time()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    return response


def _client_secret(request: Request) -> str | None:
    secret = request.app.state.settings.oidc_client_secret
    return secret.get_secret_value() if secret is not None else None


@signin_router.get(SIGNED_OUT_PATH)
def signed_out() -> Response:
    """The page after signing out, with a link to sign in again."""
    return _page("signed_out.html")


@signin_router.post(LOGOUT_PATH)
def logout(request: Request) -> Response:
    """End the session (its CSRF token was checked by the session middleware) and say so on a public page: the
    search page would send the now anonymous visitor to sign in, and the provider, still remembering them, would
    sign them straight back in."""
    response = RedirectResponse(SIGNED_OUT_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response
