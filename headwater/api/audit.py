"""The audit log at the edge: every request that may change state gets one entry (docs/security/tokens-and-audit.md).

:class:`AuditWrites` wraps authentication, so it sees refusals (401) too. A write request's first transaction
carries its entry (:mod:`headwater.auth.audit`), committed or rolled back with the change. When no transaction
committed one (refused, failed, rolled back, or a write that touched no table), the entry is written here, in a
transaction of its own, before the answer starts: outcome ``refused`` for 401/403, ``failed`` for other errors.
Reads (GET, HEAD, OPTIONS, and routes declaring a read action) are not audited.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from sqlalchemy import insert, update
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.api.auth import route_action
from headwater.auth.audit import READ_ACTIONS, Pending, begin_request, end_request, outcome_of, unaudited
from headwater.auth.models import AuditEntry

__all__ = ["WRITE_METHODS", "AuditWrites"]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GRAPHQL_PATH = "/graphql"


def _target_kind(path: str) -> str:
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        parts = parts[2:]
    return parts[0] if parts else "root"


class AuditWrites:
    """Record one audit entry for every request that may change state, whatever its outcome."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        client = scope.get("client")
        pending = Pending(
            method=scope["method"],
            target_kind=_target_kind(path),
            target=path,
            address=client[0] if client else None,
            state=scope.setdefault("state", {}),
            write=path != GRAPHQL_PATH,  # a GraphQL request writes when a mutation field runs
        )
        token = begin_request(pending)

        async def send_after_audit(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._settle(scope, pending, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_after_audit)
        finally:
            end_request(token)

    async def _settle(self, scope: Scope, pending: Pending, status: int) -> None:
        route = scope.get("route")
        if pending.action is None and pending.state.get("action") is None and route is not None:
            declared = route_action(route)
            if declared is not None:
                if declared in READ_ACTIONS:
                    return
                pending.action = declared.value
        if not pending.write:
            return
        outcome = outcome_of(status) if status >= 400 else (pending.outcome or "ok")
        if pending.entry_id is not None and outcome == "ok":
            return
        if status >= 400:
            pending.summary.setdefault("status", status)
        if status == 401:
            pending.summary["credential"] = "refused" if _has_credential(scope) else "none"
        factory = scope["app"].state.sessionmaker
        await anyio.to_thread.run_sync(_write, factory, pending, outcome)


def _has_credential(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])


def _write(factory: Any, pending: Pending, outcome: str) -> None:
    with unaudited(), factory.begin() as session:
        if pending.entry_id is not None:  # committed with the change, yet the answer is an error
            session.execute(
                update(AuditEntry)
                .where(AuditEntry.id == pending.entry_id)
                .values(outcome=outcome, summary=dict(pending.summary))
            )
        else:
            session.execute(insert(AuditEntry).values(**pending.values(outcome)))
