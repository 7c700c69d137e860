"""A revocation made on one server, or with the CLI, holds on every other server at its next poll of the auth
epoch, not only when that server's credential cache expires. Two applications over one database stand in for two
server processes (each has its own credential cache, as a process does); the poll is run by hand, as the
server's background loop runs it every ``auth_revocation_poll_seconds``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from headwater.app import create_app
from headwater.auth import service
from headwater.auth.actions import Role
from headwater.auth.models import SubjectKind
from headwater.db import make_sessionmaker
from headwater.settings import Settings

pytestmark = pytest.mark.anyio
Mint = Callable[..., str]


@pytest.fixture
async def other(auth_settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A second server over the same database, with a cache lifetime long enough that only the poll can help."""
    app = create_app(auth_settings.model_copy(update={"auth_cache_seconds": 300}), prepare=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as client:
        yield app, client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_token_revoked_on_one_server_is_refused_by_another_after_its_poll(
    auth_client: httpx.AsyncClient, other: tuple[FastAPI, httpx.AsyncClient], mint: Mint
) -> None:
    second_app, second = other
    second_app.state.revocations.run_once()  # the poll's first reading, as at start
    ann = bearer(mint("ann", roles=(Role.VIEWER,)))
    assert (await second.get("/api/v1/me", headers=ann)).status_code == 200  # now cached on the second server
    (token,) = (await auth_client.get("/api/v1/tokens", headers=ann)).json()["items"]
    assert (await auth_client.delete(f"/api/v1/tokens/{token['id']}", headers=ann)).status_code == 200
    assert (await auth_client.get("/api/v1/me", headers=ann)).status_code == 401  # the first server: at once
    assert (await second.get("/api/v1/me", headers=ann)).status_code == 200  # the cache still holds it...
    second_app.state.revocations.run_once()
    refused = await second.get("/api/v1/me", headers=ann)  # ...until the poll sees the epoch move
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers


async def test_a_role_taken_back_or_an_account_disabled_with_the_cli_holds_on_a_server_after_its_poll(
    auth_client: httpx.AsyncClient, other: tuple[FastAPI, httpx.AsyncClient], mint: Mint, engine: Engine
) -> None:
    second_app, second = other
    second_app.state.revocations.run_once()
    root = bearer(mint("root", roles=(Role.ADMIN,)))
    robot = bearer(mint("robot", roles=(Role.EDITOR,), kind=SubjectKind.SERVICE))
    factory = make_sessionmaker(engine)
    with factory.begin() as session:
        service.create_service_account(session, name="robot", description=None, groups=[], by="test")
    assert (await second.get("/api/v1/audit", headers=root)).status_code == 200
    assert (await second.get("/api/v1/me", headers=robot)).status_code == 200
    # What `headwater roles revoke` and `headwater service-accounts disable` do: the services, in their own
    # transactions, in another process than either server.
    with factory.begin() as session:
        service.revoke(session, subject_kind="user", subject="root", role=Role.ADMIN)
    with factory.begin() as session:
        service.disable_service_account(session, "robot")
    assert (await second.get("/api/v1/audit", headers=root)).status_code == 200  # cached as an admin still
    second_app.state.revocations.run_once()
    refused = await second.get("/api/v1/audit", headers=root)
    assert refused.status_code == 403 and refused.json()["error"]["detail"]["permission"] == "audit.read"
    assert (await second.get("/api/v1/me", headers=robot)).status_code == 401
    # A poll that finds nothing new keeps the cache: a live credential is not verified again for nothing.
    ann = bearer(mint("ann", roles=(Role.VIEWER,)))
    assert (await second.get("/api/v1/me", headers=ann)).status_code == 200
    second_app.state.revocations.run_once()
    assert second_app.state.authenticator.cached(ann["Authorization"]) is not None
