"""GraphQL over the catalog: datasets with their fields and schema history, sources, the change feed, and the
metadata mutations. Types derive from the REST answer models (:mod:`headwater.catalog.schemas`); each resolver
hands off to the catalog service the REST route calls."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy.orm import Session
from strawberry.scalars import JSON
from strawberry.types.unset import UNSET

from headwater.auth.actions import Action
from headwater.auth.policy import Resource, audience_of
from headwater.catalog import events as catalog_events
from headwater.catalog import service as catalog
from headwater.catalog import sources as catalog_sources
from headwater.catalog.access import dataset_resource
from headwater.catalog.lookups import FieldOfDataset, fields_of_datasets
from headwater.catalog.models import ChangeKind, DatasetKind, SourceKind, SourceStatus
from headwater.catalog.models import Dataset as DatasetRow
from headwater.catalog.schemas import (
    ChangeEventOut,
    DatasetCreate,
    DatasetOut,
    DatasetSummary,
    DatasetUpdate,
    OwnerOut,
    SchemaChangeRename,
    SchemaChangeRetype,
    SchemaDiff,
    SchemaVersionOut,
    SourceOut,
)
from headwater.catalog.schemas import ChangeFeed as ChangeFeedOut
from headwater.errors import InvalidInput
from headwater.graphql.arguments import as_filters, bounded, database_id, is_set, page_size, validated
from headwater.graphql.context import Info, Siblings
from headwater.graphql.derive import Page, from_model, input_from, to_graphql
from headwater.graphql.errors import answers_errors, result
from headwater.pagination import COUNT_HELP

__all__ = ["CatalogMutation", "CatalogQuery", "Dataset", "datasets_of", "datasets_by_id"]

for _enum in (DatasetKind, SourceKind, SourceStatus, ChangeKind):
    strawberry.enum(_enum)


@from_model(OwnerOut)
class Owner:
    """Who owns a dataset, in which role."""


@from_model(FieldOfDataset, name="Field", ids=("id",), field_order=("id", *FieldOfDataset.model_fields))
class DatasetField:
    """One field (column) of a dataset's current schema; nested fields have a dotted ``path``."""

    id: strawberry.ID = strawberry.field(description="The catalog's id of the column: what lineage queries take.")
    field_id: int | None = strawberry.field(
        name="sourceFieldId", description="The source's own field id (Iceberg), if it has one."
    )


def _fields_of(session: Session, dataset_ids: list[int]) -> dict[int, list[Any]]:  # FieldOfDataset, as Field
    return {key: to_graphql(found) for key, found in fields_of_datasets(session, dataset_ids=dataset_ids).items()}


# GraphQL has always listed a dataset's whole-form facts after its summary's and before its timestamps.
_SUMMARY = list(DatasetSummary.model_fields)
_WHOLE = ("revision", "partitioning", "properties", "source_properties")
_DATASET_ORDER = (*_SUMMARY[: _SUMMARY.index("created_at")], *_WHOLE, *_SUMMARY[_SUMMARY.index("created_at") :])


@from_model(SchemaChangeRename, name="FieldRename")
class FieldRename:
    """A field that kept its identity (source field id) under a new path."""


@from_model(SchemaChangeRetype, name="FieldRetype")
class FieldRetype:
    """A field whose type or nullability changed."""


@from_model(SchemaDiff, name="SchemaDiff")
class SchemaDiffType:
    """What changed from the version before: paths added and removed, fields renamed and retyped."""


@from_model(SchemaVersionOut, name="SchemaVersion")
class SchemaVersion:
    """One immutable schema version of a dataset."""


@from_model(DatasetOut, ids=("id",), exclude=("fields",), field_order=_DATASET_ORDER)
class Dataset:
    """A table, view, topic or file of a federated source, with its current schema and what people say of it."""

    revision: int = strawberry.field(description="Pass it back as expectedRevision to guard an update.")
    siblings: strawberry.Private[Siblings[int]]

    @strawberry.field(description="The current schema's fields, in order (loaded for every dataset of a page at once).")
    def fields(self) -> list[DatasetField]:
        """The fields of the current schema."""
        return self.siblings.load("fields", int(self.id), _fields_of) or []  # type: ignore[attr-defined]

    @strawberry.field(
        description="Schema versions, newest first, each with its diff from the one before (one "
        "query per dataset asked)."
    )
    def schema_history(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> SchemaVersionPage | None:  # null, with an error naming the argument, when an argument is bad
        """A page of the dataset's schema history."""
        page = catalog.list_schema_versions(
            info.context.session,
            dataset_id=int(self.id),  # type: ignore[attr-defined]
            cursor=after,
            limit=bounded(first, 1, 100, "first"),
        )
        items = to_graphql([SchemaVersionOut.model_validate(v) for v in page.items])
        return SchemaVersionPage(items=items, next_cursor=page.next_cursor, total=page.total)


def datasets_of(session: Session, rows: list[DatasetRow]) -> list[Dataset]:
    """GraphQL datasets of ORM rows returned together (tags and owners loaded); they batch their loads."""
    siblings = Siblings(session, [r.id for r in rows])
    answers = [DatasetOut.of(row, field_rows=()).__dict__ for row in rows]
    return [
        Dataset(
            **{**{k: v for k, v in answer.items() if k != "fields"}, "owners": to_graphql(answer["owners"])},
            siblings=siblings,
        )
        for answer in answers
    ]


def datasets_by_id(session: Session, dataset_ids: list[int]) -> dict[int, Dataset]:
    """The live GraphQL datasets among ``dataset_ids`` (a batch loader: one query per chunk)."""
    return {int(d.id): d for d in datasets_of(session, catalog.datasets_by_id(session, dataset_ids=dataset_ids))}  # type: ignore[attr-defined]


@from_model(ChangeEventOut, name="ChangeEvent", ids=("id", "entity_id"))
class ChangeEvent:
    """One entry of the catalog's change feed (created, schema_changed, metadata_updated, deleted, restored,
    adopted)."""


@from_model(ChangeFeedOut, name="ChangeFeed", ids=("next_after",))
class ChangeFeed:
    """Change events after a position, oldest first; pass ``nextAfter`` back as ``after`` to follow the feed."""


@from_model(SourceOut, name="Source", exclude=("id", "config", "secret_keys"))
class Source:
    """A federated system (Iceberg catalog, Hive Metastore, Kafka cluster, database) or the manual source."""


@strawberry.type
class SourceList:
    """The federated sources (a platform has tens, not thousands: one list, no pages)."""

    items: list[Source]


DatasetResult: Any = result("DatasetResult", Dataset)


@strawberry.type
class DatasetPage(Page[Dataset]):
    """One page of datasets; pass ``nextCursor`` as ``after`` for the next."""


@strawberry.type
class SchemaVersionPage(Page[SchemaVersion]):
    """One page of schema history; pass ``nextCursor`` as ``after`` for older versions."""


DatasetPageResult: Any = result("DatasetPageResult", DatasetPage)
ChangeFeedResult: Any = result("ChangeFeedResult", ChangeFeed)
SourcesResult: Any = result("SourcesResult", SourceList)

# ---------------------------------------------------------------------------------------------- inputs

DatasetFilter = input_from(
    catalog.DatasetFilters, name="DatasetFilter", description="Dataset list filters; they combine with AND."
)


@strawberry.input
class OwnerInput:
    name: str
    role: str | None = strawberry.field(default=None, description="technical_owner when omitted.")


def _owners(given: list[OwnerInput]) -> list[dict[str, str]]:
    return [{"name": o.name, **({"role": o.role} if o.role is not None else {})} for o in given]


@strawberry.input(description="What people say about one field; omitted keys stay as they are.")
class FieldMetadataInput:
    path: str
    description: str | None = strawberry.field(default=UNSET, description="null clears it.")
    tags: list[str] | None = UNSET


@strawberry.input(description="User metadata of a dataset; omitted keys stay as they are, null clears a description.")
class DatasetMetadataInput:
    description: str | None = UNSET
    tags: list[str] | None = UNSET
    owners: list[OwnerInput] | None = UNSET
    properties: JSON | None = UNSET
    fields: list[FieldMetadataInput] | None = UNSET


@strawberry.input(description="A field (column); struct members nest under fields.")
class FieldInput:
    name: str
    type: str
    nullable: bool = True
    description: str | None = None
    source_field_id: int | None = strawberry.field(default=None, description="The source's own id (Iceberg).")
    tags: list[str] | None = None
    fields: list[FieldInput] | None = None


@strawberry.input(description="One partition key: a column and its transform (identity, day, bucket[16], ...).")
class PartitionInput:
    column: str
    transform: str = "identity"
    name: str | None = None


@strawberry.input(description="A dataset registered by hand in a manual source.")
class DatasetInput:
    name: str
    namespace: str | None = strawberry.field(default=None, description="The source's namespace when omitted.")
    source: str = "manual"
    kind: DatasetKind = DatasetKind.TABLE
    format: str | None = None
    location: str | None = None
    partitioning: list[PartitionInput] | None = None
    source_description: str | None = None
    source_properties: JSON | None = None
    fields: list[FieldInput] | None = None
    description: str | None = None
    tags: list[str] | None = None
    owners: list[OwnerInput] | None = None
    properties: JSON | None = None


def _field_dict(given: FieldInput) -> dict[str, Any]:
    data: dict[str, Any] = {"name": given.name, "type": given.type, "nullable": given.nullable}
    for key, value in (("description", given.description), ("field_id", given.source_field_id), ("tags", given.tags)):
        if value is not None:
            data[key] = value
    if given.fields is not None:
        data["fields"] = [_field_dict(f) for f in given.fields]
    return data


def _registration(given: DatasetInput) -> dict[str, Any]:
    """The REST body (DatasetCreate) of a GraphQL registration: what was given, nothing for what was not."""
    plain = ("name", "namespace", "source", "format", "location", "source_description", "description")
    data: dict[str, Any] = {key: getattr(given, key) for key in plain if getattr(given, key) is not None}
    data["kind"] = given.kind.value
    for key in ("source_properties", "properties", "tags"):
        if getattr(given, key) is not None:
            data[key] = getattr(given, key)
    if given.partitioning is not None:
        data["partitioning"] = [
            {"column": p.column, "transform": p.transform, **({"name": p.name} if p.name else {})}
            for p in given.partitioning
        ]
    if given.fields is not None:
        data["fields"] = [_field_dict(f) for f in given.fields]
    if given.owners is not None:
        data["owners"] = _owners(given.owners)
    return data


def _metadata(given: DatasetMetadataInput) -> dict[str, Any]:
    """The REST body (DatasetUpdate) of a metadata update: the keys given, null included."""
    data: dict[str, Any] = {}
    for key in ("description", "tags", "properties"):
        if is_set(getattr(given, key)):
            data[key] = getattr(given, key)
    if is_set(given.owners):
        data["owners"] = None if given.owners is None else _owners(given.owners)
    if is_set(given.fields) and given.fields is not None:
        data["fields"] = {
            f.path: {k: getattr(f, k) for k in ("description", "tags") if is_set(getattr(f, k))} for f in given.fields
        }
    return data


# ----------------------------------------------------------------------------------------- resolvers


@strawberry.type
class CatalogQuery:
    """What tools read of the catalog."""

    @strawberry.field(description="One dataset, by id or by namespace and name.")
    @answers_errors(Action.CATALOG_READ)
    def dataset(
        self,
        info: Info,
        id: strawberry.ID | None = None,
        namespace: str | None = None,
        name: str | None = None,
        include_deleted: bool = False,
    ) -> DatasetResult:
        session, audience = info.context.session, audience_of(info.context.principal)
        if id is not None:
            dataset_id = database_id(id, "id")
            row = catalog.get_dataset(
                session, dataset_id=dataset_id, include_deleted=include_deleted, audience=audience, with_fields=False
            )
        elif namespace and name:
            row = catalog.get_dataset_by_name(
                session,
                namespace=namespace,
                name=name,
                include_deleted=include_deleted,
                audience=audience,
                with_fields=False,  # the fields resolver loads them as rows, when asked
            )
        else:
            raise InvalidInput("name the dataset by id, or by namespace and name", detail={"field": "id"})
        return datasets_of(session, [row])[0]

    @strawberry.field(description="Datasets matching a filter, a page at a time (sort: name, updated_at, created_at).")
    @answers_errors(Action.CATALOG_READ)
    def datasets(
        self,
        info: Info,
        filter: DatasetFilter | None = None,  # type: ignore[valid-type]
        sort: str = "name",
        first: int = 50,
        after: str | None = None,
        count: Annotated[str, strawberry.argument(description=COUNT_HELP)] = "estimate",
    ) -> DatasetPageResult:
        session = info.context.session
        filters = as_filters(catalog.DatasetFilters, filter or DatasetFilter())
        page = catalog.list_datasets(
            session,
            filters=filters,
            sort=sort,
            cursor=after,
            limit=page_size(first, 100),
            audience=audience_of(info.context.principal),
            count=count,
        )
        return DatasetPage(
            items=datasets_of(session, page.items),
            next_cursor=page.next_cursor,
            total=page.total,
            total_exact=page.total_exact,
        )

    @strawberry.field(description="The federated sources (and the manual one).")
    @answers_errors(Action.CATALOG_READ)
    def sources(self, info: Info, kind: SourceKind | None = None) -> SourcesResult:
        found: list[Source] = []
        cursor: str | None = None
        while True:  # sources are few: a platform federates tens of systems, not thousands
            page = catalog_sources.list_sources(info.context.session, kind=kind, cursor=cursor, limit=500)
            found.extend(to_graphql(SourceOut.model_validate(s)) for s in page.items)
            if page.next_cursor is None:
                return SourceList(items=found)
            cursor = page.next_cursor

    @strawberry.field(description="The catalog's change feed after a position, oldest first (as REST's).")
    @answers_errors(Action.CATALOG_READ)
    def change_events(
        self,
        info: Info,
        after: strawberry.ID = strawberry.ID("0"),
        first: int = 100,
        entity_type: str | None = None,
        kinds: list[ChangeKind] | None = None,
    ) -> ChangeFeedResult:
        position = 0 if str(after) == "0" else database_id(after, "after")
        rows = catalog_events.list_changes(
            info.context.session,
            after=position,
            limit=page_size(first, 1000),
            entity_type=entity_type,
            kinds=kinds,
            audience=audience_of(info.context.principal),
        )
        items = [ChangeEventOut.model_validate(r) for r in rows]
        return to_graphql(ChangeFeedOut(items=items, next_after=rows[-1].id if rows else position))


def _dataset_of(session: Session, arguments: dict[str, Any]) -> Resource:
    """The dataset a mutation names by ``id``, for the permission check."""
    return dataset_resource(session, dataset_id=database_id(arguments["id"], "id"))


@strawberry.type
class CatalogMutation:
    """What tools change in the catalog."""

    @strawberry.field(description="Change a dataset's user metadata; expectedRevision is the revision you read.")
    @answers_errors(Action.CATALOG_EDIT, owned_by=_dataset_of)  # its owners may, without the editor role
    def update_dataset(
        self, info: Info, id: strawberry.ID, input: DatasetMetadataInput, expected_revision: int
    ) -> DatasetResult:
        session = info.context.session
        data = validated(DatasetUpdate, _metadata(input), "input")
        row = catalog.update_dataset_metadata(
            session,
            dataset_id=database_id(id, "id"),
            data=data,
            expected_revision=expected_revision,
            principal=info.context.principal,
        )
        return datasets_of(session, [row])[0]

    @strawberry.field(description="Register a dataset by hand in a manual source (ConflictError if it exists).")
    @answers_errors(Action.CATALOG_EDIT)
    def register_dataset(self, info: Info, input: DatasetInput) -> DatasetResult:
        session = info.context.session
        data = validated(DatasetCreate, _registration(input), "input")
        audience = audience_of(info.context.principal)
        return datasets_of(session, [catalog.register_dataset(session, data=data, audience=audience)])[0]
