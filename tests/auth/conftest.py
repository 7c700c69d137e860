"""Fixtures of the identity tests: an app with authentication on, and tokens made through the services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from oidc_provider import oidc_app, oidc_client, oidc_provider, oidc_stack  # noqa: F401  (fixtures)
from sqlalchemy import Engine
from suite_tables import empty_tables

from headwater.app import create_app
from headwater.auth.actions import Action, Role
from headwater.auth.models import SubjectKind
from headwater.auth.roles import bind
from headwater.auth.tokens import create_token
from headwater.db import make_sessionmaker
from headwater.settings import Settings

# Makes a token: mint(name, roles=..., groups=..., scopes=..., kind=...) -> the secret.
Mint = Callable[..., str]


@pytest.fixture(scope="session")
def auth_settings(app_settings: Settings) -> Settings:
    """The suite's settings with API-token authentication on and no default role (roles come from bindings)."""
    return app_settings.model_copy(update={"auth": "on", "auth_default_role": "none"})


@pytest.fixture(scope="session")
def auth_app(auth_settings: Settings) -> FastAPI:
    """The application with authentication on, on the suite's database."""
    return create_app(auth_settings, prepare=False)


@pytest.fixture
async def auth_client(auth_app: FastAPI, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the authenticated app, sending no credential unless a test adds one."""
    transport = httpx.ASGITransport(app=auth_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as client:
        yield client
    auth_app.state.dataset_cache.clear()
    auth_app.state.authenticator.forget()
    empty_tables(engine)


@pytest.fixture
def mint(engine: Engine) -> Iterator[Mint]:
    """Make a token of a user (or service account) holding ``roles``, through the services."""
    factory = make_sessionmaker(engine)

    def make(
        name: str,
        *,
        roles: tuple[Role, ...] = (),
        groups: tuple[str, ...] = (),
        scopes: tuple[Action, ...] | None = None,
        namespaces: tuple[str, ...] | None = None,
        kind: SubjectKind = SubjectKind.USER,
    ) -> str:
        with factory.begin() as session:
            for role in roles:
                bind(session, kind=kind, subject=name, role=role, by="test")
            _, secret = create_token(
                session, kind=kind, name=name, label="test", groups=groups, scopes=scopes, namespaces=namespaces
            )
        return secret

    yield make
    empty_tables(engine)
