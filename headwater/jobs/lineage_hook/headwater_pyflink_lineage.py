"""Headwater's PyFlink lineage hook: every SQL statement or Table API write the client process runs is appended,
as a statement record, to the file ``$HEADWATER_JOB_LINEAGE_FILE``, which the worker reads when the job ends and
turns into lineage with the SQL lineage that ``flink-sql`` jobs get (:mod:`headwater.jobs.statement_lineage`).

Wrapped (when pyflink imports them): ``TableEnvironment.execute_sql`` (INSERT, CREATE, REPLACE and EXECUTE
STATEMENT SET statements; queries, SHOW, SET and the like are not recorded), ``TableEnvironment.sql_query`` (its
Table remembers its SQL), ``TableEnvironment.create_temporary_view`` (of a Table), ``Table.execute_insert``,
``StatementSet.add_insert_sql`` / ``add_insert`` / ``execute`` and ``TableResult.wait``. A Table not made by
``sql_query`` is described by Flink's own SQL rendering of its operation tree (``asSerializableString``).

A record is written before the statement runs (START, with its SQL) and when its end is known (COMPLETE or FAIL,
with the error): at once for DDL, at submission for a failed submission, at ``TableResult.wait`` for a submitted
INSERT. An INSERT nobody waits for ends as the job ends. Records are not OpenLineage events: parsing, naming and
column lineage happen in Headwater, with its catalog (docs/adr/0008-pyflink-lineage-hook.md).

Standard library only, and defensive: nothing here may fail or change the user's job.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from typing import Any

try:  # in a PyFlink client: this directory is on PYTHONPATH, without the headwater package
    from headwater_hook_support import append_records, now, patch_on_import, warn  # type: ignore[import-not-found]
except ImportError:  # imported as part of the headwater package (tools and tests walking it)
    from headwater.jobs.lineage_hook.headwater_hook_support import append_records, now, patch_on_import, warn

__all__ = ["install"]

# Statements whose effect is a table, a view or data written; the rest (queries, SHOW, SET, USE) are not recorded.
_RECORDED = re.compile(r"^\s*(?:INSERT|CREATE|REPLACE|EXECUTE)\b", re.IGNORECASE)
_STATEMENT_SET = re.compile(r"^\s*EXECUTE\s+STATEMENT\s+SET\s+BEGIN\b(.*)\bEND\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_MAX_SQL = 200_000  # characters of one statement kept (the worker analyses at most 1 MB of SQL a run)
_MAX_ERROR = 2000


def install() -> None:
    """Wrap pyflink's statement and write paths (now if already imported, else when they are)."""
    patch_on_import(
        {
            "pyflink.table.table_environment": _patch_environment,
            "pyflink.table.statement_set": _patch_statement_set,
            "pyflink.table.table": _patch_table,
            "pyflink.table.table_result": _patch_result,
        }
    )


def _wrap(cls: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    original = getattr(cls, name, None) if cls is not None else None
    if original is None or getattr(original, "_headwater", False):
        return
    wrapper = functools.wraps(original)(make(original))
    wrapper._headwater = True  # type: ignore[attr-defined]
    setattr(cls, name, wrapper)


# ------------------------------------------------------------------------------------------- records


def _start(api: str, statements: list[str]) -> str | None:
    """Record that ``statements`` are about to run; the run's id (None when nothing was recorded)."""
    try:
        run_id = str(uuid.uuid4())
        sql = [s[:_MAX_SQL] for s in statements]
        append_records(
            [{"statement": {"runId": run_id, "eventType": "START", "eventTime": now(), "api": api, "sql": sql}}]
        )
        return run_id
    except Exception as exc:
        warn("recording a statement", exc)
        return None


def _end(run_id: str | None, error: BaseException | None) -> None:
    if run_id is None:
        return
    try:
        record: dict[str, Any] = {"runId": run_id, "eventType": "FAIL" if error else "COMPLETE", "eventTime": now()}
        if error is not None:
            # A Py4J error carries the Java stack trace: its messages are what tell the reader something.
            lines = [line for line in str(error).splitlines() if not line.startswith("\t")]
            record["error"] = "\n".join(lines)[:_MAX_ERROR] or type(error).__name__
        append_records([{"statement": record}])
    except Exception as exc:
        warn("recording a statement's end", exc)


def _run(api: str, statements: list[str] | None, call: Callable[[], Any]) -> Any:
    """Run ``call`` recorded as ``statements``: its end now if it failed or started no Flink job, else at wait()."""
    run_id = _start(api, statements) if statements else None
    try:
        result = call()
    except BaseException as exc:
        _end(run_id, exc)
        raise
    if run_id is not None:
        try:
            submitted = result.get_job_client() is not None
        except Exception:
            submitted = False
        if submitted:
            try:
                result._headwater_run = run_id  # ended by TableResult.wait, or by the job's end
            except Exception as exc:
                warn("following a submitted statement", exc)
        else:
            _end(run_id, None)
    return result


def _statements(stmt: Any) -> list[str] | None:
    """The statements of an ``execute_sql`` call worth recording (a statement set's inserts, unwrapped)."""
    if not isinstance(stmt, str) or not _RECORDED.match(stmt):
        return None
    block = _STATEMENT_SET.match(stmt)
    if block is None:
        return [stmt.strip()]
    return [part.strip() for part in block.group(1).split(";") if part.strip()]


def _table_sql(table: Any) -> str | None:
    """The SQL of a Table: the text ``sql_query`` was given, else Flink's rendering of its operation tree."""
    sql = getattr(table, "_headwater_sql", None)
    if isinstance(sql, str):
        return sql
    try:
        rendered = str(table._j_table.getQueryOperation().asSerializableString())
        env = table._t_env
        # Names as the job's SQL would write them: the current catalog and database are left implicit.
        prefix = f"`{env.get_current_catalog()}`.`{env.get_current_database()}`."
        # Its generated aliases ($$T_SOURCE, ...) are no identifiers to the SQL lineage's parser.
        return rendered.replace(prefix, "").replace("$$T", "hw_T")
    except Exception as exc:
        warn("rendering a Table as SQL", exc)
        return None


def _insert(target: Any, table: Any, overwrite: bool) -> str | None:
    if not isinstance(target, str):  # a TableDescriptor: an anonymous table, not named in any catalog
        return None
    sql = _table_sql(table)
    return f"INSERT {'OVERWRITE' if overwrite else 'INTO'} {target}\n{sql}" if sql else None


# ------------------------------------------------------------------------------------------- patches


def _patch_environment(module: Any) -> None:
    cls = getattr(module, "TableEnvironment", None)

    def execute_sql(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, stmt: str, *args: Any, **kwargs: Any) -> Any:
            return _run("execute_sql", _statements(stmt), lambda: original(self, stmt, *args, **kwargs))

        return wrapper

    def sql_query(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            table = original(self, query, *args, **kwargs)
            try:
                table._headwater_sql = query
            except Exception as exc:
                warn("remembering a query", exc)
            return table

        return wrapper

    def create_temporary_view(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, view_path: Any, table: Any, *args: Any, **kwargs: Any) -> Any:
            sql = None
            if isinstance(view_path, str) and not args and hasattr(table, "_j_table"):
                query = _table_sql(table)
                sql = [f"CREATE TEMPORARY VIEW {view_path} AS\n{query}"] if query else None
            return _run("create_temporary_view", sql, lambda: original(self, view_path, table, *args, **kwargs))

        return wrapper

    _wrap(cls, "execute_sql", execute_sql)
    _wrap(cls, "sql_query", sql_query)
    _wrap(cls, "create_temporary_view", create_temporary_view)


def _patch_statement_set(module: Any) -> None:
    cls = getattr(module, "StatementSet", None)

    def remember(statement_set: Any, sql: str | None) -> None:
        try:
            if not hasattr(statement_set, "_headwater_sql"):
                statement_set._headwater_sql = []
            statement_set._headwater_sql.append(sql)  # None: a write that cannot be described
        except Exception as exc:
            warn("remembering a statement set's statement", exc)

    def add_insert_sql(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, stmt: str, *args: Any, **kwargs: Any) -> Any:
            result = original(self, stmt, *args, **kwargs)
            remember(self, stmt.strip() if isinstance(stmt, str) else None)
            return result

        return wrapper

    def add_insert(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, target: Any, table: Any, overwrite: bool = False) -> Any:
            result = original(self, target, table, overwrite)
            remember(self, _insert(target, table, overwrite))
            return result

        return wrapper

    def execute(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            sql = [s for s in getattr(self, "_headwater_sql", None) or [] if s]
            return _run("statement_set", sql, lambda: original(self, *args, **kwargs))

        return wrapper

    _wrap(cls, "add_insert_sql", add_insert_sql)
    _wrap(cls, "add_insert", add_insert)
    _wrap(cls, "execute", execute)


def _patch_table(module: Any) -> None:
    cls = getattr(module, "Table", None)

    def execute_insert(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, target: Any, overwrite: bool = False) -> Any:
            sql = _insert(target, self, overwrite)
            return _run("execute_insert", [sql] if sql else None, lambda: original(self, target, overwrite))

        return wrapper

    _wrap(cls, "execute_insert", execute_insert)


def _patch_result(module: Any) -> None:
    cls = getattr(module, "TableResult", None)

    def wait(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            run_id = getattr(self, "_headwater_run", None)
            try:
                result = original(self, *args, **kwargs)
            except BaseException as exc:
                # A wait that timed out says nothing of the job: its end is still to come.
                if run_id is not None and "TimeoutException" not in repr(exc):
                    self._headwater_run = None
                    _end(run_id, exc)
                raise
            if run_id is not None:  # returned, with or without a timeout: the job has ended
                self._headwater_run = None
                _end(run_id, None)
            return result

        return wrapper

    _wrap(cls, "wait", wait)
