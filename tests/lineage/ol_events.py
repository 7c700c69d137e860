"""Builders of OpenLineage 2.x event documents for the lineage tests (plain JSON, as producers send them)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

PRODUCER = "https://github.com/OpenLineage/OpenLineage/tree/1.30.0/integration/spark"
RUN_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
BASE = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes: float) -> str:
    """An event time ``minutes`` after a fixed base time."""
    return (BASE + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def schema(*columns: str | tuple[str, str]) -> dict[str, Any]:
    """A schema facet from column names (type string) or (name, type) pairs."""
    fields = [{"name": c, "type": "string"} if isinstance(c, str) else {"name": c[0], "type": c[1]} for c in columns]
    return {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json",
        "fields": fields,
    }


def column_lineage(
    mapping: dict[str, list[tuple[str, str, str]]],
    *,
    subtype: str = "IDENTITY",
    kind: str = "DIRECT",
    dataset: list[tuple[str, str, str, str]] | None = None,
) -> dict[str, Any]:
    """A columnLineage facet: output field -> [(namespace, name, field)], plus dataset-wide (ns, name, field, subtype)."""
    return {
        "_producer": PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
        "fields": {
            out: {
                "inputFields": [
                    {"namespace": ns, "name": name, "field": f, "transformations": [{"type": kind, "subtype": subtype}]}
                    for ns, name, f in inputs
                ]
            }
            for out, inputs in mapping.items()
        },
        "dataset": [
            {"namespace": ns, "name": name, "field": f, "transformations": [{"type": "INDIRECT", "subtype": sub}]}
            for ns, name, f, sub in dataset or []
        ],
    }


def dataset(namespace: str, name: str, **facets: Any) -> dict[str, Any]:
    """An input or output dataset with facets."""
    return {"namespace": namespace, "name": name, "facets": facets}


def run_event(
    event_type: str | None,
    *,
    job: str,
    run_id: str | None = None,
    minutes: float = 0,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
    parent: tuple[str, str] | None = None,
    job_namespace: str = "spark",
    job_facets: dict[str, Any] | None = None,
    producer: str = PRODUCER,
) -> dict[str, Any]:
    """A RunEvent document; ``parent`` is (parent job name, parent run id)."""
    run_facets: dict[str, Any] = {}
    if parent:
        run_facets["parent"] = {
            "_producer": producer,
            "_schemaURL": "https://openlineage.io/spec/facets/1-1-0/ParentRunFacet.json",
            "run": {"runId": parent[1]},
            "job": {"namespace": job_namespace, "name": parent[0]},
        }
    event: dict[str, Any] = {
        "eventTime": at(minutes),
        "producer": producer,
        "schemaURL": RUN_SCHEMA,
        "run": {"runId": run_id or str(uuid.uuid4()), "facets": run_facets},
        "job": {"namespace": job_namespace, "name": job, "facets": job_facets or {}},
        "inputs": inputs or [],
        "outputs": outputs or [],
    }
    if event_type is not None:
        event["eventType"] = event_type
    return event
