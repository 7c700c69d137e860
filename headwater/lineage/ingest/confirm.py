"""The confirm stage of lineage ingestion: column edges replayed against their pairs' confirmations.

Column edges go through :class:`ColumnEdgeBuffer`: a batch's statements about them (edges named, edges retired
because a newer declaration no longer names them) are replayed in memory, in order, over the current rows of the
(job, target dataset) pairs involved and their confirmations, and only the rows that end up different are
written. On PostgreSQL a pair the request states once, under its advisory lock, is written blind instead: its
named edges upserted, its other edges retired and its confirmation moved on, in the same statement
(:func:`_write_blind`). A live edge its pair's newest complete declaration named unchanged is not rewritten: it
reads its last seen, run and producer through the pair's confirmation. Every writer of a pair's edges holds the
pair's advisory lock (:data:`~headwater.lineage.ingest.statements.PAIR_LOCK_KEY`): the read statement
(:mod:`.snapshot`) takes those of the pairs an event's ``columnLineage`` names, :func:`lock_pairs` the others.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    select,
    text,
    tuple_,
)
from sqlalchemy.orm import Session

from headwater.db import execute_on_driver
from headwater.lineage.ingest.statements import (
    CHUNK,
    COLUMN_EDGE_COLUMNS,
    COLUMN_EDGE_KEYS,
    COLUMN_EDGE_NEWEST,
    PAIR_LOCK_KEY,
    table_of,
)
from headwater.lineage.ingest.write import WriteSet
from headwater.lineage.models import ColumnConfirmation, ColumnEdge

__all__ = ["ColumnEdgeBuffer", "lock_pairs"]

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
        (``groups``, see :mod:`.snapshot`): their one statement is written without reading their
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
    table = table_of(ColumnEdge)
    groups = list(dict.fromkeys(op.group for op in ops))
    loaded: dict[tuple[Any, ...], dict[str, Any]] = {}
    members: dict[tuple[int, int], list[tuple[Any, ...]]] = {group: [] for group in groups}
    confirmed: dict[tuple[int, int], Confirmation] = {}
    connection = session.connection()
    for start in range(0, len(groups), CHUNK):
        chunk = groups[start : start + CHUNK]
        statement = (
            select(*(table.c[c] for c in COLUMN_EDGE_COLUMNS))
            .where(tuple_(table.c.job_id, table.c.target_dataset_id).in_(chunk))
            .order_by(table.c.id)
            .with_for_update()
        )
        for found in connection.execute(statement):
            values = dict(zip(COLUMN_EDGE_COLUMNS, found, strict=True))
            key = _edge_key(values)
            loaded[key] = values
            members[(values["job_id"], values["target_dataset_id"])].append(key)
        pairs = table_of(ColumnConfirmation)
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
