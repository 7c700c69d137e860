"""``headwater datasets``: browse the catalog's datasets from the shell."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from headwater.catalog import service
from headwater.catalog.models import DatasetKind
from headwater.catalog.schemas import DatasetOut, DatasetSummary
from headwater.cli.common import (
    CursorOption,
    JsonOption,
    JsonTableOption,
    LimitOption,
    console,
    fail,
    friendly_errors,
    load_settings,
    open_session,
    print_page,
)

__all__ = ["datasets_app"]

datasets_app = typer.Typer(help="Browse the catalog's datasets.", no_args_is_help=True)
DatasetIdArgument = Annotated[int | None, typer.Argument(help="Dataset id.")]


@datasets_app.command("list")
@friendly_errors
def datasets_list(
    source: Annotated[str | None, typer.Option(help="Source name.")] = None,
    namespace: Annotated[str | None, typer.Option(help="OpenLineage namespace.")] = None,
    kind: Annotated[DatasetKind | None, typer.Option(help="Dataset kind.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only datasets with this tag.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only datasets with this owner.")] = None,
    prefix: Annotated[str | None, typer.Option(help="Name prefix.")] = None,
    limit: LimitOption = 50,
    cursor: CursorOption = None,
    as_json: JsonTableOption = False,
) -> None:
    """List datasets, filtered, one page at a time."""
    filters = service.DatasetFilters(
        source=source, namespace=namespace, kind=kind, tag=tag, owner=owner, name_prefix=prefix
    )
    with open_session(load_settings()) as session:
        page = service.list_datasets(session, filters=filters, cursor=cursor, limit=limit)
        items = [DatasetSummary.summary_of(d).model_dump(mode="json") for d in page.items]
    print_page(page, items, as_json, "dataset(s)", "id, namespace, name, kind, fields, tags, owners", _dataset_row)


def _dataset_row(item: dict[str, Any]) -> tuple[str, ...]:
    owners = ", ".join(o["name"] for o in item["owners"])
    return (
        str(item["id"]),
        item["namespace"],
        item["name"],
        item["kind"],
        str(item["field_count"]),
        ", ".join(item["tags"]),
        owners,
    )


@datasets_app.command("show")
@friendly_errors
def datasets_show(
    dataset_id: DatasetIdArgument = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace (with --name, instead of an id).")] = None,
    name: Annotated[str | None, typer.Option(help="Name (with --namespace).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show one dataset, its fields and its metadata."""
    if dataset_id is None and not (namespace and name):
        raise fail("give a dataset id, or --namespace and --name")
    with open_session(load_settings()) as session:
        if dataset_id is not None:
            dataset = service.get_dataset(session, dataset_id=dataset_id)
        else:
            assert namespace and name
            dataset = service.get_dataset_by_name(session, namespace=namespace, name=name)
        out = DatasetOut.of(dataset)
    if as_json:
        print(out.model_dump_json(indent=2))
        return
    console.print(f"[bold]{out.name}[/]  ({out.kind.value}, id {out.id})")
    console.print(f"namespace: {out.namespace}   source: {out.source} ({out.source_kind.value})")
    for label, value in (
        ("format", out.format),
        ("location", out.location),
        ("description", out.description or out.source_description),
        ("tags", ", ".join(out.tags)),
        ("owners", ", ".join(f"{o.name} ({o.role})" for o in out.owners)),
        ("schema version", out.schema_version),
    ):
        if value:
            console.print(f"{label}: {value}")
    table = Table(title=f"{len(out.fields)} field(s)")
    for column in ("path", "type", "nullable", "tags", "description"):
        table.add_column(column)
    for f in out.fields:
        table.add_row(
            f.path,
            f.type,
            "yes" if f.nullable else "no",
            ", ".join(f.tags),
            f.description or f.source_description or "",
        )
    console.print(table)
