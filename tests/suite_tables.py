"""Emptying the suite's shared database between tests (used by conftest.py and tests that manage their own app).

A module of its own: ``from conftest import ...`` is ambiguous where several conftest.py files exist.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from headwater.db import Base

__all__ = ["empty_tables"]


def empty_tables(engine: Engine) -> None:
    """Delete every row of every table (TRUNCATE on PostgreSQL), retrying a deadlock with a test's server."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    for attempt in range(1, 6):
        try:
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":
                    connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                else:
                    for table in tables:
                        connection.execute(text(f"DELETE FROM {table}"))
            return
        except OperationalError as exc:
            # A server a test started (test_lineage_client's) keeps its background threads polling the suite's
            # tables; TRUNCATE locks table after table and can deadlock with one of them. PostgreSQL aborts one of
            # the two: run it again, or the next test starts on this test's rows.
            if attempt == 5 or getattr(exc.orig, "sqlstate", None) != "40P01":
                raise
