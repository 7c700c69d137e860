"""The edge's transaction helper: a unit of work runs in a transaction of its own, is committed with its last
statement, and runs again when it lost a race; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from suite_tables import empty_tables

from headwater.db import make_sessionmaker, utcnow
from headwater.lineage.models import LineageJob
from headwater.transactions import ATTEMPTS, FinalStatement, Outcome, run_in_transaction


class _DriverError(Exception):
    """A driver error carrying a SQLSTATE, as psycopg's do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def _failure(sqlstate: str) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, _DriverError(sqlstate))


@pytest.fixture
def factory(engine: Engine) -> Any:
    yield make_sessionmaker(engine)
    empty_tables(engine)


def _add_job(session: Session, name: str) -> None:
    session.add(LineageJob(namespace="test", name=name, facets={}))
    session.flush()


def _jobs(factory: Any) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(LineageJob.name).order_by(LineageJob.name)))


def test_a_unit_of_work_is_committed_and_its_value_returned(factory: Any) -> None:
    def work(session: Session) -> Outcome[str]:
        _add_job(session, "kept")
        return Outcome("done")

    assert run_in_transaction(factory, work) == "done"
    assert _jobs(factory) == ["kept"]


def test_a_transient_failure_rolls_back_and_runs_the_unit_again(factory: Any) -> None:
    attempts: list[int] = []

    def work(session: Session) -> Outcome[int]:
        attempts.append(1)
        _add_job(session, f"attempt-{len(attempts)}")
        if len(attempts) < 3:
            raise _failure("40001")  # a serialization failure: the transaction lost a race
        return Outcome(len(attempts))

    assert run_in_transaction(factory, work) == 3
    assert _jobs(factory) == ["attempt-3"]  # the failed attempts left nothing behind


@pytest.mark.parametrize("sqlstate", ["40P01", "40001", "23505", "26000"])
def test_each_transient_sqlstate_is_retried_until_the_attempts_run_out(factory: Any, sqlstate: str) -> None:
    attempts: list[int] = []

    def work(session: Session) -> Outcome[None]:
        attempts.append(1)
        raise _failure(sqlstate)

    with pytest.raises(DBAPIError):
        run_in_transaction(factory, work)
    assert len(attempts) == ATTEMPTS


def test_any_other_failure_is_raised_at_once_and_rolled_back(factory: Any) -> None:
    attempts: list[int] = []

    def work(session: Session) -> Outcome[None]:
        attempts.append(1)
        _add_job(session, "rolled-back")
        raise _failure("42P01")

    with pytest.raises(DBAPIError):
        run_in_transaction(factory, work)
    assert attempts == [1] and _jobs(factory) == []


@pytest.mark.single_backend("postgres")  # a last statement is left to the edge on PostgreSQL only
def test_the_last_statement_is_run_by_the_edge_and_committed(factory: Any) -> None:
    now = utcnow()
    insert = text(
        "INSERT INTO lineage_jobs (namespace, name, facets, created_at, updated_at)"
        " VALUES ('test', :name, CAST('{}' AS json), :now, :now)"
    )

    def work(session: Session) -> Outcome[str]:
        _add_job(session, "first")
        return Outcome("done", FinalStatement(insert, {"name": "last", "now": now}))

    assert run_in_transaction(factory, work) == "done"
    assert _jobs(factory) == ["first", "last"]
    # Outcome.finish runs it in the open transaction, which the caller still owns.
    with factory() as session:
        outcome = Outcome(None, FinalStatement(insert, {"name": "finished", "now": now}))
        outcome.finish(session)
        assert session.scalar(select(func.count()).select_from(LineageJob)) == 3
        session.rollback()
    assert _jobs(factory) == ["first", "last"]
