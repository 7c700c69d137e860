"""Pydantic models of the lineage API: OpenLineage 2.x events as received, the facets Headwater reads,
and the answers of the lineage queries.

Events are read leniently where the spec is open (unknown facets and extra keys are kept in the event
log untouched) and strictly where Headwater relies on a shape (run ids, event times, the facets it
applies), so a broken event is refused with a message naming the offending field.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from headwater.errors import InvalidInput
from headwater.inputs import JsonObject

__all__ = [
    "ColumnLineageFacet",
    "DatasetEventIn",
    "DatasetIn",
    "ImpactOut",
    "InvalidEvent",
    "JobEventIn",
    "JobIn",
    "LineageEventIn",
    "ManualEdgeIn",
    "ManualEdgeOut",
    "RunEventIn",
    "SqlLineageIn",
    "parse_event",
    "parse_time",
]

M = TypeVar("M", bound=BaseModel)

OLName = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
OLNamespace = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class _Open(BaseModel):
    """An OpenLineage object: extra keys are allowed (the spec lets producers add them)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# ------------------------------------------------------------------------------------------ facets


class Transformation(_Open):
    """How an input field becomes an output field (OpenLineage column lineage 1.2)."""

    type: Literal["DIRECT", "INDIRECT"]
    subtype: Annotated[str, StringConstraints(max_length=32)] | None = None
    description: str | None = None
    masking: bool | None = None


class InputField(_Open):
    """One input column an output column (or the whole output dataset) depends on."""

    namespace: OLNamespace
    name: OLName
    field: OLName
    transformations: list[Transformation] = Field(default_factory=list)


class OutputFieldLineage(_Open):
    """The inputs of one output column; ``transformationType`` is the deprecated 1.0 form."""

    inputFields: list[InputField] = Field(default_factory=list)
    transformationDescription: str | None = None
    transformationType: str | None = None


class ColumnLineageFacet(_Open):
    """The ``columnLineage`` dataset facet."""

    fields: dict[str, OutputFieldLineage] = Field(default_factory=dict)
    dataset: list[InputField] = Field(default_factory=list)


class SchemaField(_Open):
    """One field of the ``schema`` facet; nested struct members in ``fields``."""

    name: OLName
    type: str | None = None
    description: str | None = None
    fields: list[SchemaField] = Field(default_factory=list)


class SchemaFacet(_Open):
    """The ``schema`` dataset facet."""

    fields: list[SchemaField] = Field(default_factory=list)


class SymlinkIdentifier(_Open):
    """Another name of the same dataset (the table behind a file path)."""

    namespace: OLNamespace
    name: OLName
    type: str | None = None


class SymlinksFacet(_Open):
    """The ``symlinks`` dataset facet."""

    identifiers: list[SymlinkIdentifier] = Field(default_factory=list)


class _RunRef(_Open):
    runId: uuid.UUID


class _JobRef(_Open):
    namespace: OLNamespace
    name: OLName


class ParentRunFacet(_Open):
    """The ``parent`` run facet: the run (and job) that spawned this one."""

    run: _RunRef
    job: _JobRef


class SqlJobFacet(_Open):
    """The ``sql`` job facet."""

    query: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)]
    dialect: str | None = None


# ------------------------------------------------------------------------------------------ events


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


# An object of facets; a null sent for it reads as none.
Facets = Annotated[JsonObject, BeforeValidator(_none_is_empty)]


class DatasetIn(_Open):
    """A dataset of an event, with its facets."""

    namespace: OLNamespace
    name: OLName
    facets: Facets = Field(default_factory=dict)
    inputFacets: Facets = Field(default_factory=dict)
    outputFacets: Facets = Field(default_factory=dict)


class JobIn(_Open):
    """The job of an event."""

    namespace: OLNamespace
    name: OLName
    facets: Facets = Field(default_factory=dict)


class RunIn(_Open):
    """The run of a RunEvent."""

    runId: uuid.UUID
    facets: Facets = Field(default_factory=dict)


class _EventBase(_Open):
    eventTime: dt.datetime
    producer: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    schemaURL: str | None = None

    # Set when eventTime came without a timezone offset and was read as UTC (as Marquez reads it).
    _assumed_utc: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _aware(self) -> _EventBase:
        if self.eventTime.tzinfo is None:
            self.eventTime = self.eventTime.replace(tzinfo=dt.UTC)
            self._assumed_utc = True
        else:
            self.eventTime = self.eventTime.astimezone(dt.UTC)
        return self

    def time_warnings(self) -> list[str]:
        """What reading this event's time assumed (none for a time with an offset)."""
        if not self._assumed_utc:
            return []
        shown = self.eventTime.replace(tzinfo=None).isoformat()
        return [f"eventTime {shown} has no timezone offset; it was read as UTC ({shown}Z)"]


def _no_nulls(value: Any) -> Any:
    return [] if value is None else value


class RunEventIn(_EventBase):
    """An OpenLineage RunEvent: a run of a job changed state or reported inputs and outputs."""

    eventType: Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"] | None = None
    run: RunIn
    job: JobIn
    inputs: list[DatasetIn] = Field(default_factory=list)
    outputs: list[DatasetIn] = Field(default_factory=list)

    _lists = field_validator("inputs", "outputs", mode="before")(_no_nulls)


class JobEventIn(_EventBase):
    """An OpenLineage JobEvent: a job's static declaration of its inputs and outputs."""

    job: JobIn
    inputs: list[DatasetIn] = Field(default_factory=list)
    outputs: list[DatasetIn] = Field(default_factory=list)

    _lists = field_validator("inputs", "outputs", mode="before")(_no_nulls)


class DatasetEventIn(_EventBase):
    """An OpenLineage DatasetEvent: metadata about one dataset, outside any run."""

    dataset: DatasetIn


LineageEventIn = RunEventIn | JobEventIn | DatasetEventIn


class InvalidEvent(InvalidInput):
    """An event or facet that does not validate against the OpenLineage schema (422, naming the field)."""

    status_code = 422
    code = "validation_error"


def _where(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "event"


def parse_event(document: Any, *, label: str = "event") -> LineageEventIn:
    """Validate one event document; raises InvalidInput naming the first offending field."""
    if not isinstance(document, dict):
        raise InvalidInput(
            f"{label} must be a JSON object (an OpenLineage RunEvent, DatasetEvent or JobEvent), "
            f"got {type(document).__name__}",
            detail={"field": label},
        )
    model: type[RunEventIn] | type[DatasetEventIn] | type[JobEventIn]
    if "run" in document:
        model = RunEventIn
    elif "dataset" in document:
        model = DatasetEventIn
    elif "job" in document:
        model = JobEventIn
    else:
        raise InvalidInput(
            f"{label} is not an OpenLineage event: a RunEvent has 'run' and 'job', a JobEvent 'job', "
            "a DatasetEvent 'dataset'",
            detail={"field": label},
        )
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise _invalid(exc, label, model.__name__.removesuffix("In")) from None


def _invalid(exc: ValidationError, label: str, what: str) -> InvalidEvent:
    errors = exc.errors()
    first = errors[0]
    where = f"{label}.{_where(tuple(first['loc']))}" if first["loc"] else label
    value = first.get("input")
    shown = repr(value)[:80] if not isinstance(value, dict | list) else type(value).__name__
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return InvalidEvent(
        f"{where}: {first['msg']} (got {shown}){more}",
        detail={
            "field": where,
            "event_kind": what,
            "errors": [{"loc": [label, *e["loc"]], "msg": e["msg"]} for e in errors[:20]],
        },
    )


def parse_facet(model: type[M], value: Any, *, where: str) -> M:
    """Validate one facet Headwater applies; raises InvalidInput naming it."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise _invalid(exc, where, model.__name__) from None


# ------------------------------------------------------------------------------------------- API


class IngestOut(BaseModel):
    """What ingesting a request did."""

    received: int
    applied: int
    duplicates: int
    event_ids: list[int]
    warnings: list[str] = Field(default_factory=list)


class SqlLineageIn(BaseModel):
    """SQL to derive column lineage from, with where its unqualified table names live."""

    model_config = ConfigDict(extra="forbid")

    sql: Annotated[str, StringConstraints(min_length=1, max_length=1_000_000)]
    dialect: Literal["spark", "hive", "flink", "trino", "postgres"] = "spark"
    namespace: OLNamespace | None = Field(
        default=None, description="OpenLineage namespace of the tables the SQL names (default: found by name)."
    )
    default_schema: Annotated[str, StringConstraints(max_length=256)] | None = Field(
        default=None, description="Database/schema of unqualified table names."
    )
    apply: bool = Field(default=False, description="Record the lineage found as edges (origin 'sql').")
    job_namespace: OLNamespace = "headwater"
    job_name: OLName | None = Field(default=None, description="Job the edges belong to (default: sql-<hash>).")


class EdgeEndIn(BaseModel):
    """One end of a declared edge: a dataset by its OpenLineage identity, and optionally one of its columns."""

    model_config = ConfigDict(extra="forbid")

    namespace: OLNamespace
    name: OLName
    field: OLName | None = Field(default=None, description="Column path (nested members as a.b.c).")


class ManualEdgeIn(BaseModel):
    """An edge declared by hand: dataset-level (no ``field`` on either end) or column-level (a field on both)."""

    model_config = ConfigDict(extra="forbid")

    source: EdgeEndIn
    target: EdgeEndIn
    job_namespace: OLNamespace = Field(default="headwater", description="Job the edge belongs to.")
    job_name: OLName = Field(default="manual", description="Job the edge belongs to (created when unknown).")
    transformation_type: Literal["DIRECT", "INDIRECT"] | None = Field(
        default=None, description="Column edges only (default DIRECT)."
    )
    subtype: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = Field(
        default=None, description="Column edges only: IDENTITY, TRANSFORMATION, AGGREGATION, FILTER, JOIN, ..."
    )
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    producer: Annotated[str, StringConstraints(min_length=1, max_length=1024)] = Field(
        default="headwater/manual", description="Who or what declares the edge (kept as its provenance)."
    )


class NodeOut(BaseModel):
    """A node of a lineage answer: a dataset, a column or a job.

    A restricted dataset the reader may not see (or a column of it) is a placeholder: kind ``restricted``,
    ``hidden`` true, no id, namespace, name or field, and a ``label`` (``restricted-N`` for the dataset,
    ``restricted-N#M`` for one of its columns) that paths and edges use. Its numbers hold within one answer only,
    so two answers cannot be joined to follow one restricted dataset.
    """

    kind: Literal["dataset", "column", "job", "restricted"]
    id: int | None
    namespace: str | None
    name: str | None
    label: str | None = None
    hidden: bool = False
    field: str | None = None
    dataset_id: int | None = None
    distance: int | None = None
    path: list[str] | None = None


class EdgeOut(BaseModel):
    """An edge of a lineage answer, with its provenance."""

    source: str
    target: str
    job: str | None = None
    transformation_type: str | None = None
    subtype: str | None = None
    origin: str
    producer: str | None = None
    first_seen: dt.datetime
    last_seen: dt.datetime
    retired_at: dt.datetime | None = None
    last_run_id: str | None = None


class ManualEdgeOut(EdgeOut):
    """A declared edge: its id and level (for ``DELETE /api/v1/lineage/edges/{level}/{id}``) and whether the
    declaration created it (false: it was known already and its provenance was refreshed)."""

    id: int
    level: Literal["column", "dataset"]
    created: bool


class GraphOut(BaseModel):
    """A bounded piece of the lineage graph around one node."""

    root: str
    direction: str
    nodes: list[NodeOut]
    edges: list[EdgeOut]
    isPartial: bool
    hidden: int = 0  # how many nodes are placeholders of restricted datasets


class OwnerOut(BaseModel):
    """An owner of an affected dataset, at the distance of the nearest one."""

    owner: str
    role: str
    distance: int
    datasets: list[str]


class ImpactOut(BaseModel):
    """Everything downstream of a column or dataset: what breaks if it changes."""

    root: str
    total: int
    hidden: int = 0  # how many of the columns and datasets are placeholders of restricted datasets
    isPartial: bool
    partial_reason: str | None = None
    columns: list[NodeOut]
    datasets: list[NodeOut]
    jobs: list[NodeOut]
    owners: list[OwnerOut]
    elapsed_ms: float


class PathOut(BaseModel):
    """A shortest path between two nodes (empty when there is none within the bound)."""

    source: str
    target: str
    found: bool
    path: list[str]
    isPartial: bool


class RunOut(BaseModel):
    """A run with its state."""

    model_config = ConfigDict(from_attributes=True)

    run_id: str
    job_namespace: str
    job_name: str
    state: str | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    state_time: dt.datetime | None
    parent_run_id: str | None
    event_count: int
    children: list[str] = Field(default_factory=list)


class SqlColumnOut(BaseModel):
    """The inputs of one output column found in SQL."""

    field: str
    inputs: list[dict[str, Any]]


class SqlStatementOut(BaseModel):
    """The lineage of one SQL statement."""

    kind: str
    target: dict[str, str] | None
    inputs: list[dict[str, str]]
    columns: list[SqlColumnOut]
    dataset_inputs: list[dict[str, Any]]
    warnings: list[str]


class SqlLineageOut(BaseModel):
    """The lineage found in a SQL text, statement by statement."""

    dialect: str
    parsed_as: str
    statements: list[SqlStatementOut]
    applied_edges: int = 0


def parse_time(value: str, *, field_name: str) -> dt.datetime:
    """An ISO 8601 instant from a query parameter; naive times are read as UTC."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field_name} {value!r} is not an ISO 8601 time (e.g. 2026-01-01T00:00:00Z)", detail={"field": field_name}
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
