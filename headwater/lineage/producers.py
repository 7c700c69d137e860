"""Producers' namespaces: a token limited to OpenLineage namespaces writes lineage for those namespaces only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headwater.auth.principal import Principal
from headwater.errors import Forbidden

__all__ = ["check_namespaces"]


def _namespace(document: Any) -> str | None:
    """An event's job namespace (a DatasetEvent has no job: its dataset's namespace); None for a document the
    ingestion will refuse anyway."""
    if not isinstance(document, dict):
        return None
    owner = document.get("job") if "job" in document else document.get("dataset")
    namespace = owner.get("namespace") if isinstance(owner, dict) else None
    return namespace if isinstance(namespace, str) else None


def check_namespaces(principal: Principal, documents: Sequence[Any]) -> None:
    """Refuse (403, naming it) an event whose job namespace is outside the namespaces of ``principal``'s token."""
    allowed = principal.namespaces
    if allowed is None:
        return
    for document in documents:
        namespace = _namespace(document)
        if namespace is not None and namespace not in allowed:
            raise Forbidden(
                f"this token may write lineage in the namespaces {', '.join(sorted(allowed))} only, not {namespace!r}",
                detail={"permission": "lineage.write", "namespace": namespace},
            )
