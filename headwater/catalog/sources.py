"""Sources: the systems Headwater federates, and the ``manual`` source people register datasets in.

A source's secrets are stored sealed (references checked, values encrypted) by :mod:`headwater.secrets`; the
service functions that write them take the server's :class:`~headwater.secrets.SecretVault`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater.catalog.events import record_change
from headwater.catalog.models import ChangeKind, Dataset, Source, SourceKind
from headwater.catalog.schemas import SourceCreate, SourceUpdate
from headwater.db import utcnow
from headwater.egress import EgressPolicy
from headwater.errors import Conflict
from headwater.orm import get_by_name
from headwater.pagination import PageResult, SortKey, paginate
from headwater.secrets import SecretsRequired, SecretVault

__all__ = [
    "DEFAULT_MANUAL_SOURCE",
    "create_source",
    "delete_source",
    "ensure_manual_source",
    "get_source",
    "list_sources",
    "live_dataset_counts",
    "rotate_secrets",
    "update_source",
]

DEFAULT_MANUAL_SOURCE = "manual"
DEFAULT_MANUAL_NAMESPACE = "manual"

SOURCE_SORTS = {
    "name": SortKey(Source.name, Source.id),
    "created_at": SortKey(Source.created_at, Source.id, kind="datetime"),
    "id": SortKey(Source.id, Source.id, kind="int"),
}


def create_source(
    session: Session, *, data: SourceCreate, vault: SecretVault | None = None, egress: EgressPolicy | None = None
) -> Source:
    """Register a source; its name is unique. Secrets need ``vault`` (without one none can be stored); endpoints the
    egress policy refuses are an EgressRefused (422)."""
    if session.scalar(select(Source.id).where(Source.name == data.name)) is not None:
        raise Conflict(f"a source named {data.name!r} already exists", detail={"field": "name"})
    _validate_config(data.kind.value, data.config, egress)
    source = Source(
        name=data.name,
        kind=data.kind.value,
        namespace=data.namespace,
        description=data.description,
        config=data.config,
        secrets=(vault or SecretVault()).seal(data.secrets),
    )
    session.add(source)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name won the race
        raise Conflict(f"a source named {data.name!r} already exists", detail={"field": "name"}) from exc
    return source


def _validate_config(kind: str, config: dict[str, Any], egress: EgressPolicy | None = None) -> None:
    # Imported here: connectors build on the catalog service, which imports this module.
    from headwater.catalog.connectors import check_egress, validate_config

    validate_config(kind, config)
    check_egress(kind, config, egress)


def _endpoint_changes(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    from headwater.catalog.connectors import endpoint_changes

    return endpoint_changes(kind, old, new)


def get_source(session: Session, *, name: str) -> Source:
    """The source called ``name``."""
    return get_by_name(session, Source, name, label="source")


def list_sources(
    session: Session, *, kind: SourceKind | None = None, sort: str = "name", cursor: str | None, limit: int
) -> PageResult[Source]:
    """Sources, optionally of one kind, one page at a time."""
    stmt = select(Source)
    if kind is not None:
        stmt = stmt.where(Source.kind == kind.value)
    return paginate(session, stmt, sorts=SOURCE_SORTS, sort=sort, cursor=cursor, limit=limit)


def live_dataset_counts(session: Session, *, source_ids: list[int]) -> dict[int, int]:
    """How many live (not deleted) datasets each of ``source_ids`` has, in one grouped query."""
    if not source_ids:
        return {}
    rows = session.execute(
        select(Dataset.source_id, func.count())
        .where(Dataset.source_id.in_(source_ids), Dataset.deleted_at.is_(None))
        .group_by(Dataset.source_id)
    )
    return {source_id: count for source_id, count in rows}


def update_source(
    session: Session,
    *,
    name: str,
    data: SourceUpdate,
    vault: SecretVault | None = None,
    egress: EgressPolicy | None = None,
) -> Source:
    """Change a source's description, config or secrets (named secret keys are replaced).

    Credentials go only to the endpoint they were set for: a config that changes one of the connector's
    endpoint keys needs the secrets in the same update, and they replace all the stored ones.
    """
    source = get_source(session, name=name)
    sealed = None if data.secrets is None else (vault or SecretVault()).seal(data.secrets)
    changes = data.model_dump(exclude_unset=True)
    if "description" in changes:
        source.description = data.description
    moved: list[str] = []
    if data.config is not None:
        _validate_config(source.kind, data.config, egress)
        moved = _endpoint_changes(source.kind, source.config or {}, data.config)
        if moved and source.secrets and data.secrets is None:
            raise SecretsRequired(
                f"{', '.join(moved)} changes where source {name!r} sends its credentials; send its secrets again in "
                "the same update (they replace the stored ones), or the old credentials would go to the new endpoint",
                detail={"field": "secrets", "endpoint_keys": moved},
            )
        source.config = data.config
    if sealed is not None:
        source.secrets = sealed if moved else {**(source.secrets or {}), **sealed}
    source.updated_at = utcnow()
    source.revision += 1
    session.flush()
    return source


def rotate_secrets(session: Session, *, vault: SecretVault, batch: int = 500) -> tuple[int, int]:
    """Re-encrypt every stored secret with the vault's first key; (sources, values) re-encrypted."""
    sources = values = 0
    after = 0
    while True:
        page = list(
            session.scalars(select(Source).where(Source.id > after).order_by(Source.id).limit(batch).with_for_update())
        )
        for source in page:
            if source.secrets:
                source.secrets = vault.rotate(source.secrets, source=source.name)
                sources += 1
                values += len(source.secrets)
        session.flush()
        if len(page) < batch:
            return sources, values
        after = page[-1].id


def delete_source(session: Session, *, name: str) -> None:
    """Remove a source that no live dataset belongs to, with its already-deleted datasets."""
    source = get_source(session, name=name)
    live = session.scalar(
        select(func.count()).select_from(Dataset).where(Dataset.source_id == source.id, Dataset.deleted_at.is_(None))
    )
    if live:
        raise Conflict(
            f"source {name!r} still has {live} dataset(s); delete them first",
            detail={"field": "name", "datasets": live},
        )
    # Soft-deleted datasets go with their source. Each purge is a change event, so that caches, the search
    # index and other consumers of the feed drop them too (list pages with include_deleted showed them).
    purged = session.execute(
        select(Dataset.id, Dataset.namespace, Dataset.name).where(Dataset.source_id == source.id)
    ).all()
    session.execute(delete(Dataset).where(Dataset.source_id == source.id))
    session.delete(source)
    session.flush()
    for dataset_id, namespace, dataset_name in purged:
        record_change(
            session,
            kind=ChangeKind.DELETED,
            entity_type="dataset",
            entity_id=dataset_id,
            namespace=namespace,
            name=dataset_name,
            payload={"purged": True, "source": name, "by": "user"},
        )


def ensure_manual_source(session: Session) -> Source:
    """The default ``manual`` source, created the first time it is needed."""
    source = session.scalar(select(Source).where(Source.name == DEFAULT_MANUAL_SOURCE))
    if source is not None:
        return source
    return create_source(
        session,
        data=SourceCreate(
            name=DEFAULT_MANUAL_SOURCE,
            kind=SourceKind.MANUAL,
            namespace=DEFAULT_MANUAL_NAMESPACE,
            description="Datasets registered by hand through the API or CLI.",
        ),
    )
