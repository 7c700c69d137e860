"""The audit log: every mutation appends who, which action, on what, when, from where, and what changed.

Written with :func:`record` in the transaction of the change itself, so a change and its entry commit or roll
back together. A summary names what changed (fields, counts, ids), never a secret's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from headwater.auth.actions import Action
from headwater.auth.models import AuditEntry
from headwater.auth.principal import Principal

__all__ = ["Actor", "record"]


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
        summary=dict(summary or {}),
    )
    session.add(entry)
    session.flush()
    return entry
