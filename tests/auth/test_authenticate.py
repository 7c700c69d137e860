"""Authentication at the edge with API tokens: 401 with a challenge for a missing or bad credential, the
principal of a good one, revocation and expiry at once, and the mode chosen when none is configured."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from headwater.auth.actions import Role
from headwater.auth.authenticate import StartRefused, auth_mode
from headwater.auth.models import ApiToken, SubjectKind
from headwater.auth.tokens import create_token, hash_token
from headwater.cli import app as cli_app
from headwater.db import make_sessionmaker, utcnow
from headwater.settings import Settings

pytestmark = pytest.mark.anyio

Mint = Callable[..., str]  # the mint fixture of tests/auth/conftest.py


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_forged_token_is_refused_with_401_and_a_bearer_challenge_on_any_path(
    auth_client: httpx.AsyncClient,
) -> None:
    for path in ("/api/v1/datasets", "/api/v1/jobs", "/graphql", "/healthz"):
        answer = await auth_client.get(path, headers=bearer("hw_forged-token-that-was-never-issued"))
        assert answer.status_code == 401, path
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="headwater", error="invalid_token"'
        assert answer.json()["error"]["code"] == "unauthenticated"
        assert answer.headers["X-Request-Id"]


async def test_a_credential_in_another_scheme_is_refused_with_a_message_saying_which_to_use(
    auth_client: httpx.AsyncClient,
) -> None:
    answer = await auth_client.get("/api/v1/datasets", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    assert answer.status_code == 401
    assert "Authorization: Bearer" in answer.json()["error"]["message"]


async def test_probes_answer_without_a_credential(auth_client: httpx.AsyncClient) -> None:
    assert (await auth_client.get("/healthz")).status_code == 200


async def test_a_revoked_token_is_refused_at_once_and_an_expired_one_when_it_expires(
    auth_app: FastAPI, auth_client: httpx.AsyncClient, mint: Mint, engine: Engine
) -> None:
    secret = mint("alice", roles=(Role.VIEWER,))
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
        assert token is not None and token.principal_name == "alice"
        token_id = token.id
    authenticator = auth_app.state.authenticator
    assert authenticator.authenticate(f"Bearer {secret}").name == "alice"
    with factory.begin() as session:
        session.get(ApiToken, token_id).revoked_at = utcnow()  # type: ignore[union-attr]
    authenticator.forget(token_id)
    answer = await auth_client.get("/api/v1/datasets", headers=bearer(secret))
    assert answer.status_code == 401

    with factory.begin() as session:
        _, short = create_token(
            session,
            kind=SubjectKind.USER,
            name="bob",
            label="short",
            expires_at=utcnow() + dt.timedelta(milliseconds=300),
        )
    assert authenticator.authenticate(f"Bearer {short}").name == "bob"
    time.sleep(0.4)
    assert (await auth_client.get("/api/v1/datasets", headers=bearer(short))).status_code == 401


async def test_the_first_use_records_when_a_token_was_last_used(auth_app: FastAPI, mint: Mint, engine: Engine) -> None:
    secret = mint("carol", roles=(Role.VIEWER,))
    principal = auth_app.state.authenticator.authenticate(f"Bearer {secret}")
    assert principal.roles == frozenset({Role.VIEWER})
    with make_sessionmaker(engine)() as session:
        token = session.get(ApiToken, principal.token_id)
        assert token is not None and token.last_used_at is not None


def test_with_no_authentication_configured_loopback_is_local_and_any_other_address_refuses_to_start() -> None:
    assert auth_mode(Settings(host="127.0.0.1")) == "local"
    assert auth_mode(Settings(host="::1")) == "local"
    with pytest.raises(StartRefused, match="HEADWATER_AUTH=none"):
        auth_mode(Settings(host="0.0.0.0"))
    assert auth_mode(Settings(host="0.0.0.0", auth="none")) == "none"
    assert auth_mode(Settings(host="0.0.0.0", auth="on")) == "on"
    assert auth_mode(Settings(host="0.0.0.0", oidc_issuer="https://id.example.com")) == "on"


async def test_local_mode_answers_this_machine_only_even_when_bound_wider_by_another_launcher(app: FastAPI) -> None:
    # The suite's app runs in local mode (no authentication, loopback host in its settings); a request arriving
    # from another machine (as through `uvicorn --factory ... --host 0.0.0.0`) is refused, and says why.
    remote = httpx.ASGITransport(app=app, client=("203.0.113.9", 40000))
    async with httpx.AsyncClient(transport=remote, base_url="http://headwater.test") as client:
        answer = await client.get("/api/v1/datasets")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "local_mode"
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=local, base_url="http://headwater.test") as client:
        assert (await client.get("/api/v1/datasets")).status_code == 200


def test_serve_refuses_to_bind_a_public_address_without_authentication(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli_app, ["serve", "--host", "0.0.0.0", "--port", "1"], env={"HEADWATER_DATA_DIR": str(tmp_path)}
    )
    assert result.exit_code != 0
    assert "HEADWATER_AUTH=none" in result.output and "0.0.0.0" in result.output
