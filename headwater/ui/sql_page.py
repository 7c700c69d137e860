"""The SQL lineage page (``/ui/sql``): paste a statement, see for each output column the columns it comes from and
the warnings of what could not be resolved (a table the catalog does not know, or that is restricted from the
reader, a column that could be several tables'), as ``POST /api/v1/lineage/sql`` answers them. It records
nothing (``apply`` is the API's), so the form is a GET and its URL can be shared."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from headwater.api.auth import allow, principal_of
from headwater.api.deps import SessionDep
from headwater.auth.actions import Action
from headwater.auth.policy import audience_of
from headwater.lineage.analyse import analyse_sql
from headwater.lineage.schemas import SqlLineageIn
from headwater.lineage.sql import DIALECTS
from headwater.ui.forms import checked
from headwater.ui.routes import _page, html_errors

__all__ = ["sql_router"]

sql_router = APIRouter(include_in_schema=False)
MAX_URL_SQL = 6_000  # a GET form: longer SQL belongs in the API (POST /api/v1/lineage/sql)


@sql_router.get("/ui/sql", response_class=HTMLResponse, dependencies=[allow(Action.LINEAGE_READ)])
@html_errors()
def sql_page(request: Request, session: SessionDep) -> Response:
    """The form, and the column lineage of ``sql`` (``dialect``, ``namespace``) when one is given."""
    params = request.query_params
    text = params.get("sql") or ""
    too_long = len(text) > MAX_URL_SQL
    form = {
        "sql": text[:MAX_URL_SQL],
        "dialect": params.get("dialect") or "spark",
        "namespace": params.get("namespace") or "",
    }
    answer = None
    if text.strip() and not too_long:
        namespace = form["namespace"].strip() or None
        data = checked(SqlLineageIn, {"sql": text, "dialect": form["dialect"], "namespace": namespace})
        answer = analyse_sql(session, data=data, audience=audience_of(principal_of(request)))
    return _page("sql.html", form=form, dialects=list(DIALECTS), answer=answer, too_long=too_long)
