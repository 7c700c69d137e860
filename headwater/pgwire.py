"""PostgreSQL: a statement sent by name together with its transaction's BEGIN or COMMIT, one round trip instead of
two. Why this is home-made and what it saves: ``docs/adr/0004-named-statements.md``.

psycopg sends a BEGIN of its own before a transaction's first statement and waits for its answer (in pipeline mode
too), and it can pipeline a COMMIT only through more Python per statement than the round trip costs on a busy
host. Here ``BEGIN; EXECUTE name(...)`` and ``EXECUTE name(...); COMMIT`` go to the server as one message of the
simple query protocol, the values escaped by libpq. Each statement is prepared once per connection under a name,
outside any transaction (a PREPARE inside one would roll back with it), so its plan is cached as psycopg's own
prepared statements' are.

What the server has prepared is tracked per connection, and forgotten when psycopg deallocates: it does so when it
rolls back a transaction or a savepoint, or runs DDL. Every rollback and statement of Headwater's goes through
SQLAlchemy, whose events tell these; :func:`execute_with` checks anyway: a PREPARE of a name that exists is taken as
done, and an EXECUTE with the BEGIN of a name that is gone rolls back the transaction it opened (it holds nothing),
forgets every name, prepares the statement and runs it again. One with the COMMIT fails with SQLSTATE 26000, which
the lineage route retries.

Only :func:`execute_with` is public. Errors are psycopg's own (with their SQLSTATE); the caller raises them as
SQLAlchemy's. psycopg is imported only where PostgreSQL is used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import weakref
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = ["execute_with"]

# The statements each pooled psycopg connection has prepared, as far as this process knows.
_PREPARED: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()
# Statements run unprepared before a COMMIT, by name: prepared before the connection's next statement with a BEGIN.
_TO_PREPARE: weakref.WeakKeyDictionary[Any, dict[bytes, bytes]] = weakref.WeakKeyDictionary()
# Statements after which psycopg deallocates every prepared statement of the connection (psycopg's own rule).
_DEALLOCATES = re.compile(r"^\s*(?:DROP|ALTER|ROLLBACK|DISCARD ALL|DEALLOCATE ALL)\b", re.IGNORECASE)
# Engines whose rollbacks and DDL are watched (hooked at their first statement by name).
_WATCHED: weakref.WeakSet[Engine] = weakref.WeakSet()
_WATCHING = threading.Lock()


def execute_with(session: Session, sql: str, values: Sequence[Any], edge: Literal["BEGIN", "COMMIT"]) -> Any:
    """Run ``sql`` (``$n`` placeholders, ``values`` in their order) on the session's psycopg connection with the
    transaction's ``edge`` in the same round trip, by name, where it can; otherwise as psycopg runs it.

    ``"BEGIN"``: as the first statement of the session's transaction, opening it; its first row, each value as the
    server's text (bytes) or None (psycopg's values when it ran as psycopg runs it, after other statements).
    ``"COMMIT"``: as the last statement, committing the transaction, once this connection has it prepared; until
    then it runs as psycopg runs it, the commit is left to the session, and the statement is prepared before the
    connection's next ``"BEGIN"``. Returns None. Nothing may run in the transaction after it.

    By name only where the connection is not in autocommit and may prepare on the server (``prepare_threshold``
    set: not behind a PgBouncer in transaction mode).
    """
    from psycopg import RawCursor, pq

    raw: Any = session.connection().connection.driver_connection
    wanted = pq.TransactionStatus.IDLE if edge == "BEGIN" else pq.TransactionStatus.INTRANS
    if raw.autocommit or raw.prepare_threshold is None or raw.pgconn.transaction_status != wanted:
        cursor = RawCursor(raw).execute(sql, values)
        return cursor.fetchone() if edge == "BEGIN" else None
    _watch(session.connection().engine)
    name, prepare = _prepare_command(sql, tuple(_pg_type(value) for value in values))
    escaping, encoding = pq.Escaping(raw.pgconn), raw.info.encoding
    execute = b"EXECUTE %s(%s)" % (name, b", ".join(_pg_literal(escaping, encoding, value) for value in values))
    if edge == "BEGIN":
        return _begin_and_execute(raw, name, prepare, execute)
    if name not in _PREPARED.get(raw, ()):
        RawCursor(raw).execute(sql, values)
        _TO_PREPARE.setdefault(raw, {})[name] = prepare
        return None
    result = raw.pgconn.exec_(execute + b"; COMMIT")
    if _sqlstate(result) == "26000":  # invalid_sql_statement_name: deallocated behind our back
        _PREPARED.pop(raw, None)
    _check(result, pq.ExecStatus.COMMAND_OK)
    return None


def _begin_and_execute(raw: Any, name: bytes, prepare: bytes, execute: bytes) -> tuple[bytes | None, ...] | None:
    """Prepare what this connection still needs (outside a transaction), then send BEGIN and ``execute`` as one
    message; the first row, as the server's text."""
    from psycopg import pq

    pgconn = raw.pgconn
    for attempt in (1, 2):
        prepared = _PREPARED.setdefault(raw, set())
        wanted = _TO_PREPARE.pop(raw, {})
        wanted[name] = prepare
        for wanted_name, command in wanted.items():
            if wanted_name not in prepared:
                result = pgconn.exec_(command)
                if _sqlstate(result) != "42P05":  # duplicate_prepared_statement: prepared already
                    _check(result, pq.ExecStatus.COMMAND_OK)
                prepared.add(wanted_name)
        result = pgconn.exec_(b"BEGIN; " + execute)
        if attempt == 1 and _sqlstate(result) == "26000":  # deallocated since: the transaction holds nothing
            _check(pgconn.exec_(b"ROLLBACK"), pq.ExecStatus.COMMAND_OK)
            _PREPARED.pop(raw, None)  # psycopg deallocates all of them at once, never one by one
            continue
        _check(result, pq.ExecStatus.TUPLES_OK)
        break
    if result.ntuples == 0:
        return None
    return tuple(result.get_value(0, i) for i in range(result.nfields))


@cache
def _prepare_command(body: str, types: tuple[str, ...]) -> tuple[bytes, bytes]:
    """The name of a server-side prepared statement of ``body`` taking ``types``, and its PREPARE command."""
    name = "hw_" + hashlib.sha1(f"{body}|{types}".encode()).hexdigest()[:20]
    return name.encode(), f"PREPARE {name} ({', '.join(types)}) AS {body}".encode()


def _pg_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, dt.datetime):
        return "timestamptz"
    return "text"


def _pg_literal(escaping: Any, encoding: str, value: Any) -> bytes:
    if value is None:
        return b"NULL"
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where a timezone-aware one is required")
        value = value.isoformat()
    text_value = str(value)
    if "\x00" in text_value:  # libpq's escaping stops at a NUL: refuse it, as psycopg does for its parameters
        import psycopg

        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    return bytes(escaping.escape_literal(text_value.encode(encoding)))


def _sqlstate(result: Any) -> str:
    from psycopg import pq

    return (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()


def _check(result: Any, expected: Any) -> None:
    """Nothing if ``result`` has the ``expected`` status, else its error raised as psycopg's, with the SQLSTATE (so
    a caller's retry on a deadlock or a serialization failure sees it)."""
    if result.status == expected:
        return
    import psycopg

    sqlstate = _sqlstate(result)
    message = (result.error_message or b"").decode(errors="replace").strip()
    raise psycopg.errors.lookup(sqlstate)(message) if sqlstate else psycopg.OperationalError(message)


def _watch(engine: Engine) -> None:
    """Forget what a connection of ``engine`` has prepared when psycopg deallocates it (see the module doc)."""
    if engine in _WATCHED:
        return
    with _WATCHING:
        if engine in _WATCHED:
            return
        _WATCHED.add(engine)

    def forget_unless_idle(dbapi_connection: Any) -> None:
        raw = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        if raw is None or raw not in _PREPARED:
            return
        try:
            idle = raw.info.transaction_status == 0  # psycopg.pq.TransactionStatus.IDLE
        except Exception:  # a connection already lost (psycopg raises): nothing of it is worth keeping
            idle = False
        if not idle:
            _PREPARED.pop(raw, None)  # a rollback with something to roll back: psycopg deallocates

    def driver_of(connection: Any) -> Any:
        # An invalidated connection's driver connection is discarded with it: nothing to track.
        return None if connection.invalidated else connection.connection.driver_connection

    @event.listens_for(engine, "rollback")
    def _rollback(connection: Any) -> None:
        forget_unless_idle(driver_of(connection))

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, connection_record: ConnectionPoolEntry, reset_state: Any) -> None:
        forget_unless_idle(dbapi_connection)

    @event.listens_for(engine, "rollback_savepoint")
    def _rollback_savepoint(connection: Any, *_args: Any) -> None:
        if (raw := driver_of(connection)) is not None:
            _PREPARED.pop(raw, None)

    @event.listens_for(engine, "before_cursor_execute")
    def _ddl(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if _DEALLOCATES.match(statement) and (raw := driver_of(connection)) is not None:
            _PREPARED.pop(raw, None)
