"""Database plumbing: statements run on the psycopg connection past SQLAlchemy's execution layer (PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater.db import execute_on_driver

pytestmark = pytest.mark.single_backend("postgres")

_INSERT = text("INSERT INTO driver_probe (name) VALUES (:name) RETURNING id, name")


@pytest.fixture
def pg_session(session: Session) -> Session:
    assert session.get_bind().dialect.name == "postgresql"
    session.execute(text("CREATE TABLE driver_probe (id serial PRIMARY KEY, name text UNIQUE NOT NULL)"))
    return session


def test_a_statement_on_the_driver_runs_in_the_sessions_transaction(pg_session: Session) -> None:
    row = execute_on_driver(pg_session, _INSERT, {"name": "via-driver"}).fetchone()
    assert row is not None and row[1] == "via-driver"
    # The ORM session sees it in the same transaction; a rollback takes it away with the table.
    assert pg_session.execute(text("SELECT name FROM driver_probe WHERE id = :id"), {"id": row[0]}).scalar() == (
        "via-driver"
    )
    pg_session.rollback()
    assert pg_session.execute(text("SELECT to_regclass('driver_probe')")).scalar() is None


def test_a_driver_error_is_raised_as_sqlalchemys_with_the_sqlstate(pg_session: Session) -> None:
    execute_on_driver(pg_session, _INSERT, {"name": "twice"})
    with pytest.raises(IntegrityError) as raised:
        execute_on_driver(pg_session, _INSERT, {"name": "twice"})
    assert getattr(raised.value.orig, "sqlstate", None) == "23505"
    pg_session.rollback()
