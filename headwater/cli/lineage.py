"""``headwater lineage ...``: column lineage of a SQL file against the catalog, and impact from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from headwater.cli.common import console, friendly_errors, load_settings, open_session
from headwater.errors import InvalidInput
from headwater.lineage.analyse import analyse_sql
from headwater.lineage.schemas import SqlLineageIn

__all__ = ["lineage_app"]

lineage_app = typer.Typer(help="Column-level lineage: parse SQL, ask what a change would break.", no_args_is_help=True)


@lineage_app.command("parse")
@friendly_errors
def parse(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A SQL file.")],
    dialect: Annotated[str, typer.Option(help="spark, hive, flink, trino or postgres.")] = "spark",
    namespace: Annotated[str | None, typer.Option(help="OpenLineage namespace of the tables the SQL names.")] = None,
    default_schema: Annotated[str | None, typer.Option(help="Database of unqualified table names.")] = None,
    apply: Annotated[bool, typer.Option("--apply", help="Record the lineage found as edges (origin 'sql').")] = False,
    job: Annotated[str | None, typer.Option(help="Job name the recorded edges belong to.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Column lineage of FILE's statements, with the catalog's schemas expanding SELECT *."""
    if dialect not in ("spark", "hive", "flink", "trino", "postgres"):
        raise InvalidInput(f"dialect {dialect!r} is not one of spark, hive, flink, trino, postgres")
    data = SqlLineageIn(
        sql=file.read_text(encoding="utf-8"),
        dialect=dialect,
        namespace=namespace,
        default_schema=default_schema,
        apply=apply,
        job_name=job,
    )
    with open_session(load_settings()) as session:
        out = analyse_sql(session, data=data)
    if as_json:
        print(json.dumps(out.model_dump(mode="json"), indent=2))
        return
    for number, statement in enumerate(out.statements, start=1):
        target = f"{statement.target['namespace']}/{statement.target['name']}" if statement.target else "(query)"
        table = Table(title=f"statement {number}: {statement.kind} -> {target}")
        for column in ("column", "input", "type", "subtype"):
            table.add_column(column)
        for item in statement.columns:
            for source in item.inputs or [{}]:
                table.add_row(
                    item.field,
                    f"{source.get('namespace', '')}/{source.get('name', '')}.{source.get('field', '')}"
                    if source
                    else "-",
                    source.get("type", ""),
                    source.get("subtype", ""),
                )
        for source in statement.dataset_inputs:
            table.add_row(
                "(all)",
                f"{source['namespace']}/{source['name']}.{source['field']}",
                source["type"],
                source["subtype"],
            )
        console.print(table)
        for warning in statement.warnings:
            console.print(f"[yellow]warning:[/] {warning}")
    if apply:
        console.print(f"Recorded {out.applied_edges} column edge(s).")
