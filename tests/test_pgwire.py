"""The statements sent by name with their transaction's BEGIN or COMMIT (``headwater/pgwire.py``), through the
functions of ``headwater.db`` that use it: round trips saved, prepared statements the server lost, errors with their
SQLSTATE, values escaped by libpq, and nothing prepared where preparing is off."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from headwater import pgwire
from headwater.db import begin_and_fetch_one, create_db_engine, execute_and_commit, make_sessionmaker

pytestmark = pytest.mark.single_backend("postgres")


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


def test_the_first_statement_opens_the_sessions_transaction_with_it(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    with factory() as session:
        row = begin_and_fetch_one(session, _INSERT_PROBE, {"name": "rolled back"})
        assert row is not None and row[1] == b"rolled back"  # the server's text
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


def test_a_prepared_statement_deallocated_or_already_there_is_handled(
    probe_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = make_sessionmaker(probe_engine)
    for name in ("prepared", "after deallocate all", "after tracking lost"):
        with factory() as session:
            assert begin_and_fetch_one(session, _INSERT_PROBE, {"name": name}) is not None
            session.commit()
        with probe_engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            if name == "prepared":
                # What psycopg does when it rolls back a transaction in which it had prepared statements.
                raw.execute("DEALLOCATE ALL")
            else:
                # The server still has it; this process no longer knows (a PREPARE of it fails as a duplicate).
                monkeypatch.setattr(pgwire, "_PREPARED", type(pgwire._PREPARED)())
            connection.commit()
    assert _names(probe_engine) == ["prepared", "after deallocate all", "after tracking lost"]


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


def test_the_last_statement_goes_with_the_commit_once_the_connection_has_it_prepared(probe_engine: Engine) -> None:
    factory = make_sessionmaker(probe_engine)
    with factory() as session:
        begin_and_fetch_one(session, text("SELECT :name"), {"name": "a"})
        # Not prepared on this connection yet: run as usual, the commit left to the session.
        execute_and_commit(session, _INSERT_PROBE, {"name": "b"})
        assert _status(session) == "INTRANS"
        session.commit()
    with factory() as session:
        begin_and_fetch_one(session, text("SELECT :name"), {"name": "c"})  # prepares the insert first
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
                assert _status(session) == "INTRANS"  # the commit is the session's
                session.commit()
        with factory() as session:
            assert session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
    finally:
        engine.dispose()


def test_values_of_every_kind_are_escaped_and_typed_as_sent(probe_engine: Engine) -> None:
    """Text with quotes, backslashes and non-ASCII, integers past 32 bits, booleans, aware datetimes and None,
    sent by name: each comes back as the server's text of what was sent."""
    when = dt.datetime(2026, 12, 5, 9, 30, 15, 250000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    statement = text(
        "SELECT CAST(:s AS text), CAST(:n AS bigint) + 1, NOT CAST(:b AS boolean), "
        "CAST(:t AS timestamptz) AT TIME ZONE 'UTC', CAST(:none AS text) IS NULL"
    )
    params = {"s": "O'Brien \\ 'x' \u00e9\u6f22", "n": 2**40, "b": False, "t": when, "none": None}
    with make_sessionmaker(probe_engine)() as session:
        row = begin_and_fetch_one(session, statement, params)
        session.rollback()
    assert row == (params["s"].encode(), str(2**40 + 1).encode(), b"t", b"2026-12-05 07:30:15.25", b"t")


def test_a_naive_datetime_is_refused_before_anything_is_sent(probe_engine: Engine) -> None:
    with make_sessionmaker(probe_engine)() as session:
        with pytest.raises(ValueError, match="naive datetime"):
            begin_and_fetch_one(session, text("SELECT CAST(:t AS timestamptz)"), {"t": dt.datetime(2026, 1, 1)})
        assert session.connection().connection.driver_connection.info.transaction_status.name == "IDLE"


def test_execute_with_runs_as_psycopg_runs_it_in_autocommit(probe_engine: Engine) -> None:
    """A connection in autocommit has no transaction to open or commit: nothing goes by name."""
    with probe_engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        with Session(bind=connection) as session:
            row = pgwire.execute_with(session, "SELECT CAST($1 AS text)", ["plain"], "BEGIN")
            assert row == ("plain",)  # loaded by psycopg, not the server's text
            pgwire.execute_with(session, "INSERT INTO begin_probe (name) VALUES ($1)", ["autocommitted"], "COMMIT")
            prepared = session.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one()
    assert prepared == 0
    assert _names(probe_engine) == ["autocommitted"]
