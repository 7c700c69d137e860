"""The SQL of a Spark SQL or Flink SQL job, found in its command line, as lineage of the job's run.

A job is a SQL job when its command's program is a SQL front-end of its cluster's engine and its arguments
carry the SQL, the way people run SQL on these engines:

* Spark clusters, ``spark-sql``: ``-e "<sql>"`` or ``-f <file.sql>``;
* Flink clusters, ``flink-sql`` (Headwater's SQL-script runner on PyFlink): ``-e "<sql>"`` or ``-f <file.sql>``.

A relative ``-f`` path is read from the job's working directory (where attachments land); at most
``MAX_SQL_BYTES`` are read. The script is split into statements; those that carry column lineage (INSERT,
CREATE TABLE ... AS, CREATE VIEW ... AS, MERGE) are analysed with :mod:`headwater.lineage.sql` (dialect
``spark`` or ``flink``), the others (SET, DDL without a query) are left out. Table names resolve as that module
resolves them: the job's declared datasets first, then the catalog (only in the cluster's ``lineage_namespace``
when its config sets one), else they are recorded under that namespace (``unknown`` without one).

The result is what the worker's COMPLETE event of the run carries: the tables read as inputs, the tables
written as outputs, and the kept statements as the job's ``sql`` facet, from which ingestion derives the
column edges (provenance origin ``sql``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from headwater.lineage.sql import DIALECTS, SqlLineageError, lineage_of_sql

__all__ = ["MAX_SQL_BYTES", "JobSql", "JobSqlError", "SqlJobLineage", "find_job_sql", "sql_job_lineage"]

log = logging.getLogger("headwater.jobs.sql_lineage")

MAX_SQL_BYTES = 1_000_000
# Cluster type -> (SQL front-end programs, the lineage dialect of their SQL).
SQL_FRONT_ENDS: dict[str, tuple[frozenset[str], str]] = {
    "spark": (frozenset({"spark-sql"}), "spark"),
    "flink": (frozenset({"flink-sql"}), "flink"),
}
_LINEAGE_KINDS = {"insert", "create_table_as", "create_view", "merge", "update"}
Identity = tuple[str, str]


class JobSqlError(Exception):
    """The job names SQL that cannot be read (a missing or oversized file)."""


@dataclass(frozen=True)
class JobSql:
    """The SQL a job runs, and the dialect it is written in."""

    query: str
    dialect: str


@dataclass
class SqlJobLineage:
    """What a SQL job's run read and wrote, and the statements its column lineage comes from."""

    inputs: list[Identity] = field(default_factory=list)
    outputs: list[Identity] = field(default_factory=list)
    query: str = ""
    warnings: list[str] = field(default_factory=list)


def find_job_sql(
    *, cluster_type: str, command: Sequence[str], args: Sequence[str], work_dir: Path | None
) -> JobSql | None:
    """The SQL of a job whose command is a SQL front-end (``-e`` text, ``-f`` files in order); None otherwise."""
    front_ends = SQL_FRONT_ENDS.get(cluster_type)
    if not command or front_ends is None or Path(command[0]).name not in front_ends[0]:
        return None
    argv = [*command[1:], *args]
    parts: list[str] = []
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag in {"-e", "--execute"}:
            parts.append(value)
        elif flag in {"-f", "--file"}:
            parts.append(_read_sql_file(value, work_dir))
    if not parts:
        return None
    return JobSql(query=";\n".join(part.strip().rstrip(";") for part in parts), dialect=front_ends[1])


def _read_sql_file(value: str, work_dir: Path | None) -> str:
    path = Path(value.removeprefix("file://"))
    if not path.is_absolute() and work_dir is not None:
        path = work_dir / path
    try:
        size = path.stat().st_size
        if size > MAX_SQL_BYTES:
            raise JobSqlError(f"SQL file {value!r} holds {size} bytes; at most {MAX_SQL_BYTES} are analysed")
        return path.read_text(errors="replace")
    except OSError as exc:
        raise JobSqlError(f"SQL file {value!r} cannot be read: {exc.strerror or exc}") from None


def split_statements(sql: str, dialect: str) -> list[str]:
    """The statements of a script, cut at top-level semicolons by sqlglot's tokenizer (quotes are respected)."""
    try:
        tokens = Dialect.get_or_raise(DIALECTS[dialect]).tokenize(sql)
    except TokenError:
        return [sql]
    statements: list[str] = []
    start = 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append(sql[start : token.start])
            start = token.end + 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if s.strip()]


def sql_job_lineage(
    session: Session, *, job_sql: JobSql, namespace: str | None, declared: Sequence[Identity]
) -> SqlJobLineage:
    """The tables a SQL job read and wrote; statements that cannot be analysed become warnings, not failures."""
    result = SqlJobLineage()
    kept: list[str] = []
    for number, statement in enumerate(split_statements(job_sql.query, job_sql.dialect), start=1):
        try:
            lineages = lineage_of_sql(
                session, sql=statement, dialect=job_sql.dialect, namespace=namespace, known_datasets=declared
            )
        except SqlLineageError as exc:
            result.warnings.append(f"SQL statement {number}: {exc.message}")
            continue
        except Exception:  # an analysis bug must not keep the job from ending: its lineage is a bonus
            log.exception("column lineage of SQL statement %s failed", number)
            result.warnings.append(f"SQL statement {number} could not be analysed (see the server log)")
            continue
        useful = [item for item in lineages if item.kind in _LINEAGE_KINDS and item.target is not None]
        if not useful:
            continue
        kept.append(statement)
        for item in useful:
            assert item.target is not None
            result.outputs.append(item.target)
            result.inputs.extend(item.inputs)
    result.inputs = list(dict.fromkeys(result.inputs))
    result.outputs = list(dict.fromkeys(result.outputs))
    result.query = ";\n".join(kept)
    return result
