"""Database plumbing on PostgreSQL: statements run on the psycopg connection past SQLAlchemy's execution layer,
and pooled connections pinged at checkout only after sitting idle. The statements sent by name with their
transaction's BEGIN or COMMIT: ``tests/test_pgwire.py``."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from headwater import db
from headwater.db import begin_and_fetch_one, create_db_engine, execute_on_driver, make_sessionmaker

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


def test_a_statement_on_the_driver_takes_repeated_parameters_and_literal_percent_signs(pg_session: Session) -> None:
    """The statement goes to psycopg with PostgreSQL's own ``$n`` placeholders: a name used twice is one parameter,
    and a ``%`` in the SQL stays one."""
    statement = text("SELECT :a || '%' || :b || '%%' || :a, CAST(:n AS bigint) * 2")
    row = execute_on_driver(pg_session, statement, {"a": "x", "b": "50", "n": 21}).fetchone()
    assert row == ("x%50%%x", 42)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate_backend(db_url: str, pid: int) -> None:
    """End PostgreSQL backend ``pid`` from another connection, as a server restart or a proxy would."""
    admin = create_db_engine(db_url, pool_size=1)
    try:
        with admin.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


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
        _terminate_backend(db_url, dead)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert _backend_pid(engine) != dead  # the ping failed, the pool reconnected, the request never saw it
    finally:
        engine.dispose()


def test_a_connection_lost_under_a_named_statement_raises_sqlalchemys_error(db_url: str) -> None:
    """As a lost connection under any statement: SQLAlchemy's OperationalError (the API answers 503), not the
    driver's own exception; the connection is invalidated, so the pool replaces it."""
    engine = create_db_engine(db_url, pool_size=1)
    factory = make_sessionmaker(engine)
    statement = text("SELECT CAST(:name AS text)")
    try:
        with factory() as session:
            begin_and_fetch_one(session, statement, {"name": "before"})
            session.commit()
        dead = _backend_pid(engine)  # the pool's one connection, back moments ago: no ping at checkout
        _terminate_backend(db_url, dead)
        with factory() as session:
            with pytest.raises(OperationalError):
                begin_and_fetch_one(session, statement, {"name": "lost"})
            session.rollback()
        assert _backend_pid(engine) != dead
    finally:
        engine.dispose()
