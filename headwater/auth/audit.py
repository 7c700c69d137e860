"""The audit log: every mutation appends who, which action, on what, when, from where, and what changed.

Written with :func:`record` in the transaction of the change itself, so a change and its entry commit or roll
back together. A summary names what changed (fields, counts, ids), never a secret's value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, event, insert, update
from sqlalchemy.orm import Session, sessionmaker

from headwater.auth.actions import Action
from headwater.auth.models import AuditEntry
from headwater.auth.principal import ANONYMOUS, Principal
from headwater.db import utcnow

__all__ = [
    "READ_ACTIONS",
    "Actor",
    "Pending",
    "begin_request",
    "describe",
    "end_request",
    "install",
    "note_mutation",
    "outcome_of",
    "record",
    "settle",
    "unaudited",
]

# Requests declaring one of these are reads, whatever their method (a GraphQL query sent by POST).
READ_ACTIONS = frozenset(
    {
        Action.CATALOG_READ,
        Action.LINEAGE_READ,
        Action.SEARCH_READ,
        Action.JOBS_READ,
        Action.JOBS_LOGS,
        Action.AUDIT_READ,
    }
)


@dataclass(frozen=True)
class Actor:
    """Who made a change, and through which request."""

    principal: Principal
    address: str | None = None
    request_id: str | None = None


def record(
    session: Session,
    actor: Actor,
    action: Action,
    *,
    method: str,
    target_kind: str,
    target: str,
    summary: Mapping[str, object] | None = None,
    outcome: str = "ok",
) -> AuditEntry:
    """Append one audit entry in ``session``'s transaction (flushed, not committed)."""
    entry = AuditEntry(
        actor=actor.principal.name,
        actor_kind=actor.principal.kind.value,
        token_id=actor.principal.token_id,
        action=action.value,
        method=method,
        target_kind=target_kind,
        target=target[:1024],
        address=actor.address,
        request_id=actor.request_id,
        outcome=outcome,
        summary=dict(summary or {}),
    )
    session.add(entry)
    session.flush()
    return entry


# ----------------------------------------------------------------------------- one request's entry
#
# The HTTP edge (headwater.api.audit.AuditWrites) puts a Pending in _current for every request that may change
# state. The first transaction such a request begins (once a principal is established) gets the request's entry as
# its first statement, so the entry commits or rolls back with the change; a rolled-back transaction leaves none,
# and the edge then writes a "failed" (or "refused") entry of its own.

OUTCOMES = ("ok", "refused", "failed")


@dataclass
class Pending:
    """The audit entry of one request that may change state, as far as it is known."""

    method: str
    target_kind: str
    target: str
    address: str | None
    state: dict[str, Any]  # the request's scope state: its principal, request id and declared action
    write: bool = True  # false for a GraphQL request until a mutation field runs
    action: str | None = None
    outcome: str | None = None
    summary: dict[str, object] = field(default_factory=dict)
    entry_id: int | None = None  # the entry inserted in a transaction still open or committed

    @property
    def principal(self) -> Principal | None:
        """The request's principal, once authentication has established it."""
        principal = self.state.get("principal")
        return principal if isinstance(principal, Principal) else None

    def values(self, outcome: str) -> dict[str, Any]:
        """The columns of this request's entry."""
        principal = self.principal or ANONYMOUS
        declared = self.state.get("action")
        action = self.action or (declared.value if isinstance(declared, Action) else "undeclared")
        return {
            "at": utcnow(),
            "actor": principal.name,
            "actor_kind": principal.kind.value,
            "token_id": principal.token_id,
            "action": action[:32],
            "method": self.method[:16],
            "target_kind": self.target_kind[:32],
            "target": self.target[:1024],
            "address": (self.address or None) and self.address[:64],
            "request_id": self.state.get("request_id"),
            "outcome": outcome,
            "summary": dict(self.summary),
        }


_current: ContextVar[Pending | None] = ContextVar("headwater_audit_pending", default=None)


def begin_request(pending: Pending) -> Token[Pending | None]:
    """Make ``pending`` the entry of the request running in this context."""
    return _current.set(pending)


def end_request(token: Token[Pending | None]) -> None:
    """Forget the request's entry (the edge has written it, or written its own)."""
    _current.reset(token)


@contextmanager
def unaudited() -> Iterator[None]:
    """Run transactions that are not the request's change (the edge's own entry, a token's last-used time)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def _insert(connection: Connection, pending: Pending) -> None:
    pending.entry_id = connection.execute(
        insert(AuditEntry).values(**pending.values("ok")).returning(AuditEntry.id)
    ).scalar_one()


def _after_begin(session: Session, transaction: Any, connection: Connection) -> None:
    pending = _current.get()
    if pending is None or not pending.write or pending.entry_id is not None or pending.principal is None:
        return
    declared = pending.state.get("action")
    if isinstance(declared, Action) and declared in READ_ACTIONS:
        pending.write = False
        return
    _insert(connection, pending)
    session.info["audit_pending"] = pending


def _after_rollback(session: Session) -> None:
    pending = session.info.pop("audit_pending", None)
    if pending is not None:
        pending.entry_id = None  # rolled back with the change: the edge writes a "failed" entry instead
        pending.outcome = pending.outcome or "failed"


def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the outermost (after_commit fires for a savepoint's release too)
        session.info.pop("audit_pending", None)


def install(factory: sessionmaker[Session]) -> None:
    """Give every write request's first transaction on ``factory``'s sessions the request's audit entry."""
    event.listen(factory, "after_begin", _after_begin)
    event.listen(factory, "after_rollback", _after_rollback)
    event.listen(factory, "after_transaction_end", _after_transaction_end)


def describe(session: Session, *, target_kind: str, target: str, **summary: object) -> None:
    """Name what the running request changed (a token's id, a binding), in its entry."""
    pending = _current.get()
    if pending is None:
        return
    pending.target_kind, pending.target = target_kind, target
    pending.summary.update(summary)
    if pending.entry_id is not None:
        session.execute(
            update(AuditEntry)
            .where(AuditEntry.id == pending.entry_id)
            .values(target_kind=target_kind[:32], target=target[:1024], summary=dict(pending.summary))
        )


def note_mutation(session: Session, action: Action, field_name: str) -> None:
    """A GraphQL mutation field is about to run: the request changes state; its entry names the field."""
    pending = _current.get()
    if pending is None or pending.entry_id is not None:
        return
    pending.write, pending.action = True, action.value
    pending.target_kind, pending.target = "graphql", field_name
    connection = session.connection()  # a transaction begun here gets the entry from _after_begin
    if pending.principal is not None and pending.entry_id is None:
        _insert(connection, pending)
        session.info["audit_pending"] = pending


def settle(session: Session, status: int) -> None:
    """The running mutation failed with ``status``: its entry says refused (401/403) or failed."""
    pending = _current.get()
    if pending is None:
        return
    pending.outcome = outcome_of(status)
    pending.summary["status"] = status
    if pending.entry_id is not None:
        session.execute(
            update(AuditEntry)
            .where(AuditEntry.id == pending.entry_id)
            .values(outcome=pending.outcome, summary=dict(pending.summary))
        )


def outcome_of(status: int) -> str:
    """The outcome an HTTP status reports."""
    if status in (401, 403):
        return "refused"
    return "failed" if status >= 400 else "ok"
