"""Database plumbing on PostgreSQL: statements run on the psycopg connection past SQLAlchemy's execution layer, and
pooled connections pinged at checkout only after sitting idle."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater import db
from headwater.db import create_db_engine, execute_on_driver

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


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_back_moments_ago_is_handed_out_without_a_ping(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(db_url, pool_size=1)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda c: pings.append(c) or real_ping(c))
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first and pings == []  # new, then back a moment ago: no round trip
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend_pid(engine) == first and len(pings) == 1  # idle "long enough": pinged, alive, kept
    finally:
        engine.dispose()


def test_a_connection_that_died_while_idle_is_replaced_at_checkout(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(db_url, pool_size=1)
    try:
        dead = _backend_pid(engine)
        with create_db_engine(db_url).connect() as admin:
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead}).scalar_one()
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend_pid(engine) != dead  # the ping failed, the pool reconnected, the request never saw it
    finally:
        engine.dispose()
