"""The search UI for people: server-rendered pages under ``/ui`` (search with facets, a dataset with its fields and
lineage, the impact of changing a dataset or column, recent jobs).

Pages are HTML rendered by Jinja2 with autoescaping, from the same domain functions the REST routes call; the only
script is search-as-you-type (``static/search.js``, loaded by ``base.html``). Nothing is fetched from another origin. A bad parameter or an
unknown dataset answers an HTML page with the message and a 4xx status, never a stack trace.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec
from urllib.parse import quote, urlencode

import anyio.from_thread
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from headwater.api.auth import allow, principal_of
from headwater.api.deps import SessionDep
from headwater.api.params import parse_id
from headwater.api.responses import challenge, unstorable_reason
from headwater.api.session import LOGIN_PATH, csrf_field, viewer
from headwater.auth.actions import Action
from headwater.auth.policy import Audience, Resource, audience_of, decide
from headwater.auth.principal import Principal
from headwater.catalog import restrictions
from headwater.catalog import service as catalog
from headwater.catalog import sources as catalog_sources
from headwater.catalog.access import dataset_resource
from headwater.catalog.schemas import OWNER_ROLES, DatasetSummary, SchemaVersionOut
from headwater.errors import HeadwaterError, InvalidInput, JobFilesUnavailable, NotFound
from headwater.jobs import job_files
from headwater.jobs import service as jobs
from headwater.jobs.access import job_owner, job_resource
from headwater.jobs.models import FINAL_STATUSES, JobStatus
from headwater.lineage import graph
from headwater.lineage import runs as lineage_service
from headwater.lineage.schemas import GraphOut, NodeOut
from headwater.search.base import FACETS, DocumentType, SearchQuery
from headwater.search.query_syntax import SYNTAX_HELP
from headwater.ui.picture import lineage_svg

__all__ = ["sign_in_link", "ui_router"]

ui_router = APIRouter(include_in_schema=False)
P = ParamSpec("P")

_templates = Environment(
    loader=PackageLoader("headwater.ui", "templates"), autoescape=select_autoescape(["html"]), auto_reload=False
)
_MARK = re.compile(r"(</?mark>)")
LINEAGE_DEPTH = 3
LINEAGE_BUDGET = 500
ROWS_SHOWN = 500
HISTORY_SHOWN = 10
COLUMN_DEPTH = 5
LOG_TAIL_BYTES = 16 * 1024


def marked(text: str | None) -> Markup:
    """A search highlight made safe: every character escaped except the ``<mark>`` tags around matched words. The
    backends send the rest escaped (SQL) or not (Elasticsearch); both are unescaped first, then escaped once."""
    if not text:
        return Markup("")
    pieces = _MARK.split(text)
    return Markup("".join(p if p in ("<mark>", "</mark>") else str(escape(html.unescape(p))) for p in pieces))


_templates.globals["marked"] = marked
_templates.globals["viewer"] = viewer  # who the page is for (the header), from the request's session
_templates.globals["csrf_field"] = csrf_field  # {{ csrf_field() }} in every form that POSTs


def _page(template: str, status_code: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(template).render(**context), status_code=status_code, headers=headers)


def _error_page(
    exc: HeadwaterError | DataError,
    q: str | None = None,
    session: Session | None = None,
    title: str | None = None,
    *,
    sign_in: str | None = None,
) -> HTMLResponse:
    """The page of a refusal: a domain error, or a value the database refused (a NUL character in a parameter).
    The request's transaction is rolled back first: a form refused halfway writes nothing. A 403 names the
    permission missing; ``sign_in`` (the sign-in page, when OIDC sign-in is configured) is linked to, for a visitor
    who must sign in (again)."""
    if session is not None:
        session.rollback()
    if isinstance(exc, DataError):
        exc = InvalidInput(f"a parameter holds a value the database cannot store: {unstorable_reason(exc)}")
    titles = {
        404: "Not found",
        400: "Cannot show that",
        401: "Not signed in",
        403: "Not allowed",
        409: "Changed meanwhile",
        412: "Changed meanwhile",
        428: "Cannot show that",
        503: "Unavailable",
    }
    permission = exc.detail.get("permission") if exc.status_code == 403 and isinstance(exc.detail, dict) else None
    return _page(
        "error.html",
        status_code=exc.status_code,
        headers=challenge(exc),
        title=title or titles.get(exc.status_code, "Error"),
        message=exc.message,
        q=q,
        permission=permission,
        sign_in=sign_in,
    )


def may(principal: Principal, action: Action, load: Callable[[], Resource]) -> bool:
    """Whether the page offers a form for ``action``: the one decision its POST route will make (roles first,
    then the thing's owners, loaded only when the roles do not decide)."""
    return decide(principal, action) or (principal.authenticated and decide(principal, action, load()))


def sign_in_link(request: Request, back_to: str | None = None) -> str | None:
    """Where a visitor signs in and comes back to ``back_to`` (default: this page); None when this server has no
    OIDC sign-in."""
    oidc = getattr(request.app.state, "oidc", None)
    if oidc is None or oidc.client_id is None:
        return None
    here = back_to or request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{LOGIN_PATH}?next={quote(here, safe='')}"


def _query_text(request: Request) -> str | None:
    return (request.query_params.get("q") or "").strip() or None


def html_errors(
    *, keep_query: bool = False, title: str | None = None
) -> Callable[[Callable[P, Response]], Callable[P, Response]]:
    """The UI's one error handler: a page whose work is refused answers the error page (with the search box
    still holding ``q`` when ``keep_query``; headed ``title`` when given), never the API's JSON."""

    def decorate(endpoint: Callable[P, Response]) -> Callable[P, Response]:
        @functools.wraps(endpoint)
        def page(*args: P.args, **kwargs: P.kwargs) -> Response:
            try:
                return endpoint(*args, **kwargs)
            except (HeadwaterError, DataError) as exc:
                request, session = kwargs.get("request"), kwargs.get("session")
                sign_in: str | None = None
                q: str | None = None
                if isinstance(request, Request):
                    q = _query_text(request) if keep_query else None
                    if isinstance(exc, HeadwaterError) and exc.status_code == 401:
                        sign_in = sign_in_link(request)
                return _error_page(exc, q, session if isinstance(session, Session) else None, title, sign_in=sign_in)

        return page

    return decorate


def _url_maker(path: str, params: dict[str, Any]) -> Callable[..., str]:
    """``url(**changes)``: ``path`` with the current parameters, some changed (None drops one)."""

    def url(**changes: Any) -> str:
        merged = {**params, **changes}
        filters = merged.pop("filters", {}) or {}
        pairs = [(k, v) for k, v in merged.items() if v not in (None, "")]
        pairs += [(name, value) for name, values in filters.items() for value in values]
        return f"{path}?{urlencode(pairs)}" if pairs else path

    return url


@ui_router.get("/", dependencies=[allow(Action.PUBLIC)])  # a redirect, nothing shown
def home() -> RedirectResponse:
    """The search page."""
    return RedirectResponse("/ui", status_code=307)


@ui_router.get("/ui", response_class=HTMLResponse, dependencies=[allow(Action.SEARCH_READ)])
@html_errors(keep_query=True)
def search_page(request: Request) -> Response:
    """Search with facets: ``q``, ``type`` (dataset or column), facet filters (``tag=...``), ``cursor``."""
    params = request.query_params
    q = _query_text(request)
    try:
        types = [DocumentType(params.get("type") or "dataset")]
    except ValueError:
        raise InvalidInput(f"type must be dataset or column, not {params.get('type')!r}") from None
    filters = {name: params.getlist(name) for name in FACETS if params.getlist(name)}
    base = {
        "q": q,
        "type": types[0].value,
        "sort": params.get("sort"),
        "cursor": params.get("cursor"),
        "filters": filters,
    }
    url = _url_maker("/ui", base)

    def toggle(name: str, value: str) -> str:
        current = filters.get(name, [])
        chosen = [v for v in current if v != value] if value in current else [*current, value]
        return url(filters={**filters, name: chosen}, cursor=None)

    query = SearchQuery.of(
        q=q,
        types=types,
        filters=filters,
        sort=params.get("sort") or "relevance",
        cursor=params.get("cursor"),
        audience=audience_of(principal_of(request)),
    )
    page = request.app.state.search_backend.search(query)
    return _page(
        "search.html",
        q=q,
        type=types[0].value,
        page=page,
        filters=filters,
        url=url,
        toggle=toggle,
        syntax_help=SYNTAX_HELP,
    )


@ui_router.get("/ui/datasets/{dataset_id}", response_class=HTMLResponse, dependencies=[allow(Action.CATALOG_READ)])
@html_errors()
def dataset_page(dataset_id: str, request: Request, session: SessionDep) -> Response:
    """One dataset: what it is, who owns it, its fields, the datasets it reads from and feeds, its schema history."""
    principal = principal_of(request)
    audience = audience_of(principal)
    dataset, fields = catalog.read_dataset(
        session, dataset_id=parse_id(dataset_id, "dataset id"), include_deleted=True, audience=audience
    )
    # A deleted dataset's metadata is not edited: it comes back (with its metadata) when its source sees it again.
    editable = dataset.deleted_at is None and may(
        principal, Action.CATALOG_EDIT, lambda: dataset_resource(session, dataset_id=dataset.id)
    )
    node = graph.NodeRef(dataset.id, dataset.namespace, dataset.name)
    lineage = _both_ways(session, node, LINEAGE_DEPTH, audience)
    history = catalog.list_schema_versions(session, dataset_id=dataset.id, limit=HISTORY_SHOWN)
    upstream = sorted(
        (n for n in lineage.nodes if (n.distance or 0) < 0), key=lambda n: (-(n.distance or 0), n.name or "")
    )
    downstream = sorted(
        (n for n in lineage.nodes if (n.distance or 0) > 0), key=lambda n: (n.distance or 0, n.name or "")
    )
    return _page(
        "dataset.html",
        d=DatasetSummary.summary_of(dataset),
        fields=fields,
        lineage=lineage,
        picture=lineage_svg(lineage),
        upstream=upstream,
        downstream=downstream,
        jobs=sorted({e.job for e in lineage.edges if e.job}),
        depth=LINEAGE_DEPTH,
        budget=LINEAGE_BUDGET,
        history=[SchemaVersionOut.model_validate(v) for v in history.items],
        history_total=history.total,
        editable=editable,
        restriction=restrictions.get_restriction(session, dataset_id=dataset.id),
        etag=catalog.etag_of(dataset),
        owner_roles=OWNER_ROLES,
    )


@ui_router.get("/ui/impact", response_class=HTMLResponse, dependencies=[allow(Action.LINEAGE_READ)])
@html_errors()
def impact_page(request: Request, session: SessionDep) -> Response:
    """What breaks if a dataset (``dataset_id``) or one of its columns (``field``, a path) changes."""
    params = request.query_params
    field = params.get("field") or None
    dataset_id = parse_id(params.get("dataset_id"), "dataset_id")
    audience = audience_of(principal_of(request))
    node = graph.resolve_node(session, dataset_id=dataset_id, field_path=field, audience=audience)
    answer = graph.impact(session, node=node, audience=audience)
    return _page("impact.html", impact=answer, dataset_id=dataset_id, field=field, limit=ROWS_SHOWN)


def _both_ways(session: Session, node: graph.NodeRef, depth: int, audience: Audience) -> GraphOut:
    """A page's lineage around ``node``, both ways, as ``audience`` may see it (placeholders for the rest)."""
    return graph.graph_around(
        session, node=node, direction="both", depth=depth, budget=LINEAGE_BUDGET, timeout_ms=2_000, audience=audience
    )


def _name(node: NodeOut) -> str:
    return node.name or node.label or ""


@ui_router.get("/ui/lineage", response_class=HTMLResponse, dependencies=[allow(Action.LINEAGE_READ)])
@html_errors()
def column_lineage_page(request: Request, session: SessionDep) -> Response:
    """A column's lineage both ways (``dataset_id`` and ``field``, a path), each edge with how it is known."""
    params = request.query_params
    dataset_id = parse_id(params.get("dataset_id"), "dataset_id")
    if not params.get("field"):
        raise InvalidInput("name the column with field (its path); a dataset's lineage is on its page")
    audience = audience_of(principal_of(request))
    node = graph.resolve_node(session, dataset_id=dataset_id, field_path=params["field"], audience=audience)
    answer = _both_ways(session, node, COLUMN_DEPTH, audience)
    columns = [n for n in answer.nodes if n.kind in ("column", "restricted")]  # restricted: a placeholder
    return _page(
        "lineage.html",
        graph=answer,
        dataset_id=dataset_id,
        field=params["field"],
        upstream=sorted((n for n in columns if (n.distance or 0) < 0), key=lambda n: (-(n.distance or 0), _name(n))),
        downstream=sorted((n for n in columns if (n.distance or 0) > 0), key=lambda n: (n.distance or 0, _name(n))),
        depth=COLUMN_DEPTH,
        budget=LINEAGE_BUDGET,
    )


@ui_router.get("/ui/sources", response_class=HTMLResponse, dependencies=[allow(Action.CATALOG_READ)])
@html_errors()
def sources_page(request: Request, session: SessionDep) -> Response:
    """The federated sources: what each is, how its last contact went, how many datasets it holds."""
    cursor = request.query_params.get("cursor") or None
    page = catalog_sources.list_sources(session, cursor=cursor, limit=100)
    counts = catalog_sources.live_dataset_counts(session, source_ids=[s.id for s in page.items])
    url = _url_maker("/ui/sources", {"cursor": cursor})
    return _page("sources.html", page=page, counts=counts, url=url)


@dataclass(frozen=True)
class _Tail:
    text: str
    offset: int
    size: int
    unavailable: str | None = None  # why it could not be read (its host did not answer)


def _tails(request: Request, job_id: str, streams: tuple[str, ...]) -> list[tuple[str, _Tail]]:
    """The last LOG_TAIL_BYTES of each of a job's logs, as text, wherever the job ran (:mod:`job_files`); once its
    host did not answer, the other logs are not asked for."""
    factory = request.app.state.sessionmaker
    access = job_files.FileAccess.from_settings(request.app.state.settings)

    async def read() -> list[tuple[str, _Tail]]:
        tails: list[tuple[str, _Tail]] = []
        for stream in streams:
            try:
                size = (await job_files.read_log(factory, access, job_id=job_id, stream=stream, offset=0, limit=1)).size
                offset = max(0, size - LOG_TAIL_BYTES)
                chunk = await job_files.read_log(
                    factory, access, job_id=job_id, stream=stream, offset=offset, limit=LOG_TAIL_BYTES
                )
            except JobFilesUnavailable as exc:
                tails += [(name, _Tail("", 0, 0, exc.message)) for name in streams[len(tails) :]]
                break
            tails.append((stream, _Tail(chunk.data.decode("utf-8", errors="replace"), offset, chunk.size)))
        return tails

    # A sync page runs in a worker thread of the event loop: the reads (which may wait for another host) run on it.
    return anyio.from_thread.run(read)


@ui_router.get(
    "/ui/jobs/{job_id}", response_class=HTMLResponse, dependencies=[allow(Action.JOBS_READ, owned_by=job_owner)]
)
@html_errors()
def job_page(job_id: str, request: Request, session: SessionDep) -> Response:
    """One job: its status and history, where it ran, the tail of its logs (for its user, and whoever holds
    jobs.logs), and the lineage run it reported."""
    row = jobs.get_job(session, job_id=job_id)
    principal = principal_of(request)
    killable = JobStatus(row.status) not in FINAL_STATUSES and may(
        principal, Action.JOBS_KILL, lambda: job_resource(session, job_id=row.id)
    )
    shown = may(principal, Action.JOBS_LOGS, lambda: job_resource(session, job_id=row.id))
    if shown:
        # The tails are read in transactions of their own, perhaps waiting for another host: end this one first
        # (it holds a connection, and on SQLite the write lock every transaction takes).
        session.commit()
    logs = _tails(request, row.id, ("stderr", "stdout")) if shown else []
    try:
        run = lineage_service.get_run(session, run_id=row.run_uuid)
    except NotFound:
        run = None
    return _page(
        "job.html",
        job=jobs.job_out(session, [row])[0],
        arguments=row.request.get("command_args", []),
        transitions=jobs.transitions_of(session, job=row),
        logs=logs,
        logs_shown=shown,
        logs_permission=Action.JOBS_LOGS.value,
        run=run,
        killable=killable,
    )


@ui_router.get("/ui/jobs", response_class=HTMLResponse, dependencies=[allow(Action.JOBS_READ)])
@html_errors()
def jobs_page(request: Request, session: SessionDep) -> Response:
    """Recent jobs, newest first, by ``user`` and ``status``."""
    params = request.query_params
    user, status, cursor = params.get("user") or None, params.get("status") or None, params.get("cursor") or None
    if status is not None and status not in JobStatus.__members__:
        raise InvalidInput(f"status must be one of {', '.join(JobStatus.__members__)}, not {status!r}")
    filters = jobs.JobFilters(user=user, status=JobStatus(status) if status else None)
    page = jobs.list_jobs(session, filters=filters, sort="-created", cursor=cursor, limit=50)
    url = _url_maker("/ui/jobs", {"user": user, "status": status, "cursor": cursor})
    return _page(
        "jobs.html",
        can_submit=decide(principal_of(request), Action.JOBS_SUBMIT),
        page=page,
        jobs=jobs.job_out(session, page.items),
        user=user,
        status=status,
        statuses=list(JobStatus.__members__),
        url=url,
    )
