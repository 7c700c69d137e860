"""The connector interface every federated system implements, and the errors connectors raise (the records
its steps return are in :mod:`headwater.catalog.connectors.listing`).

A connector reads one source in two steps, so a sync can be incremental:

1. :meth:`Connector.list_pages` yields pages of :class:`DatasetRef` — the name of each dataset plus a
   cheap *version* token (an Iceberg table's metadata location, a hash of a PostgreSQL table's catalog
   rows) that changes whenever the dataset's metadata does. The engine compares it with the version it
   stored at the last sync and loads only what changed.
2. :meth:`Connector.load` reads one dataset fully into a :class:`LoadedDataset`: the
   :class:`~headwater.catalog.snapshots.DatasetSnapshot` of its current state, with earlier schemas (oldest
   first) in ``snapshot.schema_history`` where the source keeps them. A source whose listing has no cheap
   token may still answer a *conditional* read: the engine hands such a dataset's stored token over in
   ``ref.stored_version`` and the connector answers :class:`Unmodified` when it still holds.

A listing is *complete* only when ``list_pages`` ran to its end and no page reported a part of the
source it could not list (``ListingPage.unlisted``). An exception from ``list_pages`` (source down, a
page that errors, wrong credentials) or any ``unlisted`` entry makes it partial, and a partial listing
never deletes anything.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from headwater.catalog.connectors.listing import DatasetRef, ListingPage, LoadedDataset, Unmodified
from headwater.egress import EgressPolicy, default_policy
from headwater.errors import HeadwaterError

__all__ = [
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "ConnectorNotInstalled",
    "InvalidSourceConfig",
    "unreachable",
]

DEFAULT_PAGE_SIZE = 200
log = logging.getLogger("headwater.catalog.connectors")


class ConnectorError(HeadwaterError, status_code=502, code="source_error"):
    """The source could not be read: unreachable, refused the credentials, or answered nonsense."""


def unreachable(where: str, exc: BaseException | None = None) -> ConnectorError:
    """The one error a source that cannot be reached gives, whatever the cause (refused, timed out, reset, not
    speaking the protocol): an API caller must not learn from it whether a port is open. The cause is logged
    (its type only: a library's message may quote the credentials)."""
    if exc is not None:
        log.info("could not reach %s: %s", where, type(exc).__name__)
    return ConnectorError(f"could not reach {where}", detail={"reason": "unreachable"})


class ConnectorNotInstalled(HeadwaterError, status_code=501, code="connector_not_installed"):
    """The connector's optional dependencies are missing; the message names the pip extra to install."""


class InvalidSourceConfig(HeadwaterError, status_code=422, code="validation_error"):
    """A source's config does not validate against its connector's Config; the message names the field."""


class ConnectorConfig(BaseModel):
    """Settings shared by every connector's config; each connector subclasses it (unknown keys refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sync_interval_seconds: int | None = Field(
        default=None,
        ge=10,
        le=7 * 86_400,
        description="Sync this source periodically inside the server, every so many seconds (off when unset).",
    )
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=5000, description="Datasets per listing page.")


class Connector(abc.ABC):
    """Reads one source's metadata. Subclasses set ``kind``, ``Config``, ``extra``, ``requires`` and
    ``endpoint_keys``.

    Instances are built by :func:`headwater.catalog.connectors.open_connector`, which checks the
    optional dependencies and validates the config; the secrets it hands over are already resolved.
    """

    kind: ClassVar[str]
    Config: ClassVar[type[ConnectorConfig]]
    extra: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    # The Config fields that say where (and how) the source's credentials are sent: changing one of them
    # requires the secrets again, so credentials never follow a source to an endpoint they were not set for.
    endpoint_keys: ClassVar[tuple[str, ...]]

    @classmethod
    def endpoint_of(cls, config: ConnectorConfig) -> dict[str, Any]:
        """The endpoint-naming parts of a parsed config."""
        return {key: getattr(config, key) for key in cls.endpoint_keys}

    @classmethod
    def check_egress(cls, config: Any, policy: EgressPolicy) -> None:
        """Refuse (EgressRefused) a config whose endpoints or local files the egress policy does not allow.
        Connectors whose client library resolves names itself are checked here, before it connects."""
        return None

    def __init__(
        self,
        *,
        source_name: str,
        namespace: str,
        config: Any,
        secrets: Mapping[str, str],
        egress: EgressPolicy | None = None,
    ) -> None:
        self.source_name = source_name
        self.namespace = namespace
        self.config = config
        self.secrets = dict(secrets)
        self.egress = egress or default_policy()

    @abc.abstractmethod
    def check(self) -> None:
        """Connect and authenticate; raises ConnectorError saying what failed."""

    @abc.abstractmethod
    def list_pages(self) -> Iterator[ListingPage]:
        """Every dataset of the source, page by page, with version tokens; raises ConnectorError on failure."""

    @abc.abstractmethod
    def load(self, ref: DatasetRef) -> LoadedDataset | Unmodified:
        """Read one dataset fully (or answer Unmodified when ``ref.stored_version`` still holds); raises
        ConnectorError when it cannot be read."""

    def load_many(
        self, refs: Sequence[DatasetRef]
    ) -> Iterator[tuple[DatasetRef, LoadedDataset | Unmodified | ConnectorError]]:
        """Read several datasets; one that fails yields its error instead. Override to batch reads."""
        for ref in refs:
            try:
                yield ref, self.load(ref)
            except ConnectorError as exc:
                yield ref, exc

    def close(self) -> None:
        """Release connections and forget the resolved secrets; subclasses call this last."""
        self.secrets.clear()

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
