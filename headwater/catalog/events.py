"""The change-event outbox: rows appended in the same transaction as the change they describe, and the
feed consumers (search indexing, notifications) read in id order.

On PostgreSQL a sequence hands out ids in call order but transactions commit in any order, so a
consumer that stored "after=41" could miss id 40 committing late. Writers therefore take one
transaction-scoped advisory lock just before appending, held until commit: ids become visible in
order. Appending is the last step of a write so the lock is held only for the commit. SQLite has a
single writer, so there is nothing to do there.
Why one lock, and what it costs: docs/adr/0003-outbox-ordering-lock.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, or_, select, text
from sqlalchemy.orm import Session

from headwater.auth.policy import Audience
from headwater.catalog.models import ChangeEvent, ChangeEventTrim, ChangeKind, Dataset, DatasetAudience
from headwater.db import bulk_insert, in_chunks, trim_oldest, utcnow
from headwater.errors import Conflict, InvalidInput

__all__ = [
    "OUTBOX_LOCK_KEY",
    "Change",
    "check_not_trimmed",
    "list_changes",
    "record_change",
    "record_changes",
    "trim_changes",
    "trimmed_through",
]

# An arbitrary, fixed 64-bit key naming "the change outbox" among advisory locks.
OUTBOX_LOCK_KEY = 0x4857_4F55_5442_4F58  # "HWOUTBOX"


@dataclass(frozen=True)
class Change:
    """One change to append to the outbox."""

    kind: ChangeKind
    entity_type: str
    entity_id: int
    namespace: str | None = None
    name: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def record_changes(session: Session, changes: Sequence[Change]) -> None:
    """Append change events to the outbox in one statement (the caller's transaction commits them)."""
    if not changes:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_LOCK_KEY})
    now = utcnow()
    bulk_insert(
        session,
        ChangeEvent,
        [
            {
                "kind": change.kind.value,
                "entity_type": change.entity_type,
                "entity_id": change.entity_id,
                "namespace": change.namespace,
                "name": change.name,
                "payload": change.payload,
                "created_at": now,
            }
            for change in changes
        ],
    )
    # Read by the after-commit hook that keeps this process's dataset cache exact.
    session.info.setdefault("changed_entities", set()).update((c.entity_type, c.entity_id) for c in changes)


def metadata_changed(session: Session, dataset_ids: Sequence[int], payload: dict[str, Any]) -> None:
    """Something about these datasets that is not their schema changed (a restriction, their other names): bump
    each one's revision (its ETag) and append its ``metadata_updated`` event, so caches and the search index see
    it."""
    now = utcnow()
    changes: list[Change] = []
    for chunk in in_chunks(sorted(set(dataset_ids))):
        for dataset in session.scalars(select(Dataset).where(Dataset.id.in_(chunk))):
            dataset.revision += 1
            dataset.updated_at = now
            changes.append(
                Change(ChangeKind.METADATA_UPDATED, "dataset", dataset.id, dataset.namespace, dataset.name, payload)
            )
    session.flush()
    record_changes(session, changes)


def record_change(
    session: Session,
    *,
    kind: ChangeKind,
    entity_type: str,
    entity_id: int,
    namespace: str | None = None,
    name: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Append one change event to the outbox."""
    record_changes(session, [Change(kind, entity_type, entity_id, namespace, name, payload or {})])


def list_changes(
    session: Session,
    *,
    after: int = 0,
    limit: int = 100,
    entity_type: str | None = None,
    kinds: list[ChangeKind] | None = None,
    audience: Audience = None,
) -> list[ChangeEvent]:
    """Change events with id greater than ``after``, oldest first, at most ``limit``; none about a dataset
    ``audience`` may not see (the feed's ``next_after`` may then skip ids, as with any filter)."""
    if after < 0:
        raise InvalidInput(f"after must be 0 or a change event id, got {after}", detail={"field": "after"})
    if not 1 <= limit <= 1000:
        raise InvalidInput(f"limit must be between 1 and 1000, got {limit}", detail={"field": "limit"})
    check_not_trimmed(session, after)
    stmt = select(ChangeEvent).where(ChangeEvent.id > after)
    if entity_type:
        stmt = stmt.where(ChangeEvent.entity_type == entity_type)
    if kinds:
        stmt = stmt.where(ChangeEvent.kind.in_([k.value for k in kinds]))
    if audience is not None:
        stmt = stmt.where(
            or_(
                ChangeEvent.entity_type != "dataset",
                ~exists().where(DatasetAudience.dataset_id == ChangeEvent.entity_id),
                exists().where(
                    DatasetAudience.dataset_id == ChangeEvent.entity_id, DatasetAudience.member.in_(sorted(audience))
                ),
            )
        )
    return list(session.scalars(stmt.order_by(ChangeEvent.id).limit(limit)))


def latest_change_id(session: Session) -> int:
    """The id of the newest change event (at least the retention mark's), 0 when there was none."""
    return max(
        session.scalar(select(ChangeEvent.id).order_by(ChangeEvent.id.desc()).limit(1)) or 0, trimmed_through(session)
    )


# ------------------------------------------------------------------------------------ retention


def trimmed_through(session: Session) -> int:
    """The id up to which retention removed the outbox (0: nothing removed yet); a consumer behind it resyncs."""
    return session.scalar(select(ChangeEventTrim.through).where(ChangeEventTrim.id == 1)) or 0


def check_not_trimmed(session: Session, after: int) -> None:
    """Refuse to read the feed from a position retention has removed events after: they would be missed."""
    through = trimmed_through(session)
    if after < through:
        raise Conflict(
            f"after={after} is behind the change feed's retention: the events up to {through} were removed; read "
            f"the catalog afresh, then follow the feed from after={through} or a later position",
            detail={"field": "after", "trimmed_through": through},
        )


def trim_changes(session: Session, *, through: int, before: dt.datetime, limit: int) -> int:
    """Remove at most ``limit`` of the oldest change events, those with an id up to ``through`` created before
    ``before``, and record how far the outbox is removed; the number removed (the caller commits).

    Only a prefix of the outbox goes (the oldest ids, stopping at the first one too new), read and removed through
    the primary key, so the mark is exact: every id up to it is gone, every id above it is still there.
    """
    removed, last = trim_oldest(
        session, ChangeEvent.id, ChangeEvent.created_at, before=before, limit=limit, through=through
    )
    if not last:
        return 0
    mark = session.get(ChangeEventTrim, 1)
    if mark is None:
        session.add(ChangeEventTrim(id=1, through=last, trimmed_at=utcnow()))
    elif mark.through < last:
        mark.through, mark.trimmed_at = last, utcnow()
    session.flush()
    return removed
