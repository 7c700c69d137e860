"""Connectors to the systems Headwater federates, found by source kind.

Each connector lives in its own module and imports its client library only when it runs, so the
registry, every connector's pydantic ``Config`` and config validation work without the optional
extras; opening a connector whose library is missing raises :class:`ConnectorNotInstalled` naming the
pip extra (``pip install 'headwater[iceberg]'``).

Secrets: connectors receive them resolved; which references may resolve, how they are stored encrypted and
how messages are scrubbed of them is :mod:`headwater.secrets`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from headwater.catalog.connectors.base import (
    Connector,
    ConnectorConfig,
    ConnectorError,
    ConnectorNotInstalled,
    InvalidSourceConfig,
)
from headwater.catalog.connectors.listing import DatasetRef, ListingPage, LoadedDataset, Unmodified
from headwater.egress import EgressPolicy, default_policy

__all__ = [
    "CONNECTORS",
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "ConnectorNotInstalled",
    "DatasetRef",
    "InvalidSourceConfig",
    "ListingPage",
    "LoadedDataset",
    "Unmodified",
    "connector_class",
    "check_egress",
    "endpoint_changes",
    "has_connector",
    "open_connector",
    "validate_config",
]

# kind -> "module:Class". Connector modules import their client libraries lazily, so importing one is cheap.
CONNECTORS: dict[str, str] = {
    "hive": "headwater.catalog.connectors.hive:HiveConnector",
    "iceberg": "headwater.catalog.connectors.iceberg:IcebergConnector",
    "kafka": "headwater.catalog.connectors.kafka:KafkaConnector",
    "postgres": "headwater.catalog.connectors.postgres:PostgresConnector",
}


def has_connector(kind: str) -> bool:
    """Whether sources of ``kind`` can be synced."""
    return kind in CONNECTORS


def connector_class(kind: str) -> type[Connector]:
    """The connector class for a source kind (its dependencies are checked when it is opened)."""
    target = CONNECTORS.get(kind)
    if target is None:
        known = ", ".join(sorted(CONNECTORS))
        raise InvalidSourceConfig(
            f"sources of kind {kind!r} have no connector and cannot be synced (connectors: {known})",
            detail={"field": "kind"},
        )
    module_name, _, class_name = target.partition(":")
    cls: type[Connector] = getattr(importlib.import_module(module_name), class_name)
    return cls


def _require(cls: type[Connector]) -> None:
    missing = [module for module in cls.requires if importlib.util.find_spec(module) is None]
    if missing:
        raise ConnectorNotInstalled(
            f"the {cls.kind} connector needs {', '.join(missing)}, which is not installed: "
            f"pip install 'headwater[{cls.extra}]'",
            detail={"extra": cls.extra, "missing": missing},
        )


def _field_of(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in ("config", *error.get("loc", ())))


def validate_config(kind: str, config: Mapping[str, Any]) -> ConnectorConfig | None:
    """The parsed config of a source of ``kind`` (None for kinds without a connector, e.g. manual).

    Raises InvalidSourceConfig (422) naming the first offending field, e.g. ``config.uri``.
    """
    if not has_connector(kind):
        return None
    cls = connector_class(kind)
    try:
        return cls.Config.model_validate(dict(config))
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        where = _field_of(first)
        message = "is not a known field" if first["type"] == "extra_forbidden" else first["msg"]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise InvalidSourceConfig(
            f"{where}: {message} (for a {kind} source){more}",
            detail={"field": where, "errors": [{"field": _field_of(e), "message": e["msg"]} for e in errors[:20]]},
        ) from None


def endpoint_changes(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The endpoint keys (``config.uri``...) that differ between two configs of a ``kind`` source.

    A stored config that no longer validates counts as changed in every endpoint key.
    """
    if not has_connector(kind):
        return []
    cls = connector_class(kind)
    after = cls.endpoint_of(cls.Config.model_validate(dict(new)))
    try:
        before = cls.endpoint_of(cls.Config.model_validate(dict(old)))
    except ValidationError:
        return [f"config.{key}" for key in cls.endpoint_keys]
    return [f"config.{key}" for key in cls.endpoint_keys if before[key] != after[key]]


def check_egress(kind: str, config: Mapping[str, Any], policy: EgressPolicy | None = None) -> None:
    """Refuse (EgressRefused, 422) a source config whose endpoints or files the egress policy does not allow."""
    parsed = validate_config(kind, config)
    if parsed is not None:
        connector_class(kind).check_egress(parsed, policy or default_policy())


def open_connector(
    *,
    kind: str,
    source_name: str,
    namespace: str,
    config: Mapping[str, Any],
    secrets: Mapping[str, str],
    egress: EgressPolicy | None = None,
) -> Connector:
    """A ready connector for a source: dependencies checked, config validated, its endpoints checked against the
    egress policy (``egress``, else the process's); ``secrets`` are resolved values."""
    cls = connector_class(kind)
    _require(cls)
    parsed = validate_config(kind, config)
    policy = egress or default_policy()
    cls.check_egress(parsed, policy)
    return cls(source_name=source_name, namespace=namespace, config=parsed, secrets=secrets, egress=policy)
