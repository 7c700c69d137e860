"""Database plumbing shared by every domain: the declarative base, portable column types, engines,
sessions, and the check that the database is migrated.

The edge that handles a request (a route, a CLI command, a worker loop) opens the transaction with
:func:`session_scope` or the FastAPI dependency; service functions only flush.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    delete,
    event,
    select,
    text,
)
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
    "trim_oldest",
    "make_sessionmaker",
    "read_scope",
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
    the server, neither after psycopg's five runs nor with ``prepare=True`` (behind a PgBouncer in transaction
    mode)."""
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


@contextmanager
def read_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A transaction that only reads: ended with COMMIT, not ROLLBACK (an exception still rolls it back).

    psycopg deallocates every statement a connection has prepared when that connection rolls back, and the pool
    hands the same connection to the next request: a background loop that ended its reads with a ROLLBACK every
    quarter second threw away the lineage ingestion's prepared statements just as often (ADR 0004, issue 18).
    For a transaction that wrote nothing, COMMIT and ROLLBACK leave the database the same."""
    with session_scope(factory) as session:
        yield session


# Where psycopg's dialect writes a parameter (``%(name)s``) or a literal percent sign (``%%``).
_PLACEHOLDER = re.compile(r"%%|%\(([^)]+)\)s")


@cache
def _native(statement: Any) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """``statement`` compiled once for psycopg's :class:`~psycopg.RawCursor`: its SQL with PostgreSQL's own ``$n``
    placeholders, the names of its parameters in that order, and the values of the parameters it binds itself.

    psycopg scans a ``%(name)s`` statement for its placeholders on every execution and caches the result only for
    statements under 4 KiB; the lineage ingestion's two statements are 4-6 KiB and run for every event (the scan
    cost about a twentieth of an event's time). A raw cursor takes the statement as it is."""
    compiled = statement.compile(dialect=psycopg_dialect())
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if (name := match.group(1)) is None:
            return "%"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    defaults = {name: value for name, value in compiled.params.items() if value is not None}
    return _PLACEHOLDER.sub(number, str(compiled)), tuple(order), defaults


def _as_sqlalchemy_error(sql: str | None, params: Any, error: Exception) -> DBAPIError:
    """A psycopg error as SQLAlchemy raises it for the statements it runs itself (IntegrityError,
    OperationalError, ...; the driver's error, with its SQLSTATE, as ``orig``)."""
    import psycopg  # only PostgreSQL gets here, and psycopg is its driver

    return cast(DBAPIError, DBAPIError.instance(sql, params, error, psycopg.Error))


@contextmanager
def _on_driver(session: Session, statement: Any, params: Mapping[str, Any]) -> Iterator[tuple[Any, str, list[Any]]]:
    """The session's psycopg connection (in its transaction), ``statement``'s native SQL and its values in order.
    A driver error is raised as SQLAlchemy's, and a connection found lost is invalidated, as SQLAlchemy does for
    the statements it runs itself: the pool replaces it and the session's rollback has nothing to send."""
    import psycopg  # only PostgreSQL gets here, and psycopg is its driver

    sql, order, defaults = _native(statement)
    values = {**defaults, **params} if defaults else params
    raw: Any = session.connection().connection.driver_connection
    try:
        yield raw, sql, [values[name] for name in order]
    except psycopg.Error as exc:
        error = _as_sqlalchemy_error(sql, params, exc)
        if raw.broken:
            session.connection().invalidate(error)
        raise error from exc


def execute_on_driver(session: Session, statement: Any, params: Mapping[str, Any]) -> Any:
    """PostgreSQL: run ``statement`` (a Core or ``text()`` construct, kept and reused by the caller) on the
    session's psycopg connection, in its transaction, past SQLAlchemy's execution layer; the psycopg cursor.

    For the few statements that run on every request of a hot path (a lineage event's read and write): SQLAlchemy's
    per-execution work (execution context, parameter processing, result metadata) cost about a tenth of a
    lineage POST's CPU time. Parameters get no SQLAlchemy type processing: pass JSON text, numbers, strings and
    aware datetimes. A driver error is raised as SQLAlchemy's (IntegrityError, OperationalError, ...).
    """
    from psycopg import RawCursor

    with _on_driver(session, statement, params) as (raw, sql, values):
        return RawCursor(raw).execute(sql, values)


def begin_and_fetch_one(session: Session, statement: Any, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """PostgreSQL: run ``statement`` (as :func:`execute_on_driver` takes it) in the session's transaction, prepared
    on the server from its first run on a connection (psycopg's ``prepare=True``); its first row.

    Prepared per statement, not by a lower ``prepare_threshold``: the engine's stays psycopg's default, so statements
    whose plans must follow their parameters (the lineage impact walk) are not prepared early. Why not our own BEGIN
    sent with the statement: ``docs/adr/0004-named-statements.md``."""
    from psycopg import RawCursor

    with _on_driver(session, statement, params) as (raw, sql, values):
        return cast("tuple[Any, ...] | None", RawCursor(raw).execute(sql, values, prepare=True).fetchone())


def execute_and_commit(session: Session, statement: Any, params: Mapping[str, Any]) -> None:
    """PostgreSQL: run ``statement`` (as :func:`execute_on_driver` takes it) as the last statement of the session's
    transaction and commit the transaction in the same round trip (psycopg's pipeline mode), prepared as
    :func:`begin_and_fetch_one` prepares. Nothing may run in the transaction after it: the session's own commit
    finds it committed (psycopg then sends nothing). When the session has no transaction open on the server, it
    runs as :func:`execute_on_driver` runs it and the commit is left to the session.

    A failing statement commits nothing: the server skips the COMMIT queued after it, and the transaction is left
    aborted for the session to roll back."""
    from psycopg import RawCursor, pq

    with _on_driver(session, statement, params) as (raw, sql, values):
        if raw.info.transaction_status != pq.TransactionStatus.INTRANS:
            RawCursor(raw).execute(sql, values, prepare=True)
            return
        # COMMIT as a statement, not conn.commit(): that one syncs the pipeline and waits, and leaving the
        # pipeline syncs again, a round trip each; the pipeline's one Sync at its exit sends both.
        with raw.pipeline():
            RawCursor(raw).execute(sql, values, prepare=True)
            raw.execute(b"COMMIT", prepare=False)


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


def trim_oldest(
    session: Session, id_column: Any, time_column: Any, *, before: dt.datetime, limit: int, through: int | None = None
) -> tuple[int, int]:
    """Remove the oldest rows of an append-only table: a prefix by id (at most ``limit`` rows, ids up to ``through``
    when given; the columns are a model's mapped attributes), stopping at the first row whose ``time_column`` is not before ``before``; (rows removed, the last
    id removed or 0). Read and removed through the primary key, so the caller's mark is exact: every id up to it is
    gone. The newest row always stays: SQLite hands out max(id) + 1, so removing it would hand its id out again."""
    query = select(id_column, time_column).order_by(id_column).limit(limit)
    if through is not None:
        query = query.where(id_column <= through)
    rows = session.execute(query).all()
    newest = session.scalar(select(id_column).order_by(id_column.desc()).limit(1))
    last = 0
    for row_id, at in rows:
        if at >= before or row_id == newest:
            break
        last = row_id
    if not last:
        return 0, 0
    table = id_column.class_ if hasattr(id_column, "class_") else id_column.table
    removed = session.execute(delete(table).where(id_column <= last), execution_options={"synchronize_session": False})
    return int(getattr(removed, "rowcount", 0) or 0), last
