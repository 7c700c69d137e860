"""Revocations across processes: the auth epoch.

Each process caches verified credentials for ``auth_cache_seconds`` (:class:`~headwater.auth.authenticate.
Authenticator`), and forgets them at once when the revocation is made in that process. Every change that takes
access away (a token revoked, a service account disabled, a role binding granted or taken back), made by any
process or by the CLI, also moves one counter in the database in its own transaction (:func:`bump`); every server
polls it (:class:`RevocationPoller`, every ``auth_revocation_poll_seconds``) and forgets its cache when it moved.
A revocation therefore holds everywhere within one poll; the cache lifetime stays the bound if polling fails.
"""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from headwater.auth.models import AuthEpoch
from headwater.db import read_scope, utcnow
from headwater.loops import LoopService

__all__ = ["RevocationPoller", "bump", "current"]

log = logging.getLogger("headwater.auth")


def bump(session: Session) -> None:
    """Count one change that takes access away; servers forget their cached credentials once it commits."""
    moved = session.execute(
        update(AuthEpoch).where(AuthEpoch.id == 1).values(epoch=AuthEpoch.epoch + 1, changed_at=utcnow())
    )
    if getattr(moved, "rowcount", 1) == 0:  # a database made without the migration's first row
        session.add(AuthEpoch(id=1, epoch=1, changed_at=utcnow()))
    session.flush()


def current(session: Session) -> int:
    """The epoch now (0 before any change)."""
    return session.scalar(select(AuthEpoch.epoch).where(AuthEpoch.id == 1)) or 0


class Forgets(Protocol):
    """What the poller clears: anything with ``forget()`` (the authenticator)."""

    def forget(self, token_id: int | None = None) -> None:
        """Drop cached credentials (all of them when no token is named)."""


class RevocationPoller(LoopService[None]):
    """Polls the auth epoch and makes ``authenticator`` forget every cached credential when it has moved."""

    log = log

    def __init__(self, *, factory: sessionmaker[Session], authenticator: Forgets, interval: float) -> None:
        super().__init__(name="headwater-revocations", interval=interval, join_timeout=5)
        self._factory = factory
        self._authenticator = authenticator
        self.seen: int | None = None

    def on_start(self) -> None:
        """Read the epoch before serving, so a change made from now on is noticed."""
        self.run_once()

    def run_once(self) -> None:
        """One poll; a database that cannot be read leaves the cache lifetime as the bound."""
        try:
            with read_scope(self._factory) as session:
                epoch = current(session)
        except SQLAlchemyError as exc:
            log.warning(
                "could not read the auth epoch (revocations reach this process within the cache lifetime): %s", exc
            )
            return
        if self.seen is not None and epoch != self.seen:
            self._authenticator.forget()
            log.info("access was revoked elsewhere (auth epoch %d): cached credentials forgotten", epoch)
        self.seen = epoch
