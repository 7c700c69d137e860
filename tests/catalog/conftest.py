"""Fixtures of the catalog tests: a recording HTTP endpoint, and servers with settings of the test's choosing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from secrets_fixtures import MakeServer, RecordingEndpoint

from headwater.app import create_app
from headwater.settings import Settings


@pytest.fixture
def endpoint() -> Iterator[RecordingEndpoint]:
    """A recording endpoint on 127.0.0.1, stopped after the test."""
    server = RecordingEndpoint().start()
    yield server
    server.stop()


@pytest.fixture
async def server_with(app_settings: Settings, client: httpx.AsyncClient) -> AsyncIterator[MakeServer]:
    """Clients of servers on the suite's database, with the suite's settings changed as the test says
    (``server_with(secrets_allowed_env=["ICEBERG_*"])``); the tables are emptied after the test."""
    apps: list[FastAPI] = []
    clients: list[httpx.AsyncClient] = []

    def make(**changes: Any) -> httpx.AsyncClient:
        app = create_app(app_settings.model_copy(update=changes), prepare=False)
        apps.append(app)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://headwater.test"))
        return clients[-1]

    yield make
    for made in clients:
        await made.aclose()
    for app in apps:
        app.state.engine.dispose()
