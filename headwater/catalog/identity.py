"""One dataset, whatever it is called: the canonical dataset of any name it is known by.

A dataset has its own OpenLineage identity ``(namespace, name)`` and may have other names: the storage path a
Spark job wrote (``s3://bucket`` + ``warehouse/orders``) whose symlinks facet names the Hive table, the names
producers used before a source federated the table. Those are kept as aliases (``lineage_dataset_aliases``).
Every edge that looks a dataset up by name (REST by-name, lineage graph, impact, path and declared edges,
GraphQL, the UI, raw-event redaction, ingestion) asks here, so every name reaches the same node. A dataset's own
name wins over an alias of another one. A dataset an admin merged into another (``Dataset.merged_into_id``)
answers, by every name it had, as that one; ingestion's one-statement read on PostgreSQL
(:mod:`headwater.lineage.ingest.snapshot`) states the same rule in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from headwater.catalog.events import metadata_changed
from headwater.catalog.models import Dataset, DatasetAlias
from headwater.db import in_chunks
from headwater.errors import Conflict, NotFound

__all__ = ["Name", "add_alias", "aliases_among", "aliases_of", "remove_alias", "resolve_id", "resolve_ids"]

Name = tuple[str, str]  # (namespace, name), as OpenLineage names a dataset


def resolve_ids(session: Session, names: Iterable[Name]) -> dict[Name, int]:
    """The dataset each of ``names`` is (its own name first, then an alias; a dataset merged into another answers
    as that one); unknown names are absent. Deleted datasets are found too: whether one may be shown is the
    caller's decision."""
    wanted = sorted(set(names))
    found: dict[Name, int] = {}
    for chunk in in_chunks(wanted):
        own = tuple_(Dataset.namespace, Dataset.name).in_(chunk)
        columns = (func.coalesce(Dataset.merged_into_id, Dataset.id), Dataset.namespace, Dataset.name)
        for dataset_id, ns, n in session.execute(select(*columns).where(own)):
            found[(ns, n)] = dataset_id
        rest = [name for name in chunk if name not in found]
        if not rest:
            continue
        other = tuple_(DatasetAlias.namespace, DatasetAlias.name).in_(rest)
        aliased = select(func.coalesce(Dataset.merged_into_id, Dataset.id), DatasetAlias.namespace, DatasetAlias.name)
        for dataset_id, ns, n in session.execute(
            aliased.join(Dataset, Dataset.id == DatasetAlias.dataset_id).where(other)
        ):
            found[(ns, n)] = dataset_id
    return found


def resolve_id(session: Session, namespace: str, name: str) -> int | None:
    """The dataset named ``namespace``/``name`` by its own name or an alias; None when no dataset is."""
    return resolve_ids(session, [(namespace, name)]).get((namespace, name))


def aliases_of(session: Session, dataset_id: int, *, limit: int = 100) -> list[Name]:
    """The other names of a dataset, sorted (at most ``limit``): its aliases, and the own names and aliases of the
    datasets merged into it."""
    return aliases_among(session, [dataset_id]).get(dataset_id, [])[:limit]


def aliases_among(session: Session, dataset_ids: Iterable[int]) -> dict[int, list[Name]]:
    """The other names of each of ``dataset_ids`` that has any, sorted (as :func:`aliases_of`)."""
    found: dict[int, set[Name]] = {}
    for chunk in in_chunks(sorted(set(dataset_ids))):
        holders: dict[int, int] = {dataset_id: dataset_id for dataset_id in chunk}
        for merged_id, into_id, ns, n in session.execute(
            select(Dataset.id, Dataset.merged_into_id, Dataset.namespace, Dataset.name).where(
                Dataset.merged_into_id.in_(chunk)
            )
        ):
            if into_id is not None:
                holders[merged_id] = into_id
                found.setdefault(into_id, set()).add((ns, n))
        for holder_chunk in in_chunks(sorted(holders)):
            for dataset_id, ns, n in session.execute(
                select(DatasetAlias.dataset_id, DatasetAlias.namespace, DatasetAlias.name).where(
                    DatasetAlias.dataset_id.in_(holder_chunk)
                )
            ):
                found.setdefault(holders[dataset_id], set()).add((ns, n))
    return {dataset_id: sorted(names) for dataset_id, names in found.items()}


def add_alias(session: Session, *, dataset: Dataset, namespace: str, name: str, by: str) -> bool:
    """Declare ``namespace``/``name`` another name of ``dataset`` (from now on every lookup and every event naming
    it reaches the dataset); whether it is new. A name that is another dataset's own name or alias is refused:
    two datasets that are one are merged instead (:mod:`headwater.lineage.merges`)."""
    if (namespace, name) == (dataset.namespace, dataset.name):
        raise Conflict("that is the dataset's own name", detail={"field": "name"})
    holder = resolve_id(session, namespace, name)
    if holder == dataset.id:
        return False
    if holder is not None:
        raise Conflict(
            f"{namespace}/{name} already names dataset {holder}; if the two are one dataset, merge them: "
            f"POST /api/v1/datasets/{dataset.id}/merges with duplicate_id {holder}",
            detail={"field": "name", "dataset_id": holder},
        )
    session.add(DatasetAlias(dataset_id=dataset.id, namespace=namespace, name=name))
    session.flush()
    metadata_changed(session, [dataset.id], {"by": by, "changed": ["aliases"], "added": f"{namespace}/{name}"})
    return True


def remove_alias(session: Session, *, dataset: Dataset, namespace: str, name: str, by: str) -> None:
    """Stop ``namespace``/``name`` naming ``dataset``; NotFound when it does not."""
    alias = session.scalar(
        select(DatasetAlias).where(
            DatasetAlias.dataset_id == dataset.id, DatasetAlias.namespace == namespace, DatasetAlias.name == name
        )
    )
    if alias is None:
        raise NotFound(f"{namespace}/{name} is not another name of dataset {dataset.id}", detail={"field": "name"})
    session.delete(alias)
    session.flush()
    metadata_changed(session, [dataset.id], {"by": by, "changed": ["aliases"], "removed": f"{namespace}/{name}"})
