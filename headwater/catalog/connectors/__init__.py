"""Connectors to the systems Headwater federates, found by source kind.

Each connector lives in its own module and imports its client library only when it runs, so the
registry, every connector's pydantic ``Config`` and config validation work without the optional
extras; opening a connector whose library is missing raises :class:`ConnectorNotInstalled` naming the
pip extra (``pip install 'headwater[iceberg]'``).

Secrets: a source's ``secrets`` values are literal, or references resolved at sync time —
``env:VAR`` (an environment variable) or ``file:/path`` (a file's content, trailing newline removed).
``literal:...`` keeps a value that itself starts with ``env:`` or ``file:``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from headwater.catalog.connectors.base import (
    Connector,
    ConnectorConfig,
    ConnectorError,
    ConnectorNotInstalled,
    DatasetRef,
    InvalidSourceConfig,
    ListingPage,
    LoadedDataset,
)

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
    "connector_class",
    "has_connector",
    "open_connector",
    "resolve_secrets",
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


def resolve_secrets(secrets: Mapping[str, str]) -> dict[str, str]:
    """Secret values with ``env:`` and ``file:`` references replaced by what they point at."""
    resolved: dict[str, str] = {}
    for key, value in secrets.items():
        if value.startswith("env:"):
            variable = value[4:]
            if variable not in os.environ:
                raise ConnectorError(
                    f"secret {key!r} refers to environment variable {variable!r}, which is not set",
                    detail={"field": f"secrets.{key}"},
                )
            resolved[key] = os.environ[variable]
        elif value.startswith("file:"):
            path = Path(value[5:])
            try:
                resolved[key] = path.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConnectorError(
                    f"secret {key!r} refers to file {str(path)!r}, which cannot be read: {exc.strerror}",
                    detail={"field": f"secrets.{key}"},
                ) from None
        else:
            resolved[key] = value.removeprefix("literal:")
    return resolved


def open_connector(
    *, kind: str, source_name: str, namespace: str, config: Mapping[str, Any], secrets: Mapping[str, str]
) -> Connector:
    """A ready connector for a source: dependencies checked, config validated, secrets resolved."""
    cls = connector_class(kind)
    _require(cls)
    parsed = validate_config(kind, config)
    return cls(source_name=source_name, namespace=namespace, config=parsed, secrets=resolve_secrets(secrets))
