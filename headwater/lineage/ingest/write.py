"""The write stage of lineage ingestion: what a batch changed, written in one go.

:class:`WriteSet` collects the batch's writes (jobs and runs replaced by their natural keys, edges upserted with
their provenance merged, column edges retired, confirmations moved on), each table at most once, and hands them
over as ONE statement on PostgreSQL (each write a data-modifying CTE), for the edge to run last
(:meth:`WriteSet.final`); on SQLite each runs as its own statement. Provenance merges so that arrival order never
matters: ``first_seen`` keeps the earliest event time, ``last_seen`` the latest, and the run, producer and
retirement follow whichever event is newest. The statements themselves are in :mod:`.statements`.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy.orm import Session

from headwater.db import Base
from headwater.lineage.ingest.statements import (
    CHUNK,
    Part,
    Replace,
    Retire,
    Update,
    Upsert,
    columns_of,
    combined,
    ignore_statement,
    json_rows,
    replace_statement,
    table_of,
    update_by_id,
    upsert_statement,
)
from headwater.lineage.models import ColumnConfirmation
from headwater.transactions import FinalStatement

__all__ = ["WriteSet", "insert_ignore", "merge_provenance_rows", "upsert_edges"]


def insert_ignore(session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> int:
    """Insert rows, silently skipping those whose ``keys`` already exist; how many were inserted."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    # RETURNING, not rowcount: in psycopg's pipeline mode a rowcount is not known yet.
    statement = ignore_statement(dialect, model, tuple(keys))
    returning = statement.returning(*table_of(model).primary_key.columns)
    return len(session.execute(returning, list(rows)).all())


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
    statement = upsert_statement(dialect, model, tuple(keys), tuple(newest_wins), replace_retired, columns)
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


class WriteSet:
    """The writes of one ingestion call: upserts of edges and updates of rows by id, each table at most once.

    On PostgreSQL they go out as ONE statement, each write a data-modifying CTE: they touch different tables,
    so sharing one snapshot changes nothing, and one statement instead of six saves five round trips, each of
    which costs two context switches on a busy machine. Elsewhere (SQLite) each is its own statement.
    """

    def __init__(self) -> None:
        self._parts: list[tuple[Part, list[dict[str, Any]]]] = []
        self._tables: set[tuple[str, str]] = set()

    def _add(self, part: Part, rows: list[dict[str, Any]], role: str = "") -> None:
        name = table_of(part.model).name
        if (name, role) in self._tables:
            # Two writes of one table in one statement could touch the same row twice: a programming error.
            # Writes of one table in different roles touch disjoint rows by construction (see confirm._write_blind).
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
        and ``lazy``: column edges read against their pair's confirmation, see :mod:`.confirm`)."""
        if not rows:
            return
        unique = merge_provenance_rows(rows, keys) if merge else list(rows)
        # Rows in key order: two transactions inserting the same new keys wait for each other in the same
        # order instead of deadlocking.
        unique.sort(key=itemgetter(*keys))
        shape = Upsert(model, tuple(keys), tuple(newest_wins), replace_retired, tuple(unique[0]), confirmed, lazy)
        self._add(shape, unique, part)

    def retire_column_edges(self, pairs: Sequence[dict[str, Any]], named: Sequence[tuple[Any, ...]]) -> None:
        """PostgreSQL: retire the live column edges of (job, target dataset) ``pairs`` (``job_id``,
        ``target_dataset_id``, ``retire_at``) last seen before the pair's time, except the ``named`` ones (keys in
        :data:`COLUMN_EDGE_KEYS` order)."""
        if pairs:
            self._add(Retire(), [{"pairs": list(pairs), "named": list(named)}], "retired")

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
            self._add(Replace(model, tuple(keys), tuple(unique[0]), tuple(updates), newest), unique, part)

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

    def update(self, model: type[Base], rows: Sequence[dict[str, Any]], newest: str | None = None) -> None:
        """Set the columns of each row (a dict with ``id`` and the same other keys) on the row with that id (with
        ``newest``, only on rows whose ``newest`` column is NULL or older than the row's)."""
        if rows:
            self._add(Update(model, tuple(c for c in rows[0] if c != "id"), newest), list(rows))

    def execute(self, session: Session) -> None:
        """Run every write now, in the open transaction; the set is empty afterwards."""
        last = self.final(session)
        if last is not None:
            last.run(session)

    def final(self, session: Session) -> FinalStatement | None:
        """The writes as the transaction's last statement, left for the edge to run (PostgreSQL: see the package
        doc); elsewhere (SQLite) they run now, one statement each, and None is returned. The set is empty
        afterwards."""
        parts, self._parts, self._tables = self._parts, [], set()
        if not parts:
            return None
        if session.get_bind().dialect.name != "postgresql":
            for part, rows in parts:
                if isinstance(part, Retire):
                    raise ValueError("column edges are retired blind only on PostgreSQL")
                if isinstance(part, Upsert):
                    if part.confirmed:
                        raise ValueError("column edges are written blind only on PostgreSQL")
                    _write_upserts(session, part.model, rows, part.keys, part.newest_wins, part.replace_retired)
                elif isinstance(part, Replace):
                    session.connection().execute(replace_statement("sqlite", part), rows)
                else:
                    bound = [{f"b_{k}": v for k, v in row.items()} for row in rows]
                    session.connection().execute(update_by_id(part.model, part.columns, None, part.newest), bound)
            return None
        shapes = tuple(part for part, _ in parts)
        params = {
            f"rows_{i}": orjson.dumps(rows[0]).decode()
            if isinstance(part, Retire)
            else json_rows(rows, columns_of(part))
            for i, (part, rows) in enumerate(parts)
        }
        return FinalStatement(combined(shapes), params)
