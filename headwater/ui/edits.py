"""The UI's writes from the dataset and job pages: a dataset's description, tags and owners, a field's description
and tags, submitting a job and killing one.

Each form posts to a route declaring the permission its REST twin declares, with the same owner look-up
(``PATCH /api/v1/datasets/{id}``: ``catalog.edit``, its owners without the role; ``DELETE /api/v1/jobs/{id}``:
``jobs.kill``, its user without the role), and calls the same service function. A dataset form carries the ETag
its page was rendered at: a dataset changed since is refused with a page saying so (412), nothing written. The
session middleware has checked the form's CSRF token before the route runs; a refused form writes nothing (its
transaction is rolled back) and answers the UI error page. Each write names its REST twin's resource in its audit
entry, so ``GET /api/v1/audit?resource=/api/v1/datasets/5`` lists UI edits too.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from headwater.api.auth import allow, principal_of
from headwater.api.deps import SessionDep
from headwater.api.params import MAX_ID, parse_if_match
from headwater.auth import audit
from headwater.auth.actions import Action
from headwater.catalog import service as catalog
from headwater.catalog.access import dataset_owners
from headwater.catalog.schemas import OWNER_ROLES, DatasetUpdate
from headwater.errors import InvalidInput, PreconditionFailed, PreconditionRequired
from headwater.jobs import service as jobs
from headwater.jobs.access import job_owner, submitter_of
from headwater.jobs.schemas import JobSubmit
from headwater.ui.forms import checked, see_other
from headwater.ui.routes import _page, html_errors

__all__ = ["edits_router"]

edits_router = APIRouter(include_in_schema=False)

DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="The dataset's id.")]
JobId = Annotated[str, Path(min_length=1, max_length=255)]
FormText = Annotated[str | None, Form()]
FormList = Annotated[list[str] | None, Form()]
# The dataset's owners may edit it without the editor role: the REST PATCH route's declaration, word for word.
EDIT = [allow(Action.CATALOG_EDIT, owned_by=dataset_owners)]
NOT_CHANGED = "Nothing was changed"
_TAG_SEPARATORS = re.compile(r"[,\s]+")


def _words(text: str | None) -> list[str]:
    """A tags box's words: separated by commas or spaces."""
    return [word for word in _TAG_SEPARATORS.split(text or "") if word]


def _text(text: str | None) -> str:
    """A text box's text, with the browser's line ends made plain and the ends trimmed."""
    return (text or "").replace("\r\n", "\n").strip()


def _revision(version: str | None, dataset_id: int) -> int:
    """The revision a form's ``version`` (the ETag its page was rendered at) names; a form without one was not
    made by the dataset's page, and ``*`` (any revision) would overwrite blindly: both refused."""
    try:
        revision = parse_if_match(version, required=True, resource=f"/api/v1/datasets/{dataset_id}")
    except (PreconditionRequired, PreconditionFailed):
        revision = None
    if revision is None:
        raise InvalidInput(
            "this form carries no version of the dataset (it was not sent by the dataset's page); reload the page "
            "and make the change again",
            detail={"field": "version"},
        )
    return revision


def _edit(
    request: Request, session: Session, *, dataset_id: int, version: str | None, data: DatasetUpdate, form: str
) -> Response:
    """Apply one form's change if the dataset is still at the form's version; back to the dataset's page."""
    page = f"/ui/datasets/{dataset_id}"
    revision = _revision(version, dataset_id)
    try:
        catalog.update_dataset_metadata(
            session, dataset_id=dataset_id, data=data, expected_revision=revision, principal=principal_of(request)
        )
    except PreconditionFailed:
        session.rollback()
        return _page(
            "error.html",
            status_code=412,
            title="Changed by someone else",
            message=(
                "Someone changed this dataset after you opened its page, so your change was not saved (it would "
                "have overwritten theirs). Reload the page to see the dataset as it is now, then make your change "
                "again if it still holds."
            ),
            reload=page,
        )
    audit.describe(session, target_kind="datasets", target=f"/api/v1/datasets/{dataset_id}", form=form, via="ui")
    return see_other(page)


@edits_router.post("/ui/datasets/{dataset_id}/description", dependencies=EDIT)
@html_errors(title=NOT_CHANGED)
def edit_description(
    dataset_id: DatasetId,
    request: Request,
    session: SessionDep,
    version: FormText = None,
    description: FormText = None,
) -> Response:
    """Replace the dataset's description (an empty one clears it, showing the source's again)."""
    text = _text(description)
    data = checked(DatasetUpdate, {"description": text or None})
    return _edit(request, session, dataset_id=dataset_id, version=version, data=data, form="description")


@edits_router.post("/ui/datasets/{dataset_id}/tags", dependencies=EDIT)
@html_errors(title=NOT_CHANGED)
def edit_tags(
    dataset_id: DatasetId, request: Request, session: SessionDep, version: FormText = None, tags: FormText = None
) -> Response:
    """Replace the dataset's tags: the words of ``tags``, separated by commas or spaces (none: no tags)."""
    words = _words(tags)
    data = checked(DatasetUpdate, {"tags": words})
    return _edit(request, session, dataset_id=dataset_id, version=version, data=data, form="tags")


@edits_router.post("/ui/datasets/{dataset_id}/owners", dependencies=EDIT)
@html_errors(title=NOT_CHANGED)
def edit_owners(
    dataset_id: DatasetId,
    request: Request,
    session: SessionDep,
    version: FormText = None,
    owner: FormList = None,
    role: FormList = None,
) -> Response:
    """Replace the dataset's owners: each row's ``owner`` (a user's or a group's name; blank rows are dropped)
    with the ``role`` of the same row."""
    names, roles = owner or [], role or []
    if len(names) != len(roles):
        raise InvalidInput("each owner row needs a name and a role; reload the page", detail={"field": "owners"})
    rows = [
        {"name": name.strip(), "role": kind or OWNER_ROLES[0]}
        for name, kind in zip(names, roles, strict=True)
        if name.strip()
    ]
    data = checked(DatasetUpdate, {"owners": rows})
    return _edit(request, session, dataset_id=dataset_id, version=version, data=data, form="owners")


@edits_router.post("/ui/datasets/{dataset_id}/fields", dependencies=EDIT)
@html_errors(title=NOT_CHANGED)
def edit_field(
    dataset_id: DatasetId,
    request: Request,
    session: SessionDep,
    version: FormText = None,
    path: FormText = None,
    description: FormText = None,
    tags: FormText = None,
) -> Response:
    """Replace one field's description and tags (``path`` names it, dotted for nested fields). A restricting tag
    (``pii``) added or removed here restricts or lifts the whole dataset, and needs ``catalog.restrict``."""
    if not path:
        raise InvalidInput("name the field to edit (its path); reload the page", detail={"field": "path"})
    text = _text(description)
    words = _words(tags)
    data = checked(DatasetUpdate, {"fields": {path: {"description": text or None, "tags": words}}})
    return _edit(request, session, dataset_id=dataset_id, version=version, data=data, form=f"fields.{path}")


@edits_router.post("/ui/jobs/{job_id}/kill", dependencies=[allow(Action.JOBS_KILL, owned_by=job_owner)])
@html_errors(title="The job was not killed")
def kill_job(job_id: JobId, session: SessionDep) -> Response:
    """Kill the job (its user, or whoever may kill any job), as ``DELETE /api/v1/jobs/{id}`` does."""
    job = jobs.request_kill(session, job_id=job_id)
    audit.describe(session, target_kind="jobs", target=f"/api/v1/jobs/{job.id}", via="ui")
    return see_other(f"/ui/jobs/{quote(job.id, safe='')}")


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").replace("\r\n", "\n").split("\n") if line.strip()]


@edits_router.post("/ui/jobs", dependencies=[allow(Action.JOBS_SUBMIT)])
@html_errors(title="The job was not submitted")
def submit_job(
    request: Request,
    session: SessionDep,
    name: FormText = None,
    command: FormText = None,
    clusters: FormText = None,
    arguments: FormText = None,
    description: FormText = None,
    timeout: FormText = None,
) -> Response:
    """Submit a job as the signed-in principal, as ``POST /api/v1/jobs`` does: ``command`` the command's tags
    (separated by commas or spaces), ``clusters`` one set of cluster tags per line (tried in order, Genie's
    criteria), ``arguments`` one command argument per line; then the job's page."""
    body: dict[str, object] = {
        "name": (name or "").strip(),
        "command_criteria": [word for word in _TAG_SEPARATORS.split(command or "") if word],
        "cluster_criteria": [[w for w in _TAG_SEPARATORS.split(line) if w] for line in _lines(clusters)],
        "command_args": _lines(arguments),
        "description": (description or "").strip() or None,
    }
    seconds = (timeout or "").strip()
    if seconds:
        if not seconds.isdigit() or len(seconds) > 7:
            raise InvalidInput(f"timeout is a number of seconds, not {seconds!r}", detail={"field": "timeout"})
        body["timeout"] = int(seconds)
    data = checked(JobSubmit, body)
    submitter = submitter_of(principal_of(request), None, request.app.state.settings)
    job = jobs.submit_job(
        session, data=data, submitter=submitter, selector=request.app.state.settings.jobs_cluster_selector
    )
    audit.describe(session, target_kind="jobs", target=f"/api/v1/jobs/{job.id}", via="ui", name=data.name)
    return see_other(f"/ui/jobs/{quote(job.id, safe='')}")
