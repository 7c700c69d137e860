"""What a connector's two steps return (:mod:`headwater.catalog.connectors.base`): the pages of a listing, each
dataset found with its version token, a dataset read fully, and the answer of a conditional read that found the
dataset unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field

from headwater.catalog.models import DatasetKind
from headwater.catalog.snapshots import DatasetSnapshot

__all__ = ["DatasetRef", "ListingPage", "LoadedDataset", "Unmodified"]


@dataclass(frozen=True)
class DatasetRef:
    """One dataset a listing found: its OpenLineage identity and a cheap version token (None: unknown).

    ``stored_version`` is set by the sync engine, not the listing: the token stored at the last sync of a
    dataset the listing gave no token for, so a connector whose source answers conditional reads (an Iceberg
    REST catalog's ``If-None-Match``) can answer :class:`Unmodified` without reading the dataset again.
    """

    namespace: str
    name: str
    version: str | None = None
    kind: DatasetKind = DatasetKind.TABLE
    stored_version: str | None = None


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


@dataclass(frozen=True)
class Unmodified:
    """A conditional read's answer: the dataset is as its stored version says; ``version`` is the token to keep."""

    version: str
