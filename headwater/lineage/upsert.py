"""Portable ``INSERT ... ON CONFLICT`` for the lineage tables (PostgreSQL and SQLite both speak it).

Edges are upserted in one statement per table per ingestion batch; the provenance columns merge so that
arrival order never matters: ``first_seen`` keeps the earliest event time, ``last_seen`` the latest, and the
run, producer and retirement follow whichever event is newest. Statements are built once per table and
shape and run with the rows as parameters; their ``RETURNING`` clause makes SQLAlchemy send them as
multi-row ``INSERT ... VALUES`` pages ("insertmanyvalues") instead of one statement per row.

Column edges go through :class:`ColumnEdgeBuffer`: a batch's statements about them (edges named, edges
retired because a newer declaration no longer names them) are replayed in memory, in order, over the
current rows of the (job, target dataset) pairs involved and their confirmations, and only the rows that end up
different are written. On PostgreSQL a pair the request states once, under its advisory lock, is written blind
instead: its named edges upserted, its other edges retired and its confirmation moved on, in the same statement
(:func:`_write_blind`). A live edge its pair's newest complete declaration named unchanged is not rewritten: it
reads its last seen, run and producer through the pair's confirmation.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
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
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from headwater.db import Base, execute_and_commit, execute_on_driver
from headwater.lineage.models import ColumnConfirmation, ColumnEdge

__all__ = [
    "CHUNK",
    "ColumnEdgeBuffer",
    "WriteSet",
    "insert_ignore",
    "insert_statement",
    "merge_provenance_rows",
    "upsert_edges",
]

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
    key_of = itemgetter(*keys)
    if len({key_of(row) for row in rows}) == len(rows):
        return list(rows)  # the common case: every key once
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = key_of(row)
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
    param: str = "rows",
    confirmed: bool = False,
    lazy: bool = False,
) -> Any:
    """The upsert of ``model``'s rows. ``confirmed`` (PostgreSQL, column edges): rows are read against their pair's
    confirmation; ``lazy``: an edge that is live and unchanged is left as it is (see :func:`_write_blind`)."""
    table = _table(model)
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
    table = _table(ColumnEdge)
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
        # The upsert's lazy WHERE (see _upsert_statement), over the row found and the row sent.
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


_edge_key = itemgetter(*COLUMN_EDGE_KEYS)


@dataclass
class _Statement:
    """What one statement says about the column edges of one (job, target dataset) pair."""

    group: tuple[int, int]
    rows: list[dict[str, Any]]
    at: dt.datetime  # its event time
    retiring: bool  # a complete declaration: the pair's edges it does not name are retired
    run_id: int | None
    producer: str | None


# A pair's confirmation: (confirmed at, last run id, producer).
Confirmation = list[Any]


class ColumnEdgeBuffer:
    """Column-edge statements of one batch, replayed in memory and written once by :meth:`flush`.

    A named edge merges its provenance (earliest first seen, newest last seen / run / producer / type details; a
    confirmation newer than its retirement revives it). A complete declaration retires, at its event time, every
    edge of the same job into the same dataset last seen before it, and becomes the pair's confirmation
    (:class:`~headwater.lineage.models.ColumnConfirmation`) when it is the newest: the edges it names that are live
    and unchanged are not rewritten, they read their last seen, run and producer from it. An edge named only by a
    declaration older than the confirmation, arriving late, is retired at the confirmation's time.
    """

    def __init__(self) -> None:
        self._ops: list[_Statement] = []
        # Pairs the caller holds the advisory lock of and states once (PostgreSQL): written blind.
        self._locked: set[tuple[int, int]] = set()
        # Pairs the caller holds the advisory lock of (PostgreSQL); the others are locked before they are read.
        self._held: set[tuple[int, int]] = set()

    def locked(self, groups: Iterable[tuple[int, int]], held: Iterable[tuple[int, int]] = ()) -> None:
        """Take note of the pairs whose advisory lock the caller holds and whose column lineage it states once
        (``groups``, see :mod:`headwater.lineage.snapshot`): their one statement is written without reading their
        edges; and of the other pairs whose lock it holds (``held``)."""
        self._locked.update(groups)
        self._held.update(groups)
        self._held.update(held)

    def add(
        self,
        *,
        job_id: int,
        target_dataset_id: int,
        rows: Sequence[dict[str, Any]],
        at: dt.datetime,
        retiring: bool,
        run_id: int | None,
        producer: str | None,
    ) -> None:
        """Record the edges one statement (at event time ``at``) names; ``retiring``: it is a complete declaration."""
        if rows or retiring:
            self._ops.append(_Statement((job_id, target_dataset_id), list(rows), at, retiring, run_id, producer))

    def flush(self, session: Session, writes: WriteSet | None = None) -> int:
        """Replay the statements over the current rows and write the edges that changed (as part of ``writes``, or
        now), and write blind the statements of pairs marked :meth:`locked`; returns how many edges were written
        (for those, every edge their statement names)."""
        if not self._ops:
            return 0
        ops, self._ops = self._ops, []
        own = writes is None
        writes = WriteSet() if writes is None else writes
        written = 0
        blind: list[_Statement] = []
        replayed: list[_Statement] = []
        stated = Counter(op.group for op in ops)
        for op in ops:
            (blind if op.group in self._locked and stated[op.group] == 1 else replayed).append(op)
        if blind:
            _write_blind(writes, blind)
            written = sum(len(op.rows) for op in blind)
        if replayed:
            if session.get_bind().dialect.name == "postgresql":
                lock_pairs(session, [op.group for op in replayed if op.group not in self._held])
            written += _replay(session, writes, replayed)
        if own:
            writes.execute(session)
        return written


# The transaction-scoped advisory lock of a (job, target dataset) pair's column edges, by its ids (SQL, PostgreSQL).
PAIR_LOCK_KEY = "hashtextextended('lineage_column_edges:' || {job_id} || ':' || {dataset_id}, 0)"

_LOCK_PAIRS = text(
    "SELECT count(pg_advisory_xact_lock(key)) FROM (SELECT DISTINCT "
    + PAIR_LOCK_KEY.format(job_id="p.job_id", dataset_id="p.dataset_id")
    + " AS key FROM json_to_recordset(CAST(:pairs AS json)) AS p(job_id bigint, dataset_id bigint) ORDER BY 1) k"
)


def lock_pairs(session: Session, pairs: Sequence[tuple[int, int]]) -> None:
    """PostgreSQL: take the advisory locks of these (job, target dataset) pairs, in key order, in a statement of
    their own, so that the pairs' edges read afterwards are what the last writer of each committed. Every writer of
    a pair's edges holds its lock: the ingestion's read statement takes those of the pairs an event's
    ``columnLineage`` names, and this those of pairs whose lineage comes from elsewhere (a job's ``sql`` facet)."""
    if pairs:
        rows = [{"job_id": job_id, "dataset_id": dataset_id} for job_id, dataset_id in dict.fromkeys(pairs)]
        execute_on_driver(session, _LOCK_PAIRS, {"pairs": orjson.dumps(rows).decode()})


def _replay(session: Session, writes: WriteSet, ops: Sequence[_Statement]) -> int:
    """Read the pairs' edges and confirmations (locked), apply the statements in order, add the changes to
    ``writes``; how many edges change."""
    table = _table(ColumnEdge)
    groups = list(dict.fromkeys(op.group for op in ops))
    loaded: dict[tuple[Any, ...], dict[str, Any]] = {}
    members: dict[tuple[int, int], list[tuple[Any, ...]]] = {group: [] for group in groups}
    confirmed: dict[tuple[int, int], Confirmation] = {}
    connection = session.connection()
    for start in range(0, len(groups), CHUNK):
        chunk = groups[start : start + CHUNK]
        statement = (
            select(*(table.c[c] for c in _COLUMN_EDGE_COLUMNS))
            .where(tuple_(table.c.job_id, table.c.target_dataset_id).in_(chunk))
            .order_by(table.c.id)
            .with_for_update()
        )
        for found in connection.execute(statement):
            values = dict(zip(_COLUMN_EDGE_COLUMNS, found, strict=True))
            key = _edge_key(values)
            loaded[key] = values
            members[(values["job_id"], values["target_dataset_id"])].append(key)
        pairs = _table(ColumnConfirmation)
        statement = (
            select(
                pairs.c.job_id, pairs.c.target_dataset_id, pairs.c.confirmed_at, pairs.c.last_run_id, pairs.c.producer
            )
            .where(tuple_(pairs.c.job_id, pairs.c.target_dataset_id).in_(chunk))
            .with_for_update()
        )
        for job_id, dataset_id, *confirmation in connection.execute(statement):
            confirmed[(job_id, dataset_id)] = confirmation
    before = {group: list(confirmation) for group, confirmation in confirmed.items()}
    # Every edge as it reads (its pair's confirmation applied), then the statements in order.
    state = {
        key: _as_read(values, confirmed.get((values["job_id"], values["target_dataset_id"])))
        for key, values in loaded.items()
    }
    for op in ops:
        current = confirmed.get(op.group)
        for row in op.rows:
            # Older than the pair's newest complete declaration, which did not name it: not live after it.
            late = current[0] if current is not None and row["last_seen"] < current[0] else None
            key = _edge_key(row)
            edge = state.get(key)
            if edge is None:
                state[key] = {**row, "retired_at": late}
                members[op.group].append(key)
                continue
            edge["first_seen"] = min(edge["first_seen"], row["first_seen"])
            retired = edge["retired_at"]
            if retired is not None and not row["last_seen"] < retired:
                edge["retired_at"] = late
            if row["last_seen"] >= edge["last_seen"]:
                edge["last_seen"] = row["last_seen"]
                for column in ("last_run_id", "producer", *COLUMN_EDGE_NEWEST):
                    edge[column] = row[column]
        if op.retiring:
            for key in members[op.group]:
                edge = state[key]
                if edge["origin"] == "manual":
                    continue  # a declaration by hand stands until it is withdrawn by hand
                if edge["retired_at"] is None and edge["last_seen"] < op.at:
                    edge["retired_at"] = op.at
            if current is None or op.at >= current[0]:
                confirmed[op.group] = [op.at, op.run_id, op.producer]
    changed = []
    for key, edge in state.items():
        stored = loaded.get(key)
        if stored == edge:
            continue
        pair = confirmed.get((edge["job_id"], edge["target_dataset_id"]))
        if (
            stored is not None
            and pair is not None
            and _reads_through_confirmation(edge)
            and {**stored, "last_seen": pair[0], "last_run_id": pair[1], "producer": pair[2]} == edge
        ):
            continue  # its stored row reads exactly this through the confirmation
        changed.append(edge)
    writes.upsert(ColumnEdge, changed, COLUMN_EDGE_KEYS, COLUMN_EDGE_NEWEST, replace_retired=True, merge=False)
    writes.confirm([_confirmation_row(group, c) for group, c in confirmed.items() if before.get(group) != c])
    return len(changed)


def _reads_through_confirmation(edge: dict[str, Any]) -> bool:
    """Whether an edge reads its pair's confirmation when that is newer than its own last seen: a live edge not
    declared by hand (as :func:`headwater.lineage.models.confirmed_provenance` says in SQL)."""
    return edge["retired_at"] is None and edge["origin"] != "manual"


def _as_read(values: dict[str, Any], confirmation: Confirmation | None) -> dict[str, Any]:
    """An edge row as it reads: its pair's confirmation's last seen, run and producer when newer."""
    edge = dict(values)
    if confirmation is not None and _reads_through_confirmation(edge) and confirmation[0] > edge["last_seen"]:
        edge["last_seen"], edge["last_run_id"], edge["producer"] = confirmation
    return edge


def _confirmation_row(group: tuple[int, int], confirmation: Confirmation) -> dict[str, Any]:
    at, run_id, producer = confirmation
    return {
        "job_id": group[0],
        "target_dataset_id": group[1],
        "confirmed_at": at,
        "last_run_id": run_id,
        "producer": producer,
    }


def _write_blind(writes: WriteSet, ops: Sequence[_Statement]) -> None:
    """One statement per (job, target dataset) pair, written without reading the pair's edges first (PostgreSQL).

    Every part reads the pair's confirmation as it is when the write statement starts, after the advisory lock, so
    it sees what the last transaction about the pair committed:

    - the edges a complete declaration names are upserted lazily: a live edge named as it is stays untouched;
    - the edges any other statement names are upserted (last seen and run written);
    - in both, a new edge older than the confirmation is retired at its time (:func:`_confirmed_rows_source`);
    - the pair's other live edges, last seen before a complete declaration, are retired, their last seen, run and
      producer taken from the confirmation they read through until now;
    - a complete declaration newer than the confirmation becomes it.

    The named edges and the retired ones are disjoint rows, so they can share a statement.
    """
    lazy: list[dict[str, Any]] = []
    eager: list[dict[str, Any]] = []
    retiring: list[dict[str, Any]] = []
    confirmations: list[dict[str, Any]] = []
    for op in ops:
        rows = [{**row, "retired_at": None} for row in op.rows]
        if op.retiring:
            lazy.extend(rows)
            job_id, target_dataset_id = op.group
            retiring.append({"job_id": job_id, "target_dataset_id": target_dataset_id, "retire_at": op.at})
            confirmations.append(_confirmation_row(op.group, [op.at, op.run_id, op.producer]))
        else:
            eager.extend(rows)
    writes.upsert(ColumnEdge, lazy, COLUMN_EDGE_KEYS, COLUMN_EDGE_NEWEST, part="named", confirmed=True, lazy=True)
    writes.upsert(ColumnEdge, eager, COLUMN_EDGE_KEYS, COLUMN_EDGE_NEWEST, part="eager", confirmed=True)
    if retiring:
        writes.retire_column_edges(retiring, [_edge_key(row) for row in lazy])
    writes.confirm(confirmations, part="blind")


# ------------------------------------------------------------------------------------- one write


@dataclass(frozen=True)
class _Upsert:
    model: type[Base]
    keys: tuple[str, ...]
    newest_wins: tuple[str, ...]
    replace_retired: bool
    columns: tuple[str, ...]
    confirmed: bool = False
    lazy: bool = False


@dataclass(frozen=True)
class _Update:
    model: type[Base]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class _Replace:
    """Rows written by their natural key: inserted, or on conflict the ``updates`` columns replaced."""

    model: type[Base]
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    updates: tuple[str, ...]
    # When set, an existing row is only replaced by a row whose value in this column is not older.
    newest: str | None = None


@cache
def _replace_statement(dialect: str, part: _Replace, param: str = "rows") -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE``: found through the unique index whatever the table's size.

    An ``UPDATE ... WHERE id = ...`` is planned too, and a prepared statement keeps the plan it got while the
    table was small (a sequential scan) until the table is next analysed; the conflict check always probes the
    index.
    """
    table = _table(part.model)
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
class _Retire:
    """Column edges of (job, target dataset) pairs that a statement retires: all but those it names."""

    model: type[Base] = ColumnEdge
    columns: tuple[str, ...] = ("job_id", "target_dataset_id", "retire_at")


@cache
def _retire_statement(param: str) -> Any:
    """PostgreSQL: retire, at each pair's time, its live edges last seen before it and not named.

    ``param`` is one JSON object: ``pairs`` (job, target dataset, time) and ``named`` (the edges the statements
    name, as [source field, target field, job, type, subtype]), anti-joined once rather than searched per edge.
    An edge's last seen, run and producer are read through its pair's confirmation, and written into the row as
    it is retired (the confirmation moves on to the retiring declaration).
    """
    table = _table(ColumnEdge)
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
    # As in _update_by_id: arrays the planner estimates at a few elements, so the pairs' edges are found through
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
def _update_by_id(model: type[Base], columns: tuple[str, ...], param: str | None) -> Any:
    """``UPDATE table SET columns WHERE id = ...``: from a JSON array on PostgreSQL (``param``), else executemany."""
    table = _table(model)
    if param is None:
        return update(table).where(table.c.id == bindparam("b_id")).values({c: bindparam(f"b_{c}") for c in columns})
    rows = text(f"json_populate_recordset(NULL::{table.name}, CAST(:{param} AS json)) AS r")
    source = select(*(literal_column(f"r.{c}").label(c) for c in ("id", *columns))).select_from(rows).subquery("src")
    # The ids again as an array: "= ANY(ARRAY(...))" is estimated at a few rows, so the rows are found through
    # the primary key rather than by hashing a sequential scan of the table (JSON rows are estimated at 100).
    ids = text(f"ARRAY(SELECT CAST(e->>'id' AS bigint) FROM json_array_elements(CAST(:{param} AS json)) AS e)")
    return (
        update(table)
        .values({c: source.c[c] for c in columns})
        .where(table.c.id == source.c.id, table.c.id == func.any(ids))
    )


_Part = _Upsert | _Update | _Replace | _Retire


@cache
def _combined(parts: tuple[_Part, ...]) -> Any:
    """One PostgreSQL statement running every write as a data-modifying CTE (``rows_<n>`` holds part n's rows)."""
    ctes = []
    for index, part in enumerate(parts):
        param = f"rows_{index}"
        statement: Any
        if isinstance(part, _Upsert):
            statement = _upsert_statement(
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
        elif isinstance(part, _Retire):
            statement = _retire_statement(param)
        elif isinstance(part, _Replace):
            statement = _replace_statement("postgresql", part, param)
        else:
            statement = _update_by_id(part.model, part.columns, param)
        ctes.append(statement.cte(f"write_{index}"))
    return select(literal_column("1")).add_cte(*ctes)


class WriteSet:
    """The writes of one ingestion call: upserts of edges and updates of rows by id, each table at most once.

    On PostgreSQL they go out as ONE statement, each write a data-modifying CTE: they touch different tables,
    so sharing one snapshot changes nothing, and one statement instead of six saves five round trips, each of
    which costs two context switches on a busy machine. Elsewhere (SQLite) each is its own statement.
    """

    def __init__(self) -> None:
        self._parts: list[tuple[_Part, list[dict[str, Any]]]] = []
        self._tables: set[tuple[str, str]] = set()

    def _add(self, part: _Part, rows: list[dict[str, Any]], role: str = "") -> None:
        name = _table(part.model).name
        if (name, role) in self._tables:
            # Two writes of one table in one statement could touch the same row twice: a programming error.
            # Writes of one table in different roles touch disjoint rows by construction (see _write_blind).
            raise ValueError(f"table {name} is already written by this write set")
        self._tables.add((name, role))
        self._parts.append((part, rows))

    def upsert(
        self,
        model: type[Base],
        rows: Sequence[dict[str, Any]],
        keys: Sequence[str],
        newest_wins: Sequence[str] = (),
        *,
        replace_retired: bool = False,
        merge: bool = True,
        part: str = "",
        confirmed: bool = False,
        lazy: bool = False,
    ) -> None:
        """Insert edges or merge their provenance into existing ones (``merge``: rows of one key merged first;
        ``part``: a role for a second write of the same table, over rows disjoint from the first's; ``confirmed``
        and ``lazy``: column edges read against their pair's confirmation, see :func:`_write_blind`)."""
        if not rows:
            return
        unique = merge_provenance_rows(rows, keys) if merge else list(rows)
        # Rows in key order: two transactions inserting the same new keys wait for each other in the same
        # order instead of deadlocking.
        unique.sort(key=itemgetter(*keys))
        shape = _Upsert(model, tuple(keys), tuple(newest_wins), replace_retired, tuple(unique[0]), confirmed, lazy)
        self._add(shape, unique, part)

    def retire_column_edges(self, pairs: Sequence[dict[str, Any]], named: Sequence[tuple[Any, ...]]) -> None:
        """PostgreSQL: retire the live column edges of (job, target dataset) ``pairs`` (``job_id``,
        ``target_dataset_id``, ``retire_at``) last seen before the pair's time, except the ``named`` ones (keys in
        :data:`COLUMN_EDGE_KEYS` order)."""
        if pairs:
            self._add(_Retire(), [{"pairs": list(pairs), "named": list(named)}], "retired")

    def replace(
        self,
        model: type[Base],
        rows: Sequence[dict[str, Any]],
        keys: Sequence[str],
        updates: Sequence[str],
        newest: str | None = None,
        part: str = "",
    ) -> None:
        """Write rows by their natural ``keys`` (a unique constraint): the ``updates`` columns replace those of the
        row with the same keys (only when its ``newest`` column is not newer, if given), or the row is inserted (so
        rows carry every column an insert needs)."""
        if rows:
            unique = sorted(rows, key=itemgetter(*keys))  # lock order, as in upsert
            self._add(_Replace(model, tuple(keys), tuple(unique[0]), tuple(updates), newest), unique, part)

    def confirm(self, rows: Sequence[dict[str, Any]], part: str = "") -> None:
        """Record complete declarations as their pairs' confirmations (:class:`ColumnConfirmation` rows), each
        replacing an older one only (``part`` as in :meth:`upsert`)."""
        self.replace(
            ColumnConfirmation,
            rows,
            ["job_id", "target_dataset_id"],
            ["confirmed_at", "last_run_id", "producer"],
            newest="confirmed_at",
            part=part,
        )

    def update(self, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
        """Set the columns of each row (a dict with ``id`` and the same other keys) on the row with that id."""
        if rows:
            self._add(_Update(model, tuple(c for c in rows[0] if c != "id")), list(rows))

    def execute(self, session: Session, *, commit: bool = False) -> None:
        """Run every write; the set is empty afterwards. ``commit`` (PostgreSQL): these are the transaction's last
        writes and the caller commits right after; the COMMIT may go with them (:func:`~headwater.db.execute_and_commit`),
        so nothing may run in the transaction afterwards."""
        parts, self._parts, self._tables = self._parts, [], set()
        if not parts:
            return
        if session.get_bind().dialect.name != "postgresql":
            for part, rows in parts:
                if isinstance(part, _Retire):
                    raise ValueError("column edges are retired blind only on PostgreSQL")
                if isinstance(part, _Upsert):
                    if part.confirmed:
                        raise ValueError("column edges are written blind only on PostgreSQL")
                    _write_upserts(session, part.model, rows, part.keys, part.newest_wins, part.replace_retired)
                elif isinstance(part, _Replace):
                    session.connection().execute(_replace_statement("sqlite", part), rows)
                else:
                    bound = [{f"b_{k}": v for k, v in row.items()} for row in rows]
                    session.connection().execute(_update_by_id(part.model, part.columns, None), bound)
            return
        shapes = tuple(part for part, _ in parts)
        params = {
            f"rows_{i}": orjson.dumps(rows[0]).decode()
            if isinstance(part, _Retire)
            else json_rows(rows, _columns_of(part))
            for i, (part, rows) in enumerate(parts)
        }
        (execute_and_commit if commit else execute_on_driver)(session, _combined(shapes), params)


def _columns_of(part: _Upsert | _Update | _Replace) -> tuple[str, ...]:
    return ("id", *part.columns) if isinstance(part, _Update) else part.columns
