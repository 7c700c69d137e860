"""Portable ``INSERT ... ON CONFLICT`` for the lineage tables (PostgreSQL and SQLite both speak it).

Edges are upserted in one statement per table per ingestion batch; the provenance columns merge so that
arrival order never matters: ``first_seen`` keeps the earliest event time, ``last_seen`` the latest, and the
run, producer and retirement follow whichever event is newest. Statements are built once per table and
shape and run with the rows as parameters; their ``RETURNING`` clause makes SQLAlchemy send them as
multi-row ``INSERT ... VALUES`` pages ("insertmanyvalues") instead of one statement per row.

Column edges go through :class:`ColumnEdgeBuffer`: a batch's statements about them (edges named, edges
retired because a newer declaration no longer names them) are replayed in memory, in order, over the
current rows of the (job, target dataset) pairs involved, and only the rows that end up different are written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from typing import Any, cast

import orjson
from sqlalchemy import Table, and_, case, literal_column, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater.db import Base
from headwater.lineage.models import ColumnEdge

__all__ = ["CHUNK", "ColumnEdgeBuffer", "insert_ignore", "insert_statement", "merge_provenance_rows", "upsert_edges"]

# Keys per IN list and rows per statement: well under SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def insert_statement(session: Session, model: type[Base]) -> Any:
    """A dialect-specific INSERT for ``model`` (it has ``on_conflict_do_*``)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(_table(model))
    return sqlite.insert(_table(model))


@cache
def _ignore_statement(dialect: str, model: type[Base], keys: tuple[str, ...]) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(_table(model)).on_conflict_do_nothing(index_elements=list(keys))


def insert_ignore(session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, silently skipping those whose ``keys`` already exist."""
    if rows:
        dialect = session.get_bind().dialect.name
        session.execute(_ignore_statement(dialect, model, tuple(keys)), list(rows))


def merge_provenance_rows(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Rows with the same key merged (one statement may not touch a row twice on PostgreSQL)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        old = merged.get(key)
        if old is None:
            merged[key] = dict(row)
            continue
        old["first_seen"] = min(old["first_seen"], row["first_seen"])
        if row["last_seen"] >= old["last_seen"]:
            first = old["first_seen"]
            old.update(row)
            old["first_seen"] = first
    return list(merged.values())


@cache
def _upsert_statement(
    dialect: str,
    model: type[Base],
    keys: tuple[str, ...],
    newest_wins: tuple[str, ...],
    replace_retired: bool,
    columns: tuple[str, ...],
) -> Any:
    table = _table(model)
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).from_select(list(columns), json_rows_source(table, columns))
    else:
        stmt = sqlite.insert(table)
    new = stmt.excluded
    newer = new.last_seen >= table.c.last_seen
    updates: dict[str, Any] = {
        "first_seen": case((new.first_seen < table.c.first_seen, new.first_seen), else_=table.c.first_seen),
        "last_seen": case((newer, new.last_seen), else_=table.c.last_seen),
        "last_run_id": case((newer, new.last_run_id), else_=table.c.last_run_id),
        "producer": case((newer, new.producer), else_=table.c.producer),
        # A confirmation newer than the retirement brings the edge back; an older one does not.
        "retired_at": new.retired_at
        if replace_retired
        else case(
            (and_(table.c.retired_at.is_not(None), new.last_seen < table.c.retired_at), table.c.retired_at),
            else_=None,
        ),
    }
    for column in newest_wins:
        updates[column] = case((newer, getattr(new, column)), else_=table.c[column])
    statement = stmt.on_conflict_do_update(index_elements=list(keys), set_=updates)
    # On SQLite, RETURNING turns the executemany into multi-row INSERTs (SQLAlchemy's insertmanyvalues).
    return statement if dialect == "postgresql" else statement.returning(table.c.id)


def json_rows_source(table: Table, columns: Sequence[str]) -> Any:
    """PostgreSQL: a SELECT of the rows sent as one JSON array in the ``rows`` parameter.

    One short statement that psycopg parses and PostgreSQL plans once whatever the number of rows, and
    whose one parameter orjson encodes far faster than psycopg adapts thousands of separate values.
    """
    source = text(f"json_populate_recordset(NULL::{table.name}, CAST(:rows AS json)) AS r")
    return select(*(literal_column(f"r.{c}") for c in columns)).select_from(source)


def json_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """The ``rows`` parameter of :func:`json_rows_source`."""
    return orjson.dumps([{c: row[c] for c in columns} for row in rows]).decode()


def _write_upserts(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    newest_wins: Sequence[str],
    replace_retired: bool = False,
) -> None:
    """Run the upsert over ``rows`` (each key at most once; every row with the same columns)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    columns = tuple(rows[0])
    statement = _upsert_statement(dialect, model, tuple(keys), tuple(newest_wins), replace_retired, columns)
    connection = session.connection()
    size = 10_000 if dialect == "postgresql" else CHUNK
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        if dialect == "postgresql":
            connection.execute(statement, {"rows": json_rows(chunk, columns)})
        else:
            connection.execute(statement, list(chunk)).all()


def upsert_edges(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    newest_wins: Sequence[str] = (),
) -> None:
    """Insert edges or merge their provenance into the existing ones; ``newest_wins`` columns follow the newest event."""
    if not rows:
        return
    _write_upserts(session, model, merge_provenance_rows(rows, keys), keys, newest_wins)


COLUMN_EDGE_KEYS = ("source_field_id", "target_field_id", "job_id", "transformation_type", "subtype")
COLUMN_EDGE_NEWEST = ("description", "masking", "dataset_level", "origin")
_COLUMN_EDGE_COLUMNS = (
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


class ColumnEdgeBuffer:
    """Column-edge statements of one batch, replayed in memory and written once by :meth:`flush`.

    The replay follows exactly what one upsert per statement followed by one retirement UPDATE did:
    a named edge merges its provenance (earliest first seen, newest last seen / run / producer / type
    details; a confirmation newer than its retirement revives it), and a retiring statement marks retired,
    at its event time, every edge of the same job into the same dataset last seen before it.
    """

    def __init__(self) -> None:
        self._ops: list[tuple[tuple[int, int], list[dict[str, Any]], dt.datetime | None]] = []

    def add(
        self, *, job_id: int, target_dataset_id: int, rows: Sequence[dict[str, Any]], retire_at: dt.datetime | None
    ) -> None:
        """Record edges one statement names (and, with ``retire_at``, that it retires the others)."""
        if rows or retire_at is not None:
            self._ops.append(((job_id, target_dataset_id), list(rows), retire_at))

    def flush(self, session: Session) -> int:
        """Replay the statements over the current rows and write the edges that changed; returns how many."""
        if not self._ops:
            return 0
        ops, self._ops = self._ops, []
        table = _table(ColumnEdge)
        groups = list(dict.fromkeys(group for group, _, _ in ops))
        loaded: dict[tuple[Any, ...], dict[str, Any]] = {}
        members: dict[tuple[int, int], list[tuple[Any, ...]]] = {group: [] for group in groups}
        connection = session.connection()
        for start in range(0, len(groups), CHUNK):
            statement = (
                select(*(table.c[c] for c in _COLUMN_EDGE_COLUMNS))
                .where(tuple_(table.c.job_id, table.c.target_dataset_id).in_(groups[start : start + CHUNK]))
                .order_by(table.c.id)
                .with_for_update()
            )
            for found in connection.execute(statement):
                values = dict(zip(_COLUMN_EDGE_COLUMNS, found, strict=True))
                key = tuple(values[k] for k in COLUMN_EDGE_KEYS)
                loaded[key] = values
                members[(values["job_id"], values["target_dataset_id"])].append(key)
        state = {key: dict(values) for key, values in loaded.items()}
        for group, rows, retire_at in ops:
            for row in rows:
                key = tuple(row[k] for k in COLUMN_EDGE_KEYS)
                edge = state.get(key)
                if edge is None:
                    state[key] = {**row, "retired_at": None}
                    members[group].append(key)
                    continue
                edge["first_seen"] = min(edge["first_seen"], row["first_seen"])
                retired = edge["retired_at"]
                if retired is not None and not row["last_seen"] < retired:
                    edge["retired_at"] = None
                if row["last_seen"] >= edge["last_seen"]:
                    edge["last_seen"] = row["last_seen"]
                    for column in ("last_run_id", "producer", *COLUMN_EDGE_NEWEST):
                        edge[column] = row[column]
            if retire_at is not None:
                for key in members[group]:
                    edge = state[key]
                    if edge["retired_at"] is None and edge["last_seen"] < retire_at:
                        edge["retired_at"] = retire_at
        changed = [edge for key, edge in state.items() if loaded.get(key) != edge]
        _write_upserts(session, ColumnEdge, changed, COLUMN_EDGE_KEYS, COLUMN_EDGE_NEWEST, replace_retired=True)
        return len(changed)
