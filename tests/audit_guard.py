"""The audit guard: a test fails when a write it sent to an in-process app succeeded without an audit entry.

Every request sent through ``httpx.ASGITransport`` with a write method (POST, PUT, PATCH, DELETE) that answered
below 400 must have left an entry carrying its request id (``ok``, or ``failed`` when a GraphQL request's
transaction rolled back under a 200), except a GraphQL request that ran no mutation
and a route declaring a read action. One lookup per successful write, on the suite's small tables.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import anyio.to_thread
import httpx
import orjson
import pytest
from sqlalchemy import select
from starlette.routing import Match

from headwater.api.audit import WRITE_METHODS
from headwater.api.auth import route_action, routes_of
from headwater.auth.audit import READ_ACTIONS
from headwater.auth.models import AuditEntry

_missing: list[str] = []


def _is_write(app: Any, request: httpx.Request) -> bool:
    if request.method not in WRITE_METHODS:
        return False
    path = request.url.path
    if path == "/graphql":
        try:
            query = orjson.loads(request.content).get("query", "")
        except (orjson.JSONDecodeError, AttributeError):
            return False
        return isinstance(query, str) and query.lstrip().startswith("mutation")
    scope = {"type": "http", "path": path, "method": request.method, "root_path": ""}
    for route in routes_of(getattr(app, "routes", ())):
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route_action(route) not in READ_ACTIONS
    return True


def _entry_of(engine: Any, request_id: str) -> int | None:
    with engine.connect() as connection:
        found: int | None = connection.scalar(select(AuditEntry.id).where(AuditEntry.request_id == request_id).limit(1))
    return found


def install(config: pytest.Config) -> None:
    """Check every in-process write's audit entry, and fail the test that made one without."""
    original = httpx.ASGITransport.handle_async_request

    async def checked(self: httpx.ASGITransport, request: httpx.Request) -> httpx.Response:
        response = await original(self, request)
        engine = getattr(getattr(self.app, "state", None), "engine", None)
        request_id = response.headers.get("x-request-id")
        if engine is None or request_id is None or response.status_code >= 400 or not _is_write(self.app, request):
            return response
        # In a thread: on SQLite the lookup waits for the write lock, which a request the event loop is still
        # serving may hold; blocking the loop here would hold both up until the busy timeout.
        found = await anyio.to_thread.run_sync(_entry_of, engine, request_id)
        if found is None:
            _missing.append(f"{request.method} {request.url.path} -> {response.status_code} (request {request_id})")
        return response

    httpx.ASGITransport.handle_async_request = checked  # type: ignore[method-assign]
    config.pluginmanager.register(_Plugin(), "audit_guard")


class _Plugin:
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        _missing.clear()
        yield
        if _missing:
            missing = "; ".join(_missing[:5])
            _missing.clear()
            pytest.fail(f"writes succeeded without an audit entry: {missing}", pytrace=False)
