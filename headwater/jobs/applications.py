"""Applications (Genie's): the files and environment a command needs, CRUD and the ordered command links.

Functions take ``session`` keyword-only and flush only; the edge commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from headwater.db import utcnow
from headwater.egress import EgressPolicy, default_policy
from headwater.errors import Conflict, HeadwaterError, InvalidInput
from headwater.jobs.files import is_remote
from headwater.jobs.models import Application, ApplicationStatus, Command, CommandApplication
from headwater.jobs.schemas import REDACTED, ApplicationCreate, ApplicationUpdate
from headwater.orm import get_by_name
from headwater.pagination import PageResult, SortKey, paginate

__all__ = [
    "AppSetup",
    "check_files",
    "create_application",
    "delete_application",
    "get_application",
    "list_applications",
    "set_command_applications",
    "check_names",
    "setup_of_command",
    "setup_of_names",
    "update_application",
]

APPLICATION_SORTS = {
    "name": SortKey(Application.name, Application.id),
    "id": SortKey(Application.id, Application.id, kind="int"),
}


@dataclass(frozen=True)
class AppSetup:
    """What a job needs of one application: where its files come from and the environment it sets."""

    name: str
    files: list[str]
    environment: dict[str, str]


def check_files(files: list[str], *, egress: EgressPolicy | None = None, field: str = "dependencies") -> None:
    """Refuse (EgressRefused, 422) application files the egress policy would never let a worker read: a URL to a
    refused address or a local file outside the allowed directories. Workers check again when they fetch."""
    policy = egress or default_policy()
    for ref in files:
        try:
            if is_remote(ref):
                policy.check_url(ref)
            else:
                policy.check_file(ref)
        except HeadwaterError as exc:
            exc.detail = {**exc.detail, "field": field}
            raise


def create_application(session: Session, *, data: ApplicationCreate, egress: EgressPolicy | None = None) -> Application:
    """Register an application; a taken name is a Conflict, a file the egress policy refuses an EgressRefused."""
    check_files(data.dependencies, egress=egress, field="dependencies")
    check_files(data.configs, egress=egress, field="configs")
    if session.scalar(select(Application.id).where(Application.name == data.name)) is not None:
        raise Conflict(f"an application named {data.name!r} already exists", detail={"field": "name"})
    now = utcnow()
    application = Application(**data.model_dump(mode="json"), created_at=now, updated_at=now)
    session.add(application)
    session.flush()
    return application


def get_application(session: Session, *, name: str) -> Application:
    """The application called ``name``."""
    return get_by_name(session, Application, name, label="application")


def update_application(
    session: Session, *, name: str, data: ApplicationUpdate, egress: EgressPolicy | None = None
) -> Application:
    """Change the given fields of an application (new files are checked against the egress policy)."""
    application = get_application(session, name=name)
    changes = data.model_dump(mode="json", exclude_unset=True)
    for key in ("dependencies", "configs"):
        if changes.get(key):
            check_files(changes[key], egress=egress, field=key)
    if "dependencies" in changes or "configs" in changes:
        # Re-check distinct file names on the merged result, as creation does.
        ApplicationCreate.model_validate(
            {
                "name": application.name,
                "dependencies": changes.get("dependencies", application.dependencies),
                "configs": changes.get("configs", application.configs),
            }
        )
    if "environment" in changes:
        changes["environment"] = _keep_redacted_values(changes["environment"], application.environment or {})
    for key, value in changes.items():
        setattr(application, key, value)
    application.updated_at = utcnow()
    session.flush()
    return application


def _keep_redacted_values(new: dict[str, str], stored: dict[str, str]) -> dict[str, str]:
    """The new environment, where a ``***`` value (as answers show every value) keeps the stored one.

    So a client that reads an application and sends it back changed elsewhere does not overwrite its variables'
    values with the mask.
    """
    unknown = sorted(name for name, value in new.items() if value == REDACTED and name not in stored)
    if unknown:
        raise InvalidInput(
            f"environment.{unknown[0]}: {REDACTED!r} keeps a stored value, but the application has no variable "
            f"{unknown[0]!r}; send its value",
            detail={"field": f"environment.{unknown[0]}"},
        )
    return {name: stored[name] if value == REDACTED else value for name, value in new.items()}


def delete_application(session: Session, *, name: str) -> None:
    """Remove an application; refused while a command needs it."""
    application = get_application(session, name=name)
    users = list(
        session.scalars(
            select(Command.name)
            .join(CommandApplication, CommandApplication.command_id == Command.id)
            .where(CommandApplication.application_id == application.id)
            .order_by(Command.name)
            .limit(10)
        )
    )
    if users:
        raise Conflict(
            f"application {name!r} is needed by command(s) {users}; remove it from them first",
            detail={"field": "name"},
        )
    session.delete(application)
    session.flush()


def list_applications(session: Session, *, sort: str, cursor: str | None, limit: int) -> PageResult[Application]:
    """One page of applications."""
    return paginate(session, select(Application), sorts=APPLICATION_SORTS, sort=sort, cursor=cursor, limit=limit)


def set_command_applications(session: Session, *, command: Command, names: list[str]) -> None:
    """Make ``names`` (in order) the applications ``command`` needs; unknown names are refused."""
    found = {
        name: app_id
        for app_id, name in session.execute(select(Application.id, Application.name).where(Application.name.in_(names)))
    }
    missing = [name for name in names if name not in found]
    if missing:
        raise InvalidInput(f"no application named {missing[0]!r}", detail={"field": "applications"})
    session.execute(delete(CommandApplication).where(CommandApplication.command_id == command.id))
    session.add_all(
        CommandApplication(command_id=command.id, position=index, application_id=found[name])
        for index, name in enumerate(names)
    )
    session.flush()
    session.expire(command, ["applications"])


def setup_of_command(session: Session, *, command_id: int) -> list[AppSetup]:
    """The applications a command needs, in order; an INACTIVE one is an InvalidInput naming it."""
    rows = session.scalars(
        select(Application)
        .join(CommandApplication, CommandApplication.application_id == Application.id)
        .where(CommandApplication.command_id == command_id)
        .order_by(CommandApplication.position)
        .limit(50)
    ).all()
    return _setups(list(rows), "its command needs")


def setup_of_names(session: Session, *, names: list[str]) -> list[AppSetup]:
    """The applications a job named itself (instead of its command's), in its order."""
    found = {a.name: a for a in session.scalars(select(Application).where(Application.name.in_(names)))}
    missing = [name for name in names if name not in found]
    if missing:
        raise InvalidInput(f"the job asks for application {missing[0]!r}, which does not exist")
    return _setups([found[name] for name in names], "the job asks for")


def check_names(session: Session, *, names: list[str]) -> None:
    """Refuse names of applications that do not exist (at submission, so the client hears it at once)."""
    known = set(session.scalars(select(Application.name).where(Application.name.in_(names))))
    missing = [name for name in names if name not in known]
    if missing:
        raise InvalidInput(f"no application named {missing[0]!r}", detail={"field": "applications"})


def _setups(rows: list[Application], why: str) -> list[AppSetup]:
    for application in rows:
        if application.status == ApplicationStatus.INACTIVE.value:
            raise InvalidInput(f"{why} application {application.name!r}, which is INACTIVE")
    return [
        AppSetup(
            name=a.name,
            files=[*a.dependencies, *a.configs],
            environment={str(k): str(v) for k, v in a.environment.items()},
        )
        for a in rows
    ]
