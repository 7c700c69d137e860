"""Turning catalog datasets into search documents: one per dataset and, optionally, one per column.

Lineage degree and recent job usage are not known to the catalog. Domains that know them register an
enricher in :data:`ENRICHERS` (a function given the session and the dataset ids of a batch that returns
``{dataset_id: {"lineage_degree": n, "job_usage": m}}``); until the lineage and jobs domains register
theirs, both stay 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from headwater.catalog import identity
from headwater.catalog.models import Dataset
from headwater.catalog.restrictions import audience_members
from headwater.search.base import ColumnEntry, DocumentType, SearchDocument

__all__ = ["ENRICHERS", "Enricher", "documents_for", "iter_dataset_batches", "load_datasets"]

Enricher = Callable[[Session, Sequence[int]], dict[int, dict[str, int]]]
ENRICHERS: list[Enricher] = []


def load_datasets(session: Session, dataset_ids: Sequence[int]) -> list[Dataset]:
    """The live (not deleted) datasets among ``dataset_ids``, with fields, tags, owners and source."""
    if not dataset_ids:
        return []
    stmt = (
        select(Dataset)
        .where(Dataset.id.in_(list(dataset_ids)), Dataset.deleted_at.is_(None))
        .options(selectinload(Dataset.fields), selectinload(Dataset.tags), selectinload(Dataset.owners))
    )
    return list(session.scalars(stmt))


def iter_dataset_batches(session: Session, *, batch_size: int = 500) -> Iterator[list[int]]:
    """The ids of every live dataset, in id order, a batch at a time (keyset, never one unbounded read)."""
    after = 0
    while True:
        ids = list(
            session.scalars(
                select(Dataset.id)
                .where(Dataset.id > after, Dataset.deleted_at.is_(None))
                .order_by(Dataset.id)
                .limit(batch_size)
            )
        )
        if not ids:
            return
        yield ids
        after = ids[-1]


def documents_for(session: Session, datasets: Sequence[Dataset], *, include_columns: bool) -> list[SearchDocument]:
    """The search documents of these datasets."""
    extras: dict[int, dict[str, int]] = {}
    for enrich in ENRICHERS:
        for dataset_id, values in enrich(session, [d.id for d in datasets]).items():
            extras.setdefault(dataset_id, {}).update(values)
    audiences = audience_members(session, [d.id for d in datasets])
    aliases = identity.aliases_among(session, [d.id for d in datasets])
    documents: list[SearchDocument] = []
    for dataset in datasets:
        tags = [t.tag for t in dataset.tags]
        owners = [o.owner for o in dataset.owners]
        extra = extras.get(dataset.id, {})
        base = {
            "dataset_id": dataset.id,
            "dataset_name": dataset.name,
            "namespace": dataset.namespace,
            "source": dataset.source.name,
            "kind": dataset.kind,
            "format": dataset.format,
            "updated_at": dataset.updated_at,
            "owners": owners,
            "lineage_degree": extra.get("lineage_degree", 0),
            "job_usage": extra.get("job_usage", 0),
            "audience": sorted(audiences.get(dataset.id, ())),
            "aliases": [f"{ns}/{n}" for ns, n in aliases.get(dataset.id, ())],
        }
        documents.append(
            SearchDocument(
                key=f"dataset:{dataset.id}",
                type=DocumentType.DATASET,
                name=dataset.name,
                description=dataset.user_description or dataset.source_description,
                source_description=dataset.source_description,
                tags=tags,
                columns=[
                    ColumnEntry(f.path, f.user_description or f.source_description, list(f.tags))
                    for f in dataset.fields
                ],
                **base,  # type: ignore[arg-type]
            )
        )
        if include_columns:
            documents.extend(
                SearchDocument(
                    key=f"column:{f.id}",
                    type=DocumentType.COLUMN,
                    name=f.path,
                    description=f.user_description or f.source_description,
                    source_description=f.source_description,
                    tags=list(f.tags),
                    field_type=f.type,
                    **base,  # type: ignore[arg-type]
                )
                for f in dataset.fields
            )
    return documents
