"""Database leases: who may do a piece of work now, judged by the database's clock, never a process's.

A lease lives in a table row as a holder column and a time column. :class:`RowLease` keeps the leases whose time
column says when they end (one sync per source in ``sync_leases``, one search indexer per index in
``search_index_state``): acquire (free or expired), renew (still ours), release. Jobs keep the time of their last
renewal instead (``jobs.heartbeat_at``) and fence every write with an epoch (docs/adr/0001-job-fencing.md); they
share this module's clock and :func:`renewed_before`, the test of a lease that ran out.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, literal, or_, type_coerce, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from headwater.db import UTCDateTime

__all__ = ["RowLease", "db_clock", "db_clock_minus", "db_clock_plus", "new_holder", "renewed_before"]

# %f is "SS.SSS": three more digits make the microseconds SQLAlchemy writes and reads on SQLite.
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%f000"


def new_holder(digits: int = 12) -> str:
    """A lease holder name unique to this process and call: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:digits]}"


def db_clock(session: Session) -> ColumnElement[dt.datetime]:
    """The database's current time as an SQL expression (``now()``; SQLite's own clock in UTC, to the microsecond
    format SQLAlchemy stores), so every lease is judged by one clock, not by each worker's."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(func.now(), UTCDateTime)
    return type_coerce(func.strftime(_SQLITE_FORMAT, "now"), UTCDateTime)


def db_clock_plus(session: Session, seconds: float) -> ColumnElement[dt.datetime]:
    """The database's time ``seconds`` from now (negative: ago), as an SQL expression."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(func.now() + literal(dt.timedelta(seconds=seconds)), UTCDateTime)
    return type_coerce(func.strftime(_SQLITE_FORMAT, "now", f"{seconds:+.6f} seconds"), UTCDateTime)


def db_clock_minus(session: Session, seconds: float) -> ColumnElement[dt.datetime]:
    """The database's time ``seconds`` ago, as an SQL expression."""
    return db_clock_plus(session, -seconds)


def renewed_before(session: Session, stamp: Any, seconds: float) -> ColumnElement[bool]:
    """The condition "the lease renewed at ``stamp`` ran out": its last renewal is ``seconds`` old by the database."""
    condition: ColumnElement[bool] = stamp < db_clock_minus(session, seconds)
    return condition


@dataclass(frozen=True)
class RowLease:
    """A lease kept in a table row: ``holder`` names who has it, ``until`` when it ends (both None when free).

    Every method takes ``where`` (the condition picking the row) and flushes nothing but its one UPDATE; the caller's
    transaction decides. A lease is taken by one conditional UPDATE, so two claimants never both succeed.
    """

    holder: InstrumentedAttribute[Any]
    until: InstrumentedAttribute[Any]

    def expired(self, session: Session) -> ColumnElement[bool]:
        """The condition "nobody holds the lease now": free, or its time has passed by the database's clock."""
        return or_(self.holder.is_(None), self.until.is_(None), self.until < db_clock(session))

    def acquire(
        self, session: Session, where: ColumnElement[bool], *, holder: str, seconds: float, reentrant: bool = False
    ) -> bool:
        """Take the lease for ``seconds`` when it is free or expired (or, ``reentrant``, already ``holder``'s)."""
        free = or_(self.expired(session), self.holder == holder) if reentrant else self.expired(session)
        return self._set(
            session, where, free, {self.holder.key: holder, self.until.key: db_clock_plus(session, seconds)}
        )

    def renew(self, session: Session, where: ColumnElement[bool], *, holder: str, seconds: float) -> bool:
        """Extend ``holder``'s lease by ``seconds`` from now; False when it is no longer ``holder``'s."""
        return self._set(session, where, self.holder == holder, {self.until.key: db_clock_plus(session, seconds)})

    def release(self, session: Session, where: ColumnElement[bool], *, holder: str, **values: Any) -> bool:
        """Free ``holder``'s lease (setting ``values`` on the row too); False when it was not ``holder``'s."""
        return self._set(session, where, self.holder == holder, {self.holder.key: None, self.until.key: None, **values})

    def _set(
        self, session: Session, where: ColumnElement[bool], condition: ColumnElement[bool], values: dict[str, Any]
    ) -> bool:
        table = self.holder.class_
        result = session.execute(
            update(table).where(where, condition).values(values).execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)
