"""Units of work in a transaction of their own, owned by the edge (a route, a CLI command, a worker loop).

:func:`run_in_transaction` opens the transaction, runs the unit of work, commits, and runs the whole unit again
when it lost a race with another transaction (the transaction is all it did, so it is rolled back and nothing is
lost). A unit of work never commits: it returns an :class:`Outcome`, its value and, when it has one, the last
statement it leaves to the edge (:class:`FinalStatement`). An edge that commits right afterwards sends that
statement with the COMMIT (:func:`~headwater.db.execute_and_commit`: one round trip instead of two on
PostgreSQL); any other caller runs it in the open transaction with :meth:`Outcome.finish`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from headwater.db import execute_and_commit, execute_on_driver, session_scope

__all__ = ["ATTEMPTS", "TRANSIENT_SQLSTATES", "FinalStatement", "Outcome", "run_in_transaction"]

T = TypeVar("T")

log = logging.getLogger("headwater.transactions")

# Deadlock, serialization failure, unique violation: what concurrent transactions touching the same rows may
# meet (PostgreSQL); and a prepared statement deallocated behind psycopg's back (the next attempt, on a connection
# the pool replaced, prepares it again).
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001", "23505", "26000"})
ATTEMPTS = 5


@dataclass(frozen=True)
class FinalStatement:
    """A unit of work's last statement (PostgreSQL), as :func:`~headwater.db.execute_on_driver` takes it."""

    statement: Any
    params: Mapping[str, Any]

    def run(self, session: Session) -> None:
        """Run it in the session's open transaction."""
        execute_on_driver(session, self.statement, self.params)

    def run_and_commit(self, session: Session) -> None:
        """Run it as the transaction's last statement, the COMMIT in the same round trip where it can be."""
        execute_and_commit(session, self.statement, self.params)


@dataclass
class Outcome(Generic[T]):
    """What a unit of work did (``value``), and the statement it leaves for the edge to run last, if any."""

    value: T
    last: FinalStatement | None = None

    def finish(self, session: Session) -> T:
        """Run the last statement in the open transaction (which stays open) and return the value."""
        if self.last is not None:
            self.last.run(session)
        return self.value


def run_in_transaction(
    factory: sessionmaker[Session], work: Callable[[Session], Outcome[T]], *, what: str = "a unit of work"
) -> T:
    """Run ``work`` in a transaction of its own and commit it (its last statement riding with the COMMIT); run it
    again, after a short random pause, when it fails on a transient error (:data:`TRANSIENT_SQLSTATES`)."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with session_scope(factory) as session:
                outcome = work(session)
                if outcome.last is not None:
                    # Nothing may run in the transaction after it: session_scope's commit finds it committed.
                    outcome.last.run_and_commit(session)
                return outcome.value
        except DBAPIError as exc:
            if attempt == ATTEMPTS or getattr(exc.orig, "sqlstate", None) not in TRANSIENT_SQLSTATES:
                raise
            log.info("%s lost a race (%s); attempt %d of %d", what, exc.orig, attempt + 1, ATTEMPTS)
            time.sleep(random.uniform(0, 0.02 * attempt))  # the winner gets to commit first
    raise AssertionError("unreachable")
