"""The SQL of lineage ingestion's writes: portable ``INSERT ... ON CONFLICT`` (PostgreSQL and SQLite both speak it).

Statements are built once per table and shape (cached) and run with the rows as parameters. On PostgreSQL the
rows go as one JSON array (:func:`json_rows_source`), and every write of a batch is one data-modifying CTE of one
statement (:func:`combined`); on SQLite the upserts' ``RETURNING`` clause makes SQLAlchemy send them as multi-row
``INSERT ... VALUES`` pages ("insertmanyvalues") instead of one statement per row. Column edges are read against
their (job, target dataset) pair's confirmation (:mod:`.confirm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import orjson
from sqlalchemy import (
    BigInteger,
    DateTime,
    String,
    Table,
    and_,
    bindparam,
    case,
    column,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater.db import Base
from headwater.lineage.models import ColumnEdge

__all__ = [
    "CHUNK",
    "COLUMN_EDGE_COLUMNS",
    "COLUMN_EDGE_KEYS",
    "COLUMN_EDGE_NEWEST",
    "PAIR_LOCK_KEY",
    "Part",
    "Replace",
    "Retire",
    "Update",
    "Upsert",
    "columns_of",
    "combined",
    "ignore_statement",
    "insert_statement",
    "json_rows",
    "json_rows_source",
    "replace_statement",
    "retire_statement",
    "table_of",
    "update_by_id",
    "upsert_statement",
]

# Keys per IN list and rows per statement: well under SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


def table_of(model: type[Base]) -> Table:
    """The Core table of an ORM model."""
    return cast(Table, model.__table__)


def insert_statement(session: Session, model: type[Base]) -> Any:
    """A dialect-specific INSERT for ``model`` (it has ``on_conflict_do_*``)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table_of(model))
    return sqlite.insert(table_of(model))


@cache
def ignore_statement(dialect: str, model: type[Base], keys: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING`` for ``model``."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table_of(model)).on_conflict_do_nothing(index_elements=list(keys))


@cache
def upsert_statement(
    dialect: str,
    model: type[Base],
    keys: tuple[str, ...],
    newest_wins: tuple[str, ...],
    replace_retired: bool,
    columns: tuple[str, ...],
    param: str = "rows",
    confirmed: bool = False,
    lazy: bool = False,
) -> Any:
    """The upsert of ``model``'s rows. ``confirmed`` (PostgreSQL, column edges): rows are read against their pair's
    confirmation; ``lazy``: an edge that is live and unchanged is left as it is (see :func:`headwater.lineage.ingest.confirm._write_blind`)."""
    table = table_of(model)
    stmt: Any
    if dialect == "postgresql":
        if confirmed:
            source = _confirmed_rows_source(columns, param, keys if lazy else (), newest_wins)
        else:
            source = json_rows_source(table, columns, param)
        stmt = postgresql.insert(table).from_select(list(columns), source)
    else:
        stmt = sqlite.insert(table)
    new = stmt.excluded
    newer = new.last_seen >= table.c.last_seen
    if confirmed:
        # A row older than the pair's confirmation (excluded.retired_at set) is never newer than a live edge: the
        # edge's last seen is the confirmation's.
        newer = and_(newer, or_(table.c.retired_at.is_not(None), new.retired_at.is_(None)))
    updates: dict[str, Any] = {
        "first_seen": case((new.first_seen < table.c.first_seen, new.first_seen), else_=table.c.first_seen),
        "last_seen": case((newer, new.last_seen), else_=table.c.last_seen),
        "last_run_id": case((newer, new.last_run_id), else_=table.c.last_run_id),
        "producer": case((newer, new.producer), else_=table.c.producer),
    }
    if replace_retired:
        updates["retired_at"] = new.retired_at
    elif confirmed:
        # Seen again after its retirement: live again, or, when a newer declaration did not name it, retired at that
        # declaration's time (the row's retired_at, see _confirmed_rows_source). Live edges stay live.
        updates["retired_at"] = case(
            (table.c.retired_at.is_(None), None),
            (new.last_seen >= table.c.retired_at, new.retired_at),
            else_=table.c.retired_at,
        )
    else:
        # A confirmation newer than the retirement brings the edge back; an older one does not.
        updates["retired_at"] = case(
            (and_(table.c.retired_at.is_not(None), new.last_seen < table.c.retired_at), table.c.retired_at),
            else_=None,
        )
    for name in newest_wins:
        updates[name] = case((newer, getattr(new, name)), else_=table.c[name])
    where = None
    if lazy:
        # Live, named as it is, not seen earlier than known: nothing to write (the confirmation row says it is seen).
        where = or_(
            table.c.retired_at.is_not(None),
            new.first_seen < table.c.first_seen,
            and_(new.retired_at.is_(None), or_(*(table.c[c].is_distinct_from(new[c]) for c in newest_wins))),
        )
    statement = stmt.on_conflict_do_update(index_elements=list(keys), set_=updates, where=where)
    # On SQLite, RETURNING turns the executemany into multi-row INSERTs (SQLAlchemy's insertmanyvalues).
    return statement if dialect == "postgresql" else statement.returning(table.c.id)


# The confirmation ``c`` of the pair of row ``r`` (job_id, target_dataset_id), if any. A LATERAL probe of the primary
# key per row: a join planned while the table was small would keep scanning it as it grows.
_CONFIRMATION_OF_R = (
    "LEFT JOIN LATERAL (SELECT confirmed_at, last_run_id, producer FROM lineage_column_confirmations"
    " WHERE job_id = r.job_id AND target_dataset_id = r.target_dataset_id OFFSET 0) AS c ON true"
)


def _confirmed_rows_source(
    columns: Sequence[str], param: str, lazy_keys: Sequence[str] = (), details: Sequence[str] = ()
) -> Any:
    """PostgreSQL: column-edge rows (JSON, as :func:`json_rows_source`) with ``retired_at`` set to their pair's
    confirmation time when that is newer than the row: an edge a newer declaration did not name is not live.

    With ``lazy_keys`` (the edges' unique key), the rows that would change nothing are left out before the insert
    sees them: an edge found by that key live, seen no later, and with the same ``details`` (or read as retired by
    the confirmation). ``ON CONFLICT DO UPDATE ... WHERE`` locks every conflicting row before it tests its WHERE,
    which writes a WAL record and dirties the page even when the WHERE then leaves the row alone: for a job whose
    column lineage does not change, that was every edge of every run. The read is sound because the caller holds
    the pair's advisory lock, so no other writer of these edges commits while this statement runs; the upsert keeps
    its own WHERE for the rows it gets.
    """
    table = table_of(ColumnEdge)
    joins = _CONFIRMATION_OF_R
    if lazy_keys:
        found = " AND ".join(f"{k} = r.{k}" for k in lazy_keys)
        joins += (
            f" LEFT JOIN LATERAL (SELECT true AS found, retired_at, first_seen, {', '.join(details)}"
            f" FROM {table.name} WHERE {found} OFFSET 0) AS e ON true"
        )
    source = text(f"json_populate_recordset(NULL::{table.name}, CAST(:{param} AS json)) AS r {joins}")
    selected: list[Any] = [
        literal_column("CASE WHEN c.confirmed_at > r.last_seen THEN c.confirmed_at END").label(c)
        if c == "retired_at"
        else literal_column(f"r.{c}")
        for c in columns
    ]
    rows = select(*selected).select_from(source)
    if lazy_keys:
        # The upsert's lazy WHERE (see upsert_statement), over the row found and the row sent.
        differs = " OR ".join(f"e.{c} IS DISTINCT FROM r.{c}" for c in details)
        rows = rows.where(
            text(
                "e.found IS NULL OR e.retired_at IS NOT NULL OR r.first_seen < e.first_seen"
                f" OR (NOT coalesce(c.confirmed_at > r.last_seen, false) AND ({differs or 'false'}))"
            )
        )
    return rows


def json_rows_source(table: Table, columns: Sequence[str], param: str = "rows") -> Any:
    """PostgreSQL: a SELECT of the rows sent as one JSON array in the ``param`` parameter (``rows``).

    One short statement that psycopg parses and PostgreSQL plans once whatever the number of rows, and
    whose one parameter orjson encodes far faster than psycopg adapts thousands of separate values.
    """
    source = text(f"json_populate_recordset(NULL::{table.name}, CAST(:{param} AS json)) AS r")
    return select(*(literal_column(f"r.{c}") for c in columns)).select_from(source)


def json_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """The ``rows`` parameter of :func:`json_rows_source`."""
    keys = rows[0].keys() if rows else None
    if keys is not None and len(keys) == len(columns) and keys >= set(columns) and all(r.keys() == keys for r in rows):
        # Rows built alike, holding exactly the columns (the common case): sent as they are, without a copy.
        return orjson.dumps(rows).decode()
    return orjson.dumps([{c: row[c] for c in columns} for row in rows]).decode()


# The unique key of a column edge, the columns that follow the newest statement, and every column ingestion writes.
COLUMN_EDGE_KEYS = ("source_field_id", "target_field_id", "job_id", "transformation_type", "subtype")
COLUMN_EDGE_NEWEST = ("description", "masking", "dataset_level", "origin")
COLUMN_EDGE_COLUMNS = (
    *COLUMN_EDGE_KEYS,
    "source_dataset_id",
    "target_dataset_id",
    *COLUMN_EDGE_NEWEST,
    "producer",
    "first_seen",
    "last_seen",
    "retired_at",
    "last_run_id",
)


# The transaction-scoped advisory lock of a (job, target dataset) pair's column edges, by its ids (SQL, PostgreSQL).
PAIR_LOCK_KEY = "hashtextextended('lineage_column_edges:' || {job_id} || ':' || {dataset_id}, 0)"


@dataclass(frozen=True)
class Upsert:
    """Rows upserted with their provenance merged (see :func:`upsert_statement`)."""

    model: type[Base]
    keys: tuple[str, ...]
    newest_wins: tuple[str, ...]
    replace_retired: bool
    columns: tuple[str, ...]
    confirmed: bool = False
    lazy: bool = False


@dataclass(frozen=True)
class Update:
    """Rows updated by id (with ``newest``, only those whose ``newest`` column is NULL or older than the row's)."""

    model: type[Base]
    columns: tuple[str, ...]
    newest: str | None = None


@dataclass(frozen=True)
class Replace:
    """Rows written by their natural key: inserted, or on conflict the ``updates`` columns replaced."""

    model: type[Base]
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    updates: tuple[str, ...]
    # When set, an existing row is only replaced by a row whose value in this column is not older.
    newest: str | None = None


@cache
def replace_statement(dialect: str, part: Replace, param: str = "rows") -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE``: found through the unique index whatever the table's size.

    An ``UPDATE ... WHERE id = ...`` is planned too, and a prepared statement keeps the plan it got while the
    table was small (a sequential scan) until the table is next analysed; the conflict check always probes the
    index.
    """
    table = table_of(part.model)
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).from_select(list(part.columns), json_rows_source(table, part.columns, param))
    else:
        stmt = sqlite.insert(table)
    where = None if part.newest is None else stmt.excluded[part.newest] >= table.c[part.newest]
    return stmt.on_conflict_do_update(
        index_elements=list(part.keys), set_={c: getattr(stmt.excluded, c) for c in part.updates}, where=where
    )


@dataclass(frozen=True)
class Retire:
    """Column edges of (job, target dataset) pairs that a statement retires: all but those it names."""

    model: type[Base] = ColumnEdge
    columns: tuple[str, ...] = ("job_id", "target_dataset_id", "retire_at")


@cache
def retire_statement(param: str) -> Any:
    """PostgreSQL: retire, at each pair's time, its live edges last seen before it and not named.

    ``param`` is one JSON object: ``pairs`` (job, target dataset, time) and ``named`` (the edges the statements
    name, as [source field, target field, job, type, subtype]), anti-joined once rather than searched per edge.
    An edge's last seen, run and producer are read through its pair's confirmation, and written into the row as
    it is retired (the confirmation moves on to the retiring declaration).
    """
    table = table_of(ColumnEdge)
    source = (
        text(
            f"SELECT r.job_id, r.target_dataset_id, r.retire_at, c.confirmed_at, c.last_run_id, c.producer "
            f"FROM json_to_recordset(CAST(:{param} AS json)->'pairs') "
            f"AS r(job_id bigint, target_dataset_id bigint, retire_at timestamptz) {_CONFIRMATION_OF_R}"
        )
        .columns(
            column("job_id", BigInteger),
            column("target_dataset_id", BigInteger),
            column("retire_at", DateTime(timezone=True)),
            column("confirmed_at", DateTime(timezone=True)),
            column("last_run_id", BigInteger),
            column("producer", String),
        )
        .subquery("retiring")
    )
    # As in update_by_id: arrays the planner estimates at a few elements, so the pairs' edges are found through
    # the (job, target dataset) index rather than by hashing a scan of the whole table.
    jobs, targets = (
        text(f"ARRAY(SELECT CAST(e->>'{c}' AS bigint) FROM json_array_elements(CAST(:{param} AS json)->'pairs') e)")
        for c in ("job_id", "target_dataset_id")
    )
    unnamed = text(
        "(lineage_column_edges.source_field_id, lineage_column_edges.target_field_id, lineage_column_edges.job_id,"
        " lineage_column_edges.transformation_type, lineage_column_edges.subtype) NOT IN ("
        "SELECT CAST(n->>0 AS bigint), CAST(n->>1 AS bigint), CAST(n->>2 AS bigint), n->>3, n->>4"
        f" FROM json_array_elements(CAST(:{param} AS json)->'named') AS n)"
    )
    # A live edge (only live edges are retired here) reads its pair's confirmation when that is newer.
    confirmed = source.c.confirmed_at > table.c.last_seen
    return (
        update(table)
        .values(
            retired_at=source.c.retire_at,
            last_seen=case((confirmed, source.c.confirmed_at), else_=table.c.last_seen),
            last_run_id=case((confirmed, source.c.last_run_id), else_=table.c.last_run_id),
            producer=case((confirmed, source.c.producer), else_=table.c.producer),
        )
        .where(
            table.c.job_id == func.any(jobs),
            table.c.target_dataset_id == func.any(targets),
            table.c.job_id == source.c.job_id,
            table.c.target_dataset_id == source.c.target_dataset_id,
            table.c.retired_at.is_(None),
            case((confirmed, source.c.confirmed_at), else_=table.c.last_seen) < source.c.retire_at,
            # A declaration by hand stands until it is withdrawn by hand.
            table.c.origin != "manual",
            unnamed,
        )
    )


@cache
def update_by_id(model: type[Base], columns: tuple[str, ...], param: str | None, newest: str | None = None) -> Any:
    """``UPDATE table SET columns WHERE id = ...``: from a JSON array on PostgreSQL (``param``), else executemany;
    with ``newest``, a row whose ``newest`` column is not older is left alone."""
    table = table_of(model)
    if param is None:
        statement = (
            update(table).where(table.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})
        )
        if newest is not None:
            statement = statement.where(or_(table.c[newest].is_(None), table.c[newest] < bindparam(f"b_{newest}")))
        return statement
    rows = text(f"json_populate_recordset(NULL::{table.name}, CAST(:{param} AS json)) AS r")
    source = select(*(literal_column(f"r.{c}").label(c) for c in ("id", *columns))).select_from(rows).subquery("src")
    # The ids again as an array: "= ANY(ARRAY(...))" is estimated at a few rows, so the rows are found through
    # the primary key rather than by hashing a sequential scan of the table (JSON rows are estimated at 100).
    ids = text(f"ARRAY(SELECT CAST(e->>'id' AS bigint) FROM json_array_elements(CAST(:{param} AS json)) AS e)")
    statement = (
        update(table)
        .values({c: source.c[c] for c in columns})
        .where(table.c.id == source.c.id, table.c.id == func.any(ids))
    )
    if newest is not None:
        statement = statement.where(or_(table.c[newest].is_(None), table.c[newest] < source.c[newest]))
    return statement


Part = Upsert | Update | Replace | Retire


@cache
def combined(parts: tuple[Part, ...]) -> Any:
    """One PostgreSQL statement running every write as a data-modifying CTE (``rows_<n>`` holds part n's rows)."""
    ctes = []
    for index, part in enumerate(parts):
        param = f"rows_{index}"
        statement: Any
        if isinstance(part, Upsert):
            statement = upsert_statement(
                "postgresql",
                part.model,
                part.keys,
                part.newest_wins,
                part.replace_retired,
                part.columns,
                param,
                part.confirmed,
                part.lazy,
            )
        elif isinstance(part, Retire):
            statement = retire_statement(param)
        elif isinstance(part, Replace):
            statement = replace_statement("postgresql", part, param)
        else:
            statement = update_by_id(part.model, part.columns, param, part.newest)
        ctes.append(statement.cte(f"write_{index}"))
    return select(literal_column("1")).add_cte(*ctes)


def columns_of(part: Upsert | Update | Replace) -> tuple[str, ...]:
    """The columns of a part's JSON rows."""
    return ("id", *part.columns) if isinstance(part, Update) else part.columns
