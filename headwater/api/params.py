"""Request parameters shared by routers: database ids, If-Match revisions, resource names, and the node and
edge-filter parameters of the lineage graph, impact and path queries."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Header, Path, Query

from headwater.errors import InvalidInput, PreconditionFailed, PreconditionRequired

__all__ = [
    "MAX_ID",
    "IfMatch",
    "NamePath",
    "NodeParams",
    "WalkFilterParams",
    "as_of_params",
    "node_params",
    "parse_id",
    "parse_if_match",
    "walk_filter_params",
]

MAX_ID = 2**63 - 1
NamePath = Annotated[str, Path(min_length=1, max_length=255)]
IfMatch = Annotated[str | None, Header(max_length=256)]


def parse_id(text: str | None, name: str) -> int:
    """A database id (1 to 2**63 - 1) from text a client sent, or InvalidInput naming ``name``."""
    if text is None or not (text.isascii() and text.isdigit() and len(text) <= 19) or not 1 <= int(text) < 2**63:
        raise InvalidInput(f"{name} must be a positive integer id, got {(text or '')[:40]!r}", detail={"field": name})
    return int(text)


def parse_if_match(header: str | None, *, required: bool, resource: str) -> int | None:
    """The revision an If-Match header names (None for ``*`` or an absent optional header).

    Headwater's ETags look like ``"<id>.<revision>"``; a weak ``W/`` prefix is accepted.
    """
    if header is None or not header.strip():
        if required:
            raise PreconditionRequired(
                f"send If-Match with the ETag from GET {resource} so a concurrent change is not overwritten",
                detail={"header": "If-Match"},
            )
        return None
    value = header.strip()
    if value == "*":
        return None
    value = value.removeprefix("W/").strip('"')
    try:
        return int(value.rsplit(".", 1)[-1])
    except ValueError:
        raise PreconditionFailed(
            f"If-Match {header!r} is not an ETag this API issued", detail={"header": "If-Match"}
        ) from None


# ------------------------------------------------------------------------------- lineage queries

NodeId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
NodeText = Annotated[str | None, Query(min_length=1, max_length=1024)]
AsOf = Annotated[
    str | None,
    Query(
        max_length=64,
        description="ISO 8601 time: the graph as it was known then (first seen by then, not yet retired).",
    ),
]
Types = Annotated[
    list[Literal["DIRECT", "INDIRECT"]] | None, Query(description="Follow only these transformation types.")
]
Origins = Annotated[
    list[Literal["openlineage", "sql", "job", "manual"]] | None, Query(description="Follow only edges known this way.")
]
_NODE_QUERY: tuple[tuple[str, Any], ...] = (
    ("dataset_id", NodeId),
    ("field_id", NodeId),
    ("namespace", NodeText),
    ("name", NodeText),
    ("field", NodeText),
)


@dataclass(frozen=True)
class NodeParams:
    """A lineage node as a request names it: by dataset or field id, or by namespace and name (and field path)."""

    dataset_id: int | None
    field_id: int | None
    namespace: str | None
    name: str | None
    field_path: str | None
    label: str


def node_params(label: str = "") -> Callable[..., NodeParams]:
    """A dependency reading a node's query parameters, each prefixed ``{label}_`` when labelled (``from_name``)."""
    prefix = f"{label}_" if label else ""

    def read(**values: Any) -> NodeParams:
        dataset_id, field_id, namespace, name, field = (values[prefix + key] for key, _ in _NODE_QUERY)
        return NodeParams(dataset_id, field_id, namespace, name, field, label)

    # FastAPI reads the parameters from the signature: one spelling serves the graph, impact and path queries.
    read.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(prefix + name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
            for name, annotation in _NODE_QUERY
        ],
        return_annotation=NodeParams,
    )
    read.__name__ = f"{prefix}node"
    return read


@dataclass(frozen=True)
class WalkFilterParams:
    """Which edges a lineage walk may follow, as a request gives them (``as_of`` still unparsed)."""

    as_of: str | None = None
    include_retired: bool = False
    transformation_types: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()


def walk_filter_params(
    as_of: AsOf = None, include_retired: bool = False, transformation_type: Types = None, origin: Origins = None
) -> WalkFilterParams:
    """The edge filters of the graph and impact queries."""
    return WalkFilterParams(as_of, include_retired, tuple(transformation_type or ()), tuple(origin or ()))


def as_of_params(as_of: AsOf = None, include_retired: bool = False) -> WalkFilterParams:
    """The edge filters of the path query: time only."""
    return WalkFilterParams(as_of, include_retired)
