"""What a connector's two steps return (:mod:`headwater.catalog.connectors.base`): the pages of a listing, each
dataset found with its version token, and a dataset read fully."""

from __future__ import annotations

from dataclasses import dataclass, field

from headwater.catalog.models import DatasetKind
from headwater.catalog.snapshots import DatasetSnapshot

__all__ = ["DatasetRef", "ListingPage", "LoadedDataset"]


@dataclass(frozen=True)
class DatasetRef:
    """One dataset a listing found: its OpenLineage identity and a cheap version token (None: unknown)."""

    namespace: str
    name: str
    version: str | None = None
    kind: DatasetKind = DatasetKind.TABLE


@dataclass
class ListingPage:
    """One page of a listing; ``unlisted`` names parts of the source that could not be listed."""

    refs: list[DatasetRef]
    unlisted: list[str] = field(default_factory=list)


@dataclass
class LoadedDataset:
    """One dataset read fully: its snapshot and the version token to store beside it."""

    snapshot: DatasetSnapshot
    version: str | None = None
