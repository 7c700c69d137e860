"""Database plumbing shared by every domain: the declarative base, portable column types, engines,
sessions, and the check that the database is migrated.

The edge that handles a request (a route, a CLI command, a worker loop) opens the transaction with
:func:`session_scope` or the FastAPI dependency; service functions only flush.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import JSON, BigInteger, DateTime, Engine, Integer, MetaData, Table, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "BigInt",
    "JSONType",
    "UTCDateTime",
    "COPY_MIN_ROWS",
    "bulk_insert",
    "bulk_insert_returning_ids",
    "create_db_engine",
    "begin_and_fetch_one",
    "execute_and_commit",
    "execute_on_driver",
    "in_chunks",
    "make_sessionmaker",
    "session_scope",
    "utcnow",
]

# Named constraints make Alembic's batch mode on SQLite and its autogenerate comparison deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every Headwater table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# BIGINT on PostgreSQL; INTEGER on SQLite, where only "INTEGER PRIMARY KEY" is the auto-increment rowid.
BigInt = BigInteger().with_variant(Integer(), "sqlite")

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back timezone-aware, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where a timezone-aware one is required")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the one writer; the busy
    # timeout turns writer contention into waiting instead of "database is locked" errors.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_sqlite_immediate(conn: Any) -> None:
    # pysqlite's default BEGIN is deferred, so two writers can both read and then deadlock on upgrade;
    # BEGIN IMMEDIATE takes the write lock up front and the busy timeout queues the second writer.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _dump_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (field tags, properties, payloads) are read on every request; orjson parses them ~5x faster.
_JSON_CODEC: dict[str, Any] = {"json_serializer": _dump_json, "json_deserializer": orjson.loads}


def create_db_engine(url: str, *, pool_size: int = 10, echo: bool = False, prepared_statements: bool = True) -> Engine:
    """An engine for ``url`` set up for Headwater: SQLite pragmas or psycopg 3; at most ``2 * pool_size``
    connections (``pool_size`` kept open). ``prepared_statements=False`` (PostgreSQL): no statement is prepared on
    the server, neither by psycopg nor by :func:`begin_and_fetch_one` (behind a PgBouncer in transaction mode)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": 30},
            **_JSON_CODEC,
        )
        event.listen(engine, "connect", _configure_sqlite)

        @event.listens_for(engine, "connect")
        def _disable_pysqlite_begin(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            dbapi_connection.isolation_level = None

        event.listen(engine, "begin", _begin_sqlite_immediate)
        return engine
    _cache_long_statements()
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        # Last in, first out: a request gets the connection used last, whose PostgreSQL backend is warm (its
        # prepared statements, plans and caches); spare connections stay idle. First in, first out rotated
        # every request through every pooled backend: about a fifth slower per lineage POST.
        pool_use_lifo=True,
        connect_args={} if prepared_statements else {"prepare_threshold": None},
        **_JSON_CODEC,
    )
    _ping_when_idle(engine)
    _forget_prepared(engine)
    return engine


# A pooled connection checked in less than this many seconds ago is handed out without a ping.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it has sat idle for :data:`PING_AFTER_IDLE_SECONDS`.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: one more round trip per request (per lineage event),
    and a round trip to a database across the network costs more than most requests' work. A connection handed
    back moments ago has just worked; what breaks connections (a server restart, a failover, an idle timeout
    of a proxy) shows on the ones that sat idle, and those are still pinged. A dead one is replaced before the
    request gets it: the pool's documented handling of ``DisconnectionError`` raised at checkout. (HikariCP skips
    its check the same way for connections used within the last 500 ms.)
    """
    dialect = engine.dialect

    def _idle_from_now(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    # A new connection has just worked too.
    event.listen(engine, "connect", _idle_from_now)
    event.listen(engine, "checkin", _idle_from_now)

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the driver's error, whatever it is: the pool reconnects
            raise DisconnectionError(f"a pooled connection idle for a while is gone: {exc}") from exc


def _cache_long_statements() -> None:
    """Let psycopg cache its parse of statements up to 16 KiB (its default limit is 4 KiB).

    psycopg converts every statement's ``%(name)s`` placeholders by scanning the whole text, and caches the result
    only for statements under its limit. The lineage ingestion's two statements (one read, one write, each a
    handful of CTEs) are 4-6 KiB and run for every event: re-scanning them cost about a twentieth of an event's
    time. The limit is a module constant of psycopg; where it is missing, nothing changes.
    """
    try:
        from psycopg import _queries
    except ImportError:  # psycopg not installed: a PostgreSQL URL fails later with SQLAlchemy's own error
        return
    if getattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", None) is not None:
        _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 16 * 1024)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """The session factory: objects stay usable after commit so routes can serialise them."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


# Values per IN list: below SQLite's bound-parameter limit in every version we run on.
IN_LIST_SIZE = 900
T = TypeVar("T")


def in_chunks(values: Sequence[T]) -> Iterator[list[T]]:
    """``values`` in pieces small enough for one ``IN (...)`` list on every database."""
    for start in range(0, len(values), IN_LIST_SIZE):
        yield list(values[start : start + IN_LIST_SIZE])


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: commit when the block ends cleanly, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@cache
def _driver_sql(statement: Any) -> tuple[str, dict[str, Any]]:
    """``statement`` compiled once for psycopg: its SQL text and the values of the parameters it binds itself."""
    compiled = statement.compile(dialect=psycopg_dialect())
    return str(compiled), {name: value for name, value in compiled.params.items() if value is not None}


def _as_sqlalchemy_error(sql: str | None, params: Any, error: Exception) -> DBAPIError:
    """A psycopg error as SQLAlchemy raises it for the statements it runs itself (IntegrityError,
    OperationalError, ...; the driver's error, with its SQLSTATE, as ``orig``)."""
    import psycopg  # only PostgreSQL gets here, and psycopg is its driver

    return cast(DBAPIError, DBAPIError.instance(sql, params, error, psycopg.Error))


def execute_on_driver(session: Session, statement: Any, params: Mapping[str, Any]) -> Any:
    """PostgreSQL: run ``statement`` (a Core or ``text()`` construct, kept and reused by the caller) on the
    session's psycopg connection, in its transaction, past SQLAlchemy's execution layer; the psycopg cursor.

    For the few statements that run on every request of a hot path (a lineage event's read and write): SQLAlchemy's
    per-execution work (execution context, parameter processing, result metadata) cost about a tenth of a
    lineage POST's CPU time. Parameters get no SQLAlchemy type processing: pass JSON text, numbers, strings and
    aware datetimes. A driver error is raised as SQLAlchemy's (IntegrityError, OperationalError, ...).
    """
    import psycopg  # only PostgreSQL gets here, and psycopg is its driver

    sql, defaults = _driver_sql(statement)
    raw: Any = session.connection().connection.driver_connection
    try:
        return raw.execute(sql, {**defaults, **params} if defaults else params)
    except psycopg.Error as exc:
        raise _as_sqlalchemy_error(sql, params, exc) from exc


# The statements each pooled psycopg connection has prepared for begin_and_fetch_one, as far as it knows.
_PREPARED: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()
# Statements execute_and_commit ran unprepared, by name: prepared before the connection's next begin_and_fetch_one.
_TO_PREPARE: weakref.WeakKeyDictionary[Any, dict[bytes, bytes]] = weakref.WeakKeyDictionary()
# Statements after which psycopg deallocates every prepared statement of the connection (psycopg's own rule).
_DEALLOCATES = re.compile(r"^\s*(?:DROP|ALTER|ROLLBACK|DISCARD ALL|DEALLOCATE ALL)\b", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"%\(([^)]+)\)s")


@cache
def _positional(statement: Any) -> tuple[str, tuple[str, ...]]:
    """``statement``'s SQL with ``$n`` placeholders, and the names of its parameters in that order."""
    sql, _defaults = _driver_sql(statement)
    order: list[str] = []

    def positional(match: re.Match[str]) -> str:
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    return _PLACEHOLDER.sub(positional, sql).replace("%%", "%"), tuple(order)


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

        raise _as_sqlalchemy_error(
            None, None, psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        )
    return bytes(escaping.escape_literal(text_value.encode(encoding)))


def _statement_form(
    statement: Any, params: Mapping[str, Any], raw: Any
) -> tuple[str, dict[str, Any], bytes, bytes, bytes]:
    """What running ``statement`` with ``params`` by name takes: its SQL (for errors), the values, its prepared
    statement's name and PREPARE command, and the EXECUTE of it with the values escaped by libpq."""
    from psycopg import pq

    sql, defaults = _driver_sql(statement)
    values = {**defaults, **params} if defaults else dict(params)
    body, order = _positional(statement)
    name, prepare = _prepare_command(body, tuple(_pg_type(values[n]) for n in order))
    escaping, encoding = pq.Escaping(raw.pgconn), raw.info.encoding
    execute = b"EXECUTE %s(%s)" % (name, b", ".join(_pg_literal(escaping, encoding, values[n]) for n in order))
    return sql, values, name, prepare, execute


def _by_name(raw: Any, status: Any) -> bool:
    """Whether a statement may go by name on psycopg connection ``raw`` in transaction ``status`` (the one the
    caller needs): not in autocommit, and preparing on the server is allowed (``prepared_statements``)."""
    return not raw.autocommit and raw.prepare_threshold is not None and raw.pgconn.transaction_status == status


def begin_and_fetch_one(session: Session, statement: Any, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """PostgreSQL: run ``statement`` (as :func:`execute_on_driver` takes it) as the first statement of the session's
    transaction, opening the transaction in the same round trip; its first row, each value as the server's text
    (bytes) or None. When the session has run a statement already, it runs as :func:`execute_on_driver` runs it
    (values as psycopg loads them).

    psycopg opens a transaction with a BEGIN of its own before the first statement: one round trip more than the
    work needs, about a twentieth of a lineage event's time. Here BEGIN and an EXECUTE of the statement go to the
    server as one message (the simple query protocol, the values escaped by libpq). The statement is prepared once
    per connection under a name, outside any transaction, so its plan is cached as psycopg's own prepared
    statements' are; so are the statements :func:`execute_and_commit` ran unprepared on this connection.

    What the server has prepared is tracked per connection (:func:`_forget_prepared` forgets it when psycopg
    deallocates), and checked here: a PREPARE of a name that exists is taken as done, and an EXECUTE of a name that
    is gone rolls back the transaction it opened (it holds nothing), forgets every name, prepares the statement and
    runs it again.
    """
    from psycopg import pq

    raw: Any = session.connection().connection.driver_connection
    if not _by_name(raw, pq.TransactionStatus.IDLE):
        return cast("tuple[Any, ...] | None", execute_on_driver(session, statement, params).fetchone())
    with _invalidated_when_lost(session, raw):
        return _begin_and_fetch_one(raw, statement, params)


def _begin_and_fetch_one(raw: Any, statement: Any, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    from psycopg import pq

    pgconn = raw.pgconn
    sql, values, name, prepare, execute = _statement_form(statement, params, raw)
    for attempt in (1, 2):
        prepared = _PREPARED.setdefault(raw, set())
        wanted = _TO_PREPARE.pop(raw, {})
        wanted[name] = prepare
        for wanted_name, command in wanted.items():
            if wanted_name not in prepared:
                result = _exec(pgconn, command, sql, values)
                if _sqlstate(result) != "42P05":  # duplicate_prepared_statement: prepared already
                    _check(sql, values, result, pq.ExecStatus.COMMAND_OK)
                prepared.add(wanted_name)
        result = _exec(pgconn, b"BEGIN; " + execute, sql, values)
        if attempt == 1 and _sqlstate(result) == "26000":  # invalid_sql_statement_name: deallocated since
            _check(sql, values, _exec(pgconn, b"ROLLBACK", sql, values), pq.ExecStatus.COMMAND_OK)
            _PREPARED.pop(raw, None)  # deallocated one by one never, so all of them
            continue
        _check(sql, values, result, pq.ExecStatus.TUPLES_OK)
        break
    if result.ntuples == 0:
        return None
    return tuple(result.get_value(0, i) for i in range(result.nfields))


def execute_and_commit(session: Session, statement: Any, params: Mapping[str, Any]) -> None:
    """PostgreSQL: run ``statement`` (as :func:`execute_on_driver` takes it) as the last statement of the session's
    transaction and commit the transaction in the same round trip, when this connection has the statement prepared;
    otherwise run it as :func:`execute_on_driver` does, leave the commit to the session, and have the statement
    prepared before the connection's next :func:`begin_and_fetch_one`. Nothing may run in the transaction after
    it: the session's own commit finds it committed (psycopg then sends nothing).

    psycopg ends a transaction with a COMMIT of its own: one round trip more than the work needs. The statement can
    only be sent by name where the name is known to be prepared: a PREPARE inside the transaction would roll back
    with it, and one that fails aborts it.
    """
    from psycopg import pq

    raw: Any = session.connection().connection.driver_connection
    pgconn = raw.pgconn
    if not _by_name(raw, pq.TransactionStatus.INTRANS):
        execute_on_driver(session, statement, params)
        return
    sql, values, name, prepare, execute = _statement_form(statement, params, raw)
    if name not in _PREPARED.get(raw, ()):
        execute_on_driver(session, statement, params)
        _TO_PREPARE.setdefault(raw, {})[name] = prepare
        return
    with _invalidated_when_lost(session, raw):
        result = _exec(pgconn, execute + b"; COMMIT", sql, values)
        if _sqlstate(result) == "26000":
            _PREPARED.pop(raw, None)
        _check(sql, values, result, pq.ExecStatus.COMMAND_OK)


@contextmanager
def _invalidated_when_lost(session: Session, raw: Any) -> Iterator[None]:
    """As SQLAlchemy does for the statements it runs: a connection found lost is invalidated, so the pool replaces
    it and the session's rollback has nothing to send."""
    try:
        yield
    except DBAPIError as exc:
        if raw.broken:
            session.connection().invalidate(exc)
        raise


def _forget_prepared(engine: Engine) -> None:
    """Forget what a connection has prepared for :func:`begin_and_fetch_one` and :func:`execute_and_commit` when
    psycopg deallocates it: psycopg deallocates every prepared statement of a connection when it rolls back a
    transaction or a savepoint, or runs DDL. Every rollback and statement of Headwater's goes through SQLAlchemy,
    which tells these events; :func:`begin_and_fetch_one` checks anyway."""

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


def _exec(pgconn: Any, command: bytes, sql: str, params: Mapping[str, Any]) -> Any:
    """libpq's PQexec of ``command`` (the GIL released meanwhile); a failure to send or receive (a lost connection)
    raised as SQLAlchemy's error, as a failed statement is by :func:`_check`."""
    import psycopg

    try:
        return pgconn.exec_(command)
    except psycopg.Error as exc:
        raise _as_sqlalchemy_error(sql, params, exc) from exc


def _sqlstate(result: Any) -> str:
    from psycopg import pq

    return (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()


def _check(sql: str, params: Mapping[str, Any], result: Any, expected: Any) -> None:
    """Nothing if ``result`` has the ``expected`` status, else its error raised as SQLAlchemy's, with the SQLSTATE
    (so a caller's retry on a deadlock or a serialization failure sees it)."""
    if result.status == expected:
        return
    import psycopg

    sqlstate = _sqlstate(result)
    message = (result.error_message or b"").decode(errors="replace").strip()
    error = psycopg.errors.lookup(sqlstate)(message) if sqlstate else psycopg.OperationalError(message)
    raise _as_sqlalchemy_error(sql, params, error)


# Below this many rows bulk_insert uses INSERT on PostgreSQL too.
COPY_MIN_ROWS = 20


def bulk_insert(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL, one executemany elsewhere.

    Every row must set the same columns, defaults included (column defaults are not applied). COPY
    moves tens of thousands of rows in the time a pipelined INSERT per row takes for a few thousand,
    which is what a first sync of a large source writes; for a handful of rows (one change event) a plain
    INSERT is one round trip where COPY takes two.
    """
    if not rows:
        return
    table = cast(Table, model.__table__)
    if len(rows) < COPY_MIN_ROWS or session.get_bind().dialect.name != "postgresql":
        session.execute(table.insert(), list(rows))
        return
    import psycopg  # only PostgreSQL gets here, and psycopg is its driver

    columns = list(rows[0])
    json_at = [i for i, name in enumerate(columns) if isinstance(table.c[name].type, JSON)]
    session.flush()
    raw: Any = session.connection().connection.driver_connection
    column_list = ", ".join(f'"{name}"' for name in columns)
    statement = f'COPY "{table.name}" ({column_list}) FROM STDIN'
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:  # every row was built by one dict display, so its values come in ``columns`` order
                values = list(row.values())
                for i in json_at:
                    if values[i] is not None:
                        values[i] = _dump_json(values[i])
                copy.write_row(values)
    except psycopg.Error as exc:  # the driver's own error, seen by callers as SQLAlchemy's (IntegrityError...)
        raise _as_sqlalchemy_error(statement, None, exc) from exc


def bulk_insert_returning_ids(session: Session, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """:func:`bulk_insert` of rows whose integer ``id`` is generated; the new ids, in the order of ``rows``.

    On PostgreSQL the ids of a COPY are drawn from the column's sequence first.
    """
    if not rows:
        return []
    table = cast(Table, model.__table__)
    if len(rows) < COPY_MIN_ROWS or session.get_bind().dialect.name != "postgresql":
        stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        return list(session.scalars(stmt, list(rows)))
    ids = list(
        session.scalars(
            text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
            {"table": table.name, "n": len(rows)},
        )
    )
    bulk_insert(session, model, [{"id": new_id, **row} for new_id, row in zip(ids, rows, strict=True)])
    return ids
