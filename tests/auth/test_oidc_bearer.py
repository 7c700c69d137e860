"""Bearer JWTs from a real OpenID Connect provider (oidc-provider): accepted when every check passes, refused with
401 invalid_token when one fails, 503 (never 500, never let in) when the issuer cannot be asked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI
from oidc_provider import (
    AUDIENCE,
    SERVICE_CLIENT,
    SERVICE_GROUPS,
    OidcTestProvider,
    Stack,
    in_process_client,
    new_key,
)
from sqlalchemy import Engine

from headwater.api.auth import allow
from headwater.auth.actions import Action, Role
from headwater.auth.models import SubjectKind
from headwater.auth.principal import Principal
from headwater.auth.roles import bind
from headwater.db import make_sessionmaker

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

WHOAMI = "/test/whoami"
READ = "/test/read"  # a route needing catalog.read (the real routes' declarations are another change's)


def add_whoami(app: FastAPI) -> None:
    """A route answering who the request's principal is (the tests' window on the Authenticator)."""
    if any(getattr(route, "path", None) == WHOAMI for route in app.router.routes):
        return

    def whoami(principal: Annotated[Principal, allow(Action.SELF)]) -> dict[str, Any]:
        return {
            "name": principal.name,
            "kind": principal.kind.value,
            "groups": sorted(principal.groups),
            "roles": sorted(role.value for role in principal.roles),
        }

    def read() -> dict[str, str]:
        return {"read": "ok"}

    app.router.add_api_route(WHOAMI, whoami, methods=["GET"])
    app.router.add_api_route(READ, read, methods=["GET"], dependencies=[allow(Action.CATALOG_READ)])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(response: httpx.Response) -> str:
    """The message of a 401 invalid_token (asserting it is one)."""
    assert response.status_code == 401, response.text
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    return str(response.json()["error"]["message"])


def grant(engine: Engine, *, kind: SubjectKind, subject: str, role: Role) -> None:
    with make_sessionmaker(engine).begin() as session:
        bind(session, kind=kind, subject=subject, role=role, by="test")


@pytest.fixture
def whoami_app(oidc_app: FastAPI) -> FastAPI:
    add_whoami(oidc_app)
    return oidc_app


async def test_a_client_credentials_jwt_names_the_service_account_and_its_groups_grant_roles(
    whoami_app: FastAPI, oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider, engine: Engine
) -> None:
    token = oidc_provider.client_credentials()
    # No binding yet (the default role is none): known, but not allowed to read the catalog.
    who = await oidc_client.get(WHOAMI, headers=bearer(token))
    assert who.status_code == 200, who.text
    assert who.json() == {"name": SERVICE_CLIENT, "kind": "service", "groups": SERVICE_GROUPS, "roles": []}
    listing = await oidc_client.get(READ, headers=bearer(token))
    assert listing.status_code == 403
    assert listing.json()["error"]["detail"]["permission"] == "catalog.read"

    grant(engine, kind=SubjectKind.GROUP, subject=SERVICE_GROUPS[0], role=Role.EDITOR)
    whoami_app.state.authenticator.forget()
    who = await oidc_client.get(WHOAMI, headers=bearer(token))
    assert who.json()["roles"] == ["editor"]
    listing = await oidc_client.get(READ, headers=bearer(token))
    assert listing.status_code == 200, listing.text


async def test_a_user_jwt_uses_the_user_claim_for_its_name(
    whoami_app: FastAPI, oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider
) -> None:
    token = oidc_provider.sign({"sub": "u-123", "preferred_username": "carol", "groups": ["analysts"]})
    who = await oidc_client.get(WHOAMI, headers=bearer(token))
    assert who.status_code == 200, who.text
    assert who.json() == {"name": "carol", "kind": "user", "groups": ["analysts"], "roles": []}


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
        ({"aud": "https://another.example/api"}, "not meant for this server"),
        ({"iss": "http://127.0.0.1:1"}, "another issuer"),
        ({"nbf": int(time.time()) + 3600}, "invalid"),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "not-yet-valid"],
)
async def test_a_jwt_failing_a_claim_check_is_refused(
    whoami_app: FastAPI,
    oidc_client: httpx.AsyncClient,
    oidc_provider: OidcTestProvider,
    claims: dict[str, Any],
    expected: str,
) -> None:
    token = oidc_provider.sign(claims)
    assert expected in refused(await oidc_client.get(WHOAMI, headers=bearer(token)))


async def test_a_tampered_jwt_is_refused(
    whoami_app: FastAPI, oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider
) -> None:
    header, payload, signature = oidc_provider.client_credentials().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["groups"] = ["platform-admins"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert "signature" in refused(await oidc_client.get(WHOAMI, headers=bearer(f"{header}.{forged}.{signature}")))


async def test_alg_none_and_hmac_keyed_with_the_public_key_are_refused(
    whoami_app: FastAPI, oidc_client: httpx.AsyncClient, oidc_provider: OidcTestProvider
) -> None:
    def b64(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"iss": oidc_provider.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 300}
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    assert "'none' is not accepted" in refused(await oidc_client.get(WHOAMI, headers=bearer(unsigned)))

    # The classic key confusion: HMAC keyed with the provider's public key, which anyone can fetch.
    public_pem = oidc_provider.key.as_pem(private=False)
    signed = f"{b64({'alg': 'HS256', 'kid': oidc_provider.key.kid})}.{b64(claims)}"
    mac = hmac.new(public_pem, signed.encode(), hashlib.sha256).digest()
    confused = f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert "'HS256' is not accepted" in refused(await oidc_client.get(WHOAMI, headers=bearer(confused)))


async def test_garbage_bearer_tokens_are_refused_without_asking_the_provider(
    whoami_app: FastAPI, oidc_client: httpx.AsyncClient
) -> None:
    verifier = whoami_app.state.oidc
    verifier.provider.key_set(None)  # the keys a first real token fetches, whichever test ran first
    fetches = verifier.provider.jwks_fetches
    for token in ("not-a-jwt", "a.b.c", "x" * 20_000, "eyJhbGciOiJSUzI1NiJ9.e30.", "...."):
        refused(await oidc_client.get(WHOAMI, headers=bearer(token)))
    assert verifier.provider.jwks_fetches == fetches


async def test_keys_are_fetched_again_for_an_unknown_kid_after_rotation_and_forged_kids_stay_refused(
    oidc_stack: Stack,
) -> None:
    provider, app = oidc_stack()
    add_whoami(app)
    verifier = app.state.oidc
    async with in_process_client(app) as client:
        first = await client.get(WHOAMI, headers=bearer(provider.client_credentials()))
        assert first.status_code == 200, first.text
        assert verifier.provider.jwks_fetches == 1
        old_key = provider.key

        provider.rotate()  # the provider now signs with a new key and no longer publishes the old one
        rotated = await client.get(WHOAMI, headers=bearer(provider.client_credentials()))
        assert rotated.status_code == 200, rotated.text
        assert verifier.provider.jwks_fetches == 2  # fetched again once, for the new kid

        # A token signed with the retired key: its kid is no longer published.
        retired = provider.sign({"sub": "old"}, key=old_key)
        assert "does not publish" in refused(await client.get(WHOAMI, headers=bearer(retired)))
        # Forged kids, many of them: refused, and the JWKS is not fetched again for each (rate-limited).
        for number in range(5):
            forged = provider.sign({"sub": "mallory"}, key=new_key(f"forged-{number}"))
            assert "does not publish" in refused(await client.get(WHOAMI, headers=bearer(forged)))
        assert verifier.provider.jwks_fetches == 2


async def test_an_unreachable_provider_answers_503_never_500_and_never_lets_a_token_in(
    oidc_stack: Stack, mint: Any
) -> None:
    provider, app = oidc_stack(start=False)  # down when Headwater starts
    add_whoami(app)
    verifier = app.state.oidc
    verifier.provider.retry_after = 0.0  # ask again at once (the default waits a few seconds between attempts)
    api_token = mint("dana", roles=(Role.VIEWER,))
    async with in_process_client(app) as client:
        token = provider.sign({"sub": "erin"})
        down = await client.get(WHOAMI, headers=bearer(token))
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "identity_provider_unavailable"
        assert provider.issuer in down.json()["error"]["message"]
        assert "Retry-After" in down.headers
        # API tokens do not need the provider.
        assert (await client.get(WHOAMI, headers=bearer(api_token))).status_code == 200
        # The sign-in page says so too, as a page.
        login = await client.get("/ui/login")
        assert login.status_code == 503
        assert "cannot be reached" in login.text

        provider.start()  # it comes up: the same token is now verified
        up = await client.get(WHOAMI, headers=bearer(token))
        assert up.status_code == 200, up.text

        provider.stop()  # down mid-run
        # Keys already fetched still verify tokens signed with them: nothing to ask the provider.
        cached = await client.get(WHOAMI, headers=bearer(provider.sign({"sub": "frank"})))
        assert cached.status_code == 200, cached.text
        # A kid it does not know would need the provider: 503, not 401, and never 200.
        verifier.provider.refetch_seconds = 0.0
        unknown = provider.sign({"sub": "grace"}, key=new_key("after-outage"))
        answer = await client.get(WHOAMI, headers=bearer(unknown))
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "identity_provider_unavailable"
