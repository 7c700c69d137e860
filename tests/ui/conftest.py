"""Fixtures of the UI's form tests: an app with authentication on, and browsers signed in to it (signed_in.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from signed_in import HOST, Browser
from sqlalchemy import Engine
from suite_tables import empty_tables

from headwater.api.session import SESSION_COOKIE, UiSession
from headwater.app import create_app
from headwater.auth.actions import Role
from headwater.auth.authenticate import Identity
from headwater.auth.models import SubjectKind
from headwater.auth.principal import PrincipalKind
from headwater.auth.roles import bind
from headwater.db import make_sessionmaker
from headwater.settings import Settings

# The things the edge tests act on (tests/auth/owned.py), made through the services: shared, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "auth"))


@pytest.fixture(scope="session")
def ui_auth_app(app_settings: Settings) -> FastAPI:
    """The application with authentication on and no default role (roles come from bindings)."""
    return create_app(app_settings.model_copy(update={"auth": "on", "auth_default_role": "none"}), prepare=False)


@pytest.fixture
async def browser(ui_auth_app: FastAPI, engine: Engine) -> AsyncIterator[Browser]:
    """Make clients signed in to the UI, each as one user with the roles bound to it."""
    opened: list[httpx.AsyncClient] = []
    factory = make_sessionmaker(engine)

    async def sign_in(name: str, *, roles: tuple[Role, ...] = (), groups: tuple[str, ...] = ()) -> httpx.AsyncClient:
        with factory.begin() as session:
            for role in roles:
                bind(session, kind=SubjectKind.USER, subject=name, role=role, by="test")
        identity = Identity(name=name, kind=PrincipalKind.USER, groups=frozenset(groups))
        cookie = ui_auth_app.state.session_signer.dumps(UiSession.fresh(identity, lifetime=3600))
        transport = httpx.ASGITransport(app=ui_auth_app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url=f"http://{HOST}")
        client.cookies.set(SESSION_COOKIE, cookie, domain=HOST)
        opened.append(client)
        return client

    yield sign_in
    for client in opened:
        await client.aclose()
    ui_auth_app.state.dataset_cache.clear()
    ui_auth_app.state.authenticator.forget()
    empty_tables(engine)
