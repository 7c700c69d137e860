"""The resolve stage of lineage ingestion: the identities an event names, found in the catalog or created.

Jobs are ``(namespace, name)`` and runs their OpenLineage run id: a batch reads every job and run it names with
one query each (creating the missing ones), applies its events to these in-memory rows in arrival order, and the
plan writes back only the rows that changed. Runs are locked (``FOR UPDATE`` on PostgreSQL) so two requests
carrying events of the same run serialise instead of overwriting each other's state.

A dataset named in an event is the one :mod:`headwater.catalog.identity` resolves its name or a ``symlinks``
identifier to (own name, alias, merge), as every other lookup does. An unknown one is created through the catalog service in the
lineage-owned ``manual`` source (so it gets schema versions and change events like any other dataset),
under its first symlink when it has one: a Spark file path whose symlink is a Hive table becomes the
table. Only datasets of the lineage source take their schema from events; a federated dataset's schema
belongs to its source, and a column the source does not know is reported, not invented (a source that
federates a lineage dataset later adopts it: :func:`~headwater.catalog.service.apply_snapshot`).

What an event's schema facet makes of a lineage dataset's columns is :mod:`.columns`; the resolver applies it
only when the event is not older than the newest statement of the schema, a repetition included
(``Dataset.schema_stated_at``, moved forward with the batch's write: :attr:`DatasetResolver.stated`), so a late
event never rolls a schema back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, cast

from sqlalchemy import Table, func, select, tuple_, update
from sqlalchemy.orm import Session, selectinload

from headwater.catalog.bulk import create_datasets, validate_fields
from headwater.catalog.identity import resolve_id, resolve_ids
from headwater.catalog.models import Dataset, DatasetKind, Field, Source, SourceKind
from headwater.catalog.schemas import SourceCreate
from headwater.catalog.service import DatasetSnapshot, apply_snapshot
from headwater.catalog.sources import create_source
from headwater.db import utcnow
from headwater.lineage.ingest.columns import (
    WantedDataset,
    facts_of,
    flat_of,
    merged_fields,
    stated_fields,
    wanted_from,
)
from headwater.lineage.ingest.statements import CHUNK, insert_statement
from headwater.lineage.ingest.write import insert_ignore
from headwater.lineage.models import DatasetAlias, LineageJob, LineageRun

__all__ = [
    "JOB_COLUMNS",
    "LINEAGE_SOURCE",
    "RUN_COLUMNS",
    "DatasetResolver",
    "JobRow",
    "ResolvedDataset",
    "RunRow",
    "WantedDataset",
    "load_jobs",
    "load_runs",
    "wanted_from",
]

LINEAGE_SOURCE = "lineage"
LINEAGE_NAMESPACE = "lineage"


# ------------------------------------------------------------------------------------- jobs and runs

_JOBS = cast(Table, LineageJob.__table__)
_RUNS = cast(Table, LineageRun.__table__)


@dataclass
class JobRow:
    """A ``lineage_jobs`` row as ingestion sees it."""

    id: int
    namespace: str
    name: str
    parent_job_id: int | None = None
    job_type: str | None = None
    description: str | None = None
    sql: str | None = None
    facets: dict[str, Any] = field(default_factory=dict)
    described_at: dt.datetime | None = None
    dirty: bool = False


@dataclass
class RunRow:
    """A ``lineage_runs`` row as ingestion sees it."""

    id: int
    run_uuid: str
    job_id: int
    parent_run_id: int | None = None
    state: str | None = None
    state_time: dt.datetime | None = None
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    facets: dict[str, Any] = field(default_factory=dict)
    event_count: int = 0
    dirty: bool = False
    # Created (PostgreSQL, by the read statement) with the batch's one event of it already applied.
    fresh: bool = False


# The columns ingestion reads and writes.
JOB_COLUMNS = [f.name for f in dataclass_fields(JobRow) if f.name != "dirty"]
RUN_COLUMNS = [f.name for f in dataclass_fields(RunRow) if f.name not in ("dirty", "fresh")]


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _select_jobs(session: Session, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], JobRow]:
    found: dict[tuple[str, str], JobRow] = {}
    conn = session.connection()
    for chunk in _chunks(keys):
        statement = select(*(_JOBS.c[c] for c in JOB_COLUMNS)).where(
            tuple_(_JOBS.c.namespace, _JOBS.c.name).in_(list(chunk))
        )
        for row in conn.execute(statement):
            job = JobRow(**row._asdict())
            job.facets = job.facets or {}
            found[(job.namespace, job.name)] = job
    return found


def load_jobs(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], JobRow]:
    """The jobs named ``(namespace, name)``, creating the missing ones."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    jobs = _select_jobs(session, wanted)
    missing = [key for key in wanted if key not in jobs]
    if missing:
        now = utcnow()
        rows = [{"namespace": ns, "name": n, "facets": {}, "created_at": now, "updated_at": now} for ns, n in missing]
        statement = insert_statement(session, LineageJob).on_conflict_do_nothing(index_elements=["namespace", "name"])
        session.connection().execute(statement, rows)
        jobs.update(_select_jobs(session, missing))
    return jobs


def load_runs(session: Session, wanted: dict[str, int]) -> dict[str, RunRow]:
    """The runs with these ids (run uuid -> the job to file a new one under), creating and locking them."""
    if not wanted:
        return {}
    conn = session.connection()
    now = utcnow()
    rows = [
        {"run_uuid": uuid, "job_id": job_id, "facets": {}, "event_count": 0, "created_at": now, "updated_at": now}
        for uuid, job_id in wanted.items()
    ]
    insert = insert_statement(session, LineageRun).on_conflict_do_nothing(index_elements=["run_uuid"])
    runs: dict[str, RunRow] = {}
    for row in conn.execute(insert.returning(_RUNS.c.id, _RUNS.c.run_uuid), rows):
        runs[row.run_uuid] = RunRow(id=row.id, run_uuid=row.run_uuid, job_id=wanted[row.run_uuid])
    existing = [uuid for uuid in wanted if uuid not in runs]
    for chunk in _chunks(existing):
        statement = (
            select(*(_RUNS.c[c] for c in RUN_COLUMNS))
            .where(_RUNS.c.run_uuid.in_(list(chunk)))
            .order_by(_RUNS.c.id)
            .with_for_update()
        )
        for row in conn.execute(statement):
            run = RunRow(**row._asdict())
            run.facets = run.facets or {}
            runs[run.run_uuid] = run
    return runs


# ------------------------------------------------------------------------------------- datasets


@dataclass
class ResolvedDataset:
    """A catalog dataset and the ids of its fields by path."""

    id: int
    namespace: str
    name: str
    lineage_owned: bool
    fields: dict[str, int]
    types: dict[str, str] = field(default_factory=dict)
    deleted: bool = False


def _kind_of(namespace: str) -> DatasetKind:
    return DatasetKind.TOPIC if namespace.startswith("kafka") else DatasetKind.TABLE


class DatasetResolver:
    """Resolves event datasets to catalog datasets; remembers answers for one ingestion call."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._by_identity: dict[tuple[str, str], ResolvedDataset] = {}
        self._source: Source | None = None
        self._source_checked = False
        # Identities known (from prefetch) to name no catalog dataset and no alias.
        self._absent: set[tuple[str, str]] = set()
        # Lineage datasets by id -> the newest event time that stated their schema in this batch, changed or not.
        self.stated: dict[int, dt.datetime] = {}
        # Datasets this batch recorded a new name of: their search documents and cached answers list their names.
        self.named: set[int] = set()
        self.warnings: list[str] = []

    def lineage_source(self) -> Source:
        """The manual source that datasets discovered by lineage are created in."""
        if self._source is None:
            source = self.session.scalar(select(Source).where(Source.name == LINEAGE_SOURCE))
            if source is None:
                self._lock("source")  # the first requests of a new catalog race to create it
                source = self.session.scalar(select(Source).where(Source.name == LINEAGE_SOURCE))
            if source is None:
                source = create_source(
                    self.session,
                    data=SourceCreate(
                        name=LINEAGE_SOURCE,
                        kind=SourceKind.MANUAL,
                        namespace=LINEAGE_NAMESPACE,
                        description="Datasets discovered by lineage: named in OpenLineage events or SQL but "
                        "not (yet) known to any federated source.",
                    ),
                )
            self._source = source
        return self._source

    def _lock(self, name: str) -> None:
        """Hold a PostgreSQL advisory lock named ``name`` until the transaction ends (SQLite: writers are
        serialised already by BEGIN IMMEDIATE)."""
        if self.session.get_bind().dialect.name == "postgresql":
            key = int.from_bytes(hashlib.blake2b(f"headwater.lineage\0{name}".encode(), digest_size=8).digest(), "big")
            self.session.execute(select(func.pg_advisory_xact_lock(key - 2**63)))

    def _existing_source(self) -> Source | None:
        if self._source is None and not self._source_checked:
            self._source_checked = True
            self._source = self.session.scalar(select(Source).where(Source.name == LINEAGE_SOURCE))
        return self._source

    def prefetch(self, identities: Iterable[tuple[str, str]]) -> None:
        """Read the datasets (by identity or alias) and their fields for many identities at once."""
        wanted = [i for i in dict.fromkeys(identities) if i not in self._by_identity and i not in self._absent]
        if not wanted:
            return
        # The source's name rather than its id (no query for the lineage source), and the fields joined in.
        owned = select(Source.name).where(Source.id == Dataset.source_id).scalar_subquery() == LINEAGE_SOURCE
        columns = (Dataset.id, owned, Dataset.namespace, Dataset.name, Dataset.deleted_at)
        with_fields = (*columns, Field.path, Field.id, Field.type)
        fields: dict[int, dict[str, int]] = {}
        types: dict[int, dict[str, str]] = {}

        def collect(dataset_id: int, row: Sequence[Any]) -> None:
            paths, kinds = fields.setdefault(dataset_id, {}), types.setdefault(dataset_id, {})
            if row[5] is not None:
                paths[row[5]] = row[6]
                kinds[row[5]] = row[7]

        # Which dataset each name is (headwater.catalog.identity's one rule), then those datasets with their
        # fields joined in, one query per chunk of ids.
        resolved = resolve_ids(self.session, wanted)
        rows_by_id: dict[int, tuple[Any, ...]] = {}
        ids = sorted(set(resolved.values()))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            by_id = select(*with_fields).outerjoin(Field, Field.dataset_id == Dataset.id).where(Dataset.id.in_(chunk))
            for row in self.session.execute(by_id):
                collect(row[0], row)
                rows_by_id[row[0]] = tuple(row[:5])
        found = {name: rows_by_id[dataset_id] for name, dataset_id in resolved.items() if dataset_id in rows_by_id}
        self.accept(
            wanted,
            {i: (row[0], bool(row[1]), row[2], row[3], row[4] is not None) for i, row in found.items()},
            fields,
            types,
        )

    def accept(
        self,
        identities: Iterable[tuple[str, str]],
        found: dict[tuple[str, str], tuple[int, bool, str, str, bool]],
        fields: dict[int, dict[str, int]],
        types: dict[int, dict[str, str]],
    ) -> None:
        """Remember what a prefetch found for ``identities``: (id, lineage owned, namespace, name, deleted)
        by identity, field ids and types by dataset id; an identity not in ``found`` names nothing."""
        resolved: dict[int, ResolvedDataset] = {}
        for identity in dict.fromkeys(identities):
            if identity in self._by_identity:
                continue
            hit = found.get(identity)
            if hit is None:
                self._absent.add(identity)
                continue
            dataset = resolved.get(hit[0])
            if dataset is None:
                dataset = resolved[hit[0]] = ResolvedDataset(
                    hit[0], hit[2], hit[3], hit[1], fields[hit[0]], types[hit[0]], hit[4]
                )
            # Aliases already recorded need no new row: remember them as seen.
            self._by_identity[identity] = dataset

    def _find(self, namespace: str, name: str) -> ResolvedDataset | None:
        """A catalog dataset by identity or alias, with its fields' ids and types (no ORM objects loaded)."""
        if (namespace, name) in self._absent:
            return None
        dataset_id = resolve_id(self.session, namespace, name)
        row = (
            None
            if dataset_id is None
            else self.session.execute(
                select(Dataset.id, Dataset.source_id, Dataset.namespace, Dataset.name, Dataset.deleted_at).where(
                    Dataset.id == dataset_id
                )
            ).first()
        )
        if row is None:
            return None
        owner = self._existing_source()
        return self._with_fields(row[0], row[2], row[3], owner is not None and row[1] == owner.id, row[4] is not None)

    def _with_fields(
        self, dataset_id: int, namespace: str, name: str, lineage_owned: bool, deleted: bool
    ) -> ResolvedDataset:
        fields: dict[str, int] = {}
        types: dict[str, str] = {}
        for path, field_id, type_ in self.session.execute(
            select(Field.path, Field.id, Field.type).where(Field.dataset_id == dataset_id)
        ):
            fields[path] = field_id
            types[path] = type_
        return ResolvedDataset(dataset_id, namespace, name, lineage_owned, fields, types, deleted)

    def lookup(self, namespace: str, name: str) -> ResolvedDataset | None:
        """A catalog dataset by identity or alias, without creating anything."""
        cached = self._by_identity.get((namespace, name))
        if cached is not None:
            return cached
        found = self._find(namespace, name)
        if found is not None:
            self._alias(found, [(namespace, name)])
        return found

    def resolve(self, wanted: WantedDataset) -> ResolvedDataset:
        """The catalog dataset ``wanted`` names (created when unknown), with the columns it needs."""
        identities = [(wanted.namespace, wanted.name), *wanted.symlinks]
        resolved = next((self._by_identity[i] for i in identities if i in self._by_identity), None)
        if resolved is None:
            for namespace, name in identities:
                resolved = self._find(namespace, name)
                if resolved is not None:
                    break
        if resolved is None:
            namespace, name = wanted.symlinks[0] if wanted.symlinks else (wanted.namespace, wanted.name)
            # Two requests may meet the same unknown dataset at once: the second waits for the first to commit
            # and then finds its dataset instead of inserting a duplicate.
            self._lock(f"dataset\0{namespace}\0{name}")
            for identity in identities:
                self._absent.discard(identity)
                resolved = self._find(*identity)
                if resolved is not None:
                    break
        if resolved is None:
            fields = merged_fields([], wanted) if wanted.schema is None else stated_fields([], wanted)[0]
            snapshot = DatasetSnapshot(namespace=namespace, name=name, kind=_kind_of(namespace), fields=fields)
            validate_fields(snapshot.fields)
            # The catalog's bulk path: a handful of statements, where the ORM's apply_snapshot took about ten
            # round trips (the lock above already rules out a concurrent creation of the same dataset).
            created = create_datasets(self.session, source=self.lineage_source(), snapshots=[snapshot])[0]
            if wanted.schema is not None and wanted.at is not None:
                self.session.execute(update(Dataset).where(Dataset.id == created.id).values(schema_stated_at=wanted.at))
            resolved = self._with_fields(created.id, created.namespace, created.name, True, False)
            self._absent.discard((created.namespace, created.name))
        elif self._needs_update(resolved, wanted):
            resolved = self._update(resolved, wanted)
        if resolved.lineage_owned and wanted.schema is not None and wanted.at is not None:
            # Restating the schema moves its mark too (written with the batch): a late event older than the
            # restatement must not undo it.
            self.stated[resolved.id] = max(wanted.at, self.stated.get(resolved.id, wanted.at))
        self._alias(resolved, identities)
        missing = [path for path in wanted.columns if path not in resolved.fields]
        if missing:
            self.warnings.append(
                f"dataset {resolved.namespace}/{resolved.name} "
                + (
                    "has no column(s) "
                    if resolved.lineage_owned
                    else "belongs to a federated source that does not know column(s) "
                )
                + f"{', '.join(missing[:10])}; lineage through them was not recorded"
            )
        return resolved

    def _update(self, resolved: ResolvedDataset, wanted: WantedDataset) -> ResolvedDataset:
        """Apply what ``wanted`` says to a lineage dataset's schema (or restore it); the dataset as it is then."""
        # Locked, then read afresh: a concurrent request adding other columns is waited for and kept.
        dataset = self.session.scalar(
            select(Dataset)
            .options(selectinload(Dataset.fields))
            .where(Dataset.id == resolved.id)
            .with_for_update(of=Dataset)
            .execution_options(populate_existing=True)
        )
        assert dataset is not None
        if dataset.source.name != LINEAGE_SOURCE:  # adopted by a federated source meanwhile: its schema wins
            return self._with_fields(dataset.id, dataset.namespace, dataset.name, False, dataset.deleted_at is not None)
        current = [flat_of(row) for row in dataset.fields]
        stated = max(
            (t for t in (dataset.schema_stated_at, self.stated.get(dataset.id)) if t is not None), default=None
        )
        renamed: dict[str, str] = {}
        if wanted.at is not None and stated is not None and wanted.at < stated:
            fields = current  # older than the schema last stated: it may restore the dataset, nothing more
        elif wanted.schema is None:
            fields = merged_fields(current, wanted)
        else:
            fields, renamed = stated_fields(current, wanted)
            if wanted.at is not None:
                dataset.schema_stated_at = wanted.at
        if fields != current or dataset.deleted_at is not None:
            snapshot = DatasetSnapshot(
                namespace=dataset.namespace,
                name=dataset.name,
                kind=DatasetKind(dataset.kind),
                fields=fields,
                renamed=renamed,
            )
            apply_snapshot(self.session, source=self.lineage_source(), snapshot=snapshot)
        self.session.flush()
        return self._with_fields(dataset.id, dataset.namespace, dataset.name, True, False)

    def _needs_update(self, resolved: ResolvedDataset, wanted: WantedDataset) -> bool:
        if not resolved.lineage_owned:
            return False
        if resolved.deleted:
            return True
        if wanted.schema is None:
            return not resolved.fields.keys() >= wanted.column_set
        # A typed column the catalog lacks or types differently, or a set of columns that differs (set operations:
        # this runs for every dataset of every event).
        typed, _untyped, paths = wanted.schema_facts or facts_of(wanted.schema)
        return not (typed <= resolved.types.items() and paths == resolved.fields.keys())

    def _alias(self, resolved: ResolvedDataset, identities: list[tuple[str, str]]) -> None:
        """Remember every identity the dataset went by; record the non-canonical ones as aliases."""
        for identity in identities:
            previous = self._by_identity.get(identity)
            self._by_identity[identity] = resolved
            if previous is not None or identity == (resolved.namespace, resolved.name):
                continue
            canonical = (
                None
                if identity in self._absent
                else self.session.scalar(
                    select(Dataset.id).where(Dataset.namespace == identity[0], Dataset.name == identity[1])
                )
            )
            if canonical is None:
                added = insert_ignore(
                    self.session,
                    DatasetAlias,
                    [{"namespace": identity[0], "name": identity[1], "dataset_id": resolved.id}],
                    ["namespace", "name"],
                )
                if added:
                    self.named.add(resolved.id)
