"""Database plumbing on PostgreSQL: statements run on the psycopg connection past SQLAlchemy's execution layer (the
first one of a transaction prepared at once, the last one sent with the COMMIT), and pooled connections pinged at
checkout only after sitting idle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from headwater import db
from headwater.db import begin_and_fetch_one, create_db_engine, execute_and_commit, execute_on_driver, make_sessionmaker

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


@pytest.fixture
def probe_engine(db_url: str) -> Iterator[Engine]:
    """An engine of one pooled connection, and a committed probe table (dropped after)."""
    engine = create_db_engine(db_url, pool_size=1)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE begin_probe (id serial PRIMARY KEY, name text UNIQUE NOT NULL)"))
    try:
        yield engine
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE begin_probe"))
        engine.dispose()


_INSERT_PROBE = text("INSERT INTO begin_probe (name) VALUES (:name) RETURNING id, name")


def _names(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT name FROM begin_probe ORDER BY id")).scalars())


def test_the_first_statement_opens_the_sessions_transaction(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    with factory() as session:
        row = begin_and_fetch_one(session, _INSERT_PROBE, {"name": "rolled back"})
        assert row is not None and row[1] == "rolled back"  # loaded by psycopg
        # Inside a transaction (not autocommitted): the rollback takes the row away.
        assert session.connection().connection.driver_connection.info.transaction_status.name == "INTRANS"
        session.rollback()
    assert _names(probe_engine) == []
    with factory() as session:
        begin_and_fetch_one(session, _INSERT_PROBE, {"name": "kept"})
        # Later statements run in the same transaction, and the session commits it.
        session.execute(text("INSERT INTO begin_probe (name) VALUES ('kept too')"))
        session.commit()
    assert _names(probe_engine) == ["kept", "kept too"]


def test_a_statement_run_after_others_runs_as_on_the_driver(probe_engine: Engine) -> None:
    with make_sessionmaker(probe_engine)() as session:
        session.execute(text("SELECT 1"))
        row = begin_and_fetch_one(session, _INSERT_PROBE, {"name": "second"})
        assert row is not None and row[1] == "second"  # loaded by psycopg
        session.commit()
    assert _names(probe_engine) == ["second"]


def test_the_first_statement_is_prepared_at_once_and_again_after_a_deallocation(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    for name in ("prepared", "after deallocate all"):
        with factory() as session:
            assert begin_and_fetch_one(session, _INSERT_PROBE, {"name": name}) is not None
            prepared = session.execute(
                text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO begin_probe%'")
            ).scalar_one()
            assert prepared == 1  # from its first run, not psycopg's fifth
            session.commit()
        with probe_engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            # What psycopg does when it rolls back a transaction in which it had prepared statements.
            raw.execute("DEALLOCATE ALL")
            connection.commit()
    assert _names(probe_engine) == ["prepared", "after deallocate all"]


def test_an_error_of_the_first_statement_carries_its_sqlstate_and_loses_nothing(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    with factory() as session:
        begin_and_fetch_one(session, _INSERT_PROBE, {"name": "it's unique"})
        session.commit()
    with factory() as session:
        with pytest.raises(IntegrityError) as raised:
            begin_and_fetch_one(session, _INSERT_PROBE, {"name": "it's unique"})
        assert getattr(raised.value.orig, "sqlstate", None) == "23505"
        session.rollback()
        # The connection is usable again, and values are escaped (a quote in the value).
        row = begin_and_fetch_one(session, _INSERT_PROBE, {"name": "it's 'quoted'; DROP TABLE begin_probe; --"})
        assert row is not None
        session.commit()
    assert _names(probe_engine) == ["it's unique", "it's 'quoted'; DROP TABLE begin_probe; --"]


def test_a_nul_character_is_refused_not_cut_short(probe_engine: Engine) -> None:
    """libpq's escaping stops at a NUL: the value must be refused, as psycopg refuses it as a parameter."""
    with make_sessionmaker(probe_engine)() as session:
        with pytest.raises(DataError, match="NUL"):
            begin_and_fetch_one(session, _INSERT_PROBE, {"name": "cut\x00here"})
        session.rollback()
    assert _names(probe_engine) == []


def _status(session: Session) -> str:
    return str(session.connection().connection.driver_connection.info.transaction_status.name)


def test_the_last_statement_goes_with_the_commit(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    with factory() as session:
        session.execute(text("SELECT 1"))
        # After a statement of SQLAlchemy's: the transaction it opened is committed with this one.
        execute_and_commit(session, _INSERT_PROBE, {"name": "b"})
        assert _status(session) == "IDLE"
        session.commit()
    with factory() as session:
        begin_and_fetch_one(session, text("SELECT :name"), {"name": "c"})
        execute_and_commit(session, _INSERT_PROBE, {"name": "d"})
        assert _status(session) == "IDLE"  # committed with it: another connection sees the row already
        assert _names(probe_engine) == ["b", "d"]
        session.commit()  # finds nothing to commit
    assert _names(probe_engine) == ["b", "d"]


def test_a_failing_last_statement_commits_nothing_and_carries_its_sqlstate(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    for name in ("x", "y"):  # the second time, the statement is prepared: sent with the COMMIT
        with factory() as session:
            begin_and_fetch_one(session, _INSERT_PROBE, {"name": f"first {name}"})
            execute_and_commit(session, _INSERT_PROBE, {"name": name})
            session.commit()
    with factory() as session:
        begin_and_fetch_one(session, _INSERT_PROBE, {"name": "lost with the transaction"})
        with pytest.raises(IntegrityError) as raised:
            execute_and_commit(session, _INSERT_PROBE, {"name": "x"})
        assert getattr(raised.value.orig, "sqlstate", None) == "23505"
        session.rollback()
    assert _names(probe_engine) == ["first x", "x", "first y", "y"]


def test_a_deallocation_in_the_transaction_is_noticed_before_the_last_statement(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    for name in ("one", "two", "three"):
        with factory() as session:
            begin_and_fetch_one(session, text("SELECT :name"), {"name": name})
            if name == "three":
                session.execute(text("DEALLOCATE ALL"))  # what psycopg does after DDL or a savepoint's rollback
            execute_and_commit(session, _INSERT_PROBE, {"name": name})  # no "prepared statement does not exist"
            session.commit()
    assert _names(probe_engine) == ["one", "two", "three"]


def test_without_prepared_statements_nothing_is_prepared_on_the_server(db_url: str) -> None:
    """What a PgBouncer in transaction pooling mode needs (HEADWATER_DB_PREPARED_STATEMENTS=false)."""
    engine = create_db_engine(db_url, pool_size=1, prepared_statements=False)
    factory = make_sessionmaker(engine)
    try:
        for attempt in range(8):  # past psycopg's threshold of five runs too
            with factory() as session:
                row = begin_and_fetch_one(session, text("SELECT CAST(:n AS text)"), {"n": attempt})
                assert row is not None and row[0] == str(attempt)
                execute_and_commit(session, text("SELECT CAST(:n AS int)"), {"n": attempt})
                assert _status(session) == "IDLE"  # committed with it, nothing prepared for it
                session.commit()
        with factory() as session:
            assert session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
    finally:
        engine.dispose()


def test_values_of_every_kind_go_to_a_prepared_statement_as_sent(probe_engine: Engine) -> None:
    """Text with quotes, backslashes and non-ASCII, integers past 32 bits, booleans, aware datetimes and None."""
    when = dt.datetime(2026, 12, 5, 9, 30, 15, 250000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    statement = text(
        "SELECT CAST(:s AS text), CAST(:n AS bigint) + 1, NOT CAST(:b AS boolean), "
        "CAST(:t AS timestamptz) AT TIME ZONE 'UTC', CAST(:none AS text) IS NULL"
    )
    params = {"s": "O'Brien \\ 'x' \u00e9\u6f22", "n": 2**40, "b": False, "t": when, "none": None}
    with make_sessionmaker(probe_engine)() as session:
        row = begin_and_fetch_one(session, statement, params)
        session.rollback()
    assert row == (params["s"], 2**40 + 1, True, dt.datetime(2026, 12, 5, 7, 30, 15, 250000), True)


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


def _prepared_count(engine: Engine) -> int:
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO begin_probe%'")
        ).scalar_one()
        connection.commit()  # not a rollback: that would deallocate what it counts
        return int(count)


def test_a_read_scope_keeps_the_connections_prepared_statements_where_a_rollback_drops_them(
    probe_engine: Engine,
) -> None:
    factory = make_sessionmaker(probe_engine)  # one pooled connection: every session below shares it
    with factory() as session:
        begin_and_fetch_one(session, _INSERT_PROBE, {"name": "prepared"})
        session.commit()
    assert _prepared_count(probe_engine) == 1
    with db.read_scope(factory) as session:
        assert session.execute(text("SELECT count(*) FROM begin_probe")).scalar_one() == 1
    assert _prepared_count(probe_engine) == 1  # ended with COMMIT: still prepared
    with factory() as session:  # the same read, ended as a plain session ends it (ROLLBACK)
        session.execute(text("SELECT count(*) FROM begin_probe"))
    assert _prepared_count(probe_engine) == 0  # psycopg deallocated it


def test_a_read_scope_rolls_back_on_an_exception(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    with pytest.raises(RuntimeError), db.read_scope(factory) as session:
        session.execute(text("INSERT INTO begin_probe (name) VALUES ('not kept')"))
        raise RuntimeError("the loop failed")
    assert _names(probe_engine) == []
