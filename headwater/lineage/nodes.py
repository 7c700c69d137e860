"""The nodes of lineage answers, and the placeholders that replace restricted datasets a reader may not see
(docs/security/restricted-data.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from headwater.auth.policy import Audience
from headwater.catalog.restrictions import hidden_among
from headwater.lineage.schemas import NodeOut

__all__ = ["Masker", "NodeRef", "node_out"]


@dataclass(frozen=True)
class NodeRef:
    """A dataset, or one column of it."""

    dataset_id: int
    namespace: str
    name: str
    field_id: int | None = None
    field: str | None = None
    hidden: bool = False  # a placeholder for a restricted dataset (or its column): ``name`` is its label

    @property
    def label(self) -> str:
        """How the node is named in answers: ``namespace/name`` or ``namespace/name#field`` (a placeholder's
        ``restricted-N`` or ``restricted-N#M``)."""
        if self.hidden:
            return self.name
        base = f"{self.namespace}/{self.name}"
        return f"{base}#{self.field}" if self.field is not None else base


class Masker:
    """Replaces the nodes of restricted datasets a reader may not see by placeholders, numbered in the order
    met within one answer, so that the graph keeps its shape and counts without a name, namespace or field."""

    def __init__(self, session: Session, audience: Audience) -> None:
        self.session = session
        self.audience = audience
        self.hidden: set[int] = set()
        self._checked: set[int] = set()
        self._datasets: dict[int, int] = {}
        self._columns: dict[int, int] = {}

    def mask(self, refs: dict[int, NodeRef]) -> dict[int, NodeRef]:
        """``refs`` with each hidden node replaced by its placeholder."""
        if self.audience is None or not refs:
            return refs
        new = {ref.dataset_id for ref in refs.values()} - self._checked
        if new:
            self.hidden |= hidden_among(self.session, new, self.audience)
            self._checked |= new
        if not self.hidden:
            return refs
        return {key: self.placeholder(ref) if ref.dataset_id in self.hidden else ref for key, ref in refs.items()}

    def placeholder(self, ref: NodeRef) -> NodeRef:
        """The placeholder of a hidden node."""
        number = self._datasets.setdefault(ref.dataset_id, len(self._datasets) + 1)
        label = f"restricted-{number}"
        if ref.field_id is not None:
            label += f"#{self._columns.setdefault(ref.field_id, len(self._columns) + 1)}"
        return NodeRef(ref.dataset_id, "", label, ref.field_id, None, hidden=True)


def node_out(kind: Literal["dataset", "column"], ref: NodeRef, distance: int | None, path: list[str] | None) -> NodeOut:
    """The answer's form of a dataset or column node (a placeholder's, for a hidden one)."""
    if ref.hidden:
        # No id: an id would let answers be joined to follow one restricted dataset, and name it to other routes.
        return NodeOut(
            kind="restricted",
            id=None,
            namespace=None,
            name=None,
            label=ref.label,
            hidden=True,
            dataset_id=None,
            distance=distance,
            path=path,
        )
    return NodeOut(
        kind=kind,
        id=ref.field_id if kind == "column" and ref.field_id is not None else ref.dataset_id,
        namespace=ref.namespace,
        name=ref.name,
        field=ref.field if kind == "column" else None,
        dataset_id=ref.dataset_id,
        distance=distance,
        path=path,
    )
