"""``headwater tokens``, ``service-accounts``, ``roles`` and ``audit``: identity on the database directly, through
the same service as the API. The first admin's token comes from here. Each change is audited as the CLI's
operator (``cli:<os user>``)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from headwater.auth import service
from headwater.auth.actions import Action, Role
from headwater.auth.audit import Actor, record
from headwater.auth.principal import Principal, PrincipalKind
from headwater.auth.schemas import AuditOut, RoleBindingOut, ServiceAccountOut, TokenOut
from headwater.cli.common import (
    CursorOption,
    JsonTableOption,
    LimitOption,
    console,
    fail,
    friendly_errors,
    load_settings,
    open_session,
    print_page,
)
from headwater.db import utcnow

__all__ = ["audit_app", "roles_app", "service_accounts_app", "tokens_app"]

tokens_app = typer.Typer(help="API tokens: make (shown once), list, revoke.", no_args_is_help=True)
service_accounts_app = typer.Typer(help="Service accounts: make, list, disable.", no_args_is_help=True)
roles_app = typer.Typer(help="Role bindings: grant, revoke, list.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", invoke_without_command=True)

UserOption = Annotated[str | None, typer.Option("--user", help="A user (as the identity provider names them).")]
AccountOption = Annotated[str | None, typer.Option("--service-account", help="A service account.")]
GroupOption = Annotated[str | None, typer.Option("--group", help="A group.")]


def _operator() -> Principal:
    return Principal(name=f"cli:{getpass.getuser()}", kind=PrincipalKind.LOCAL, roles=frozenset({Role.ADMIN}))


def _audit(session: Session, action: Action, target_kind: str, target: str, **summary: object) -> None:
    record(
        session,
        Actor(principal=_operator()),
        action,
        method="CLI",
        target_kind=target_kind,
        target=target,
        summary=summary,
    )


def _subject(user: str | None, account: str | None, group: str | None) -> tuple[str, str]:
    given = [(kind, name) for kind, name in (("user", user), ("service_account", account), ("group", group)) if name]
    if len(given) != 1:
        raise fail("name exactly one of --user, --service-account or --group")
    return given[0]


@tokens_app.command("create")
@friendly_errors
def tokens_create(
    label: Annotated[str, typer.Option(help="What the token is for.")],
    user: UserOption = None,
    service_account: AccountOption = None,
    scope: Annotated[list[Action] | None, typer.Option(help="Limit the token to this action (repeatable).")] = None,
    namespace: Annotated[
        list[str] | None, typer.Option(help="OpenLineage namespace it may write (repeatable).")
    ] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650, help="Expire after this many days.")] = None,
) -> None:
    """Make a token of a user or a service account and print its secret (shown this once)."""
    if not user and not service_account:
        raise fail("name the token's holder with --user or --service-account")
    expires = utcnow() + dt.timedelta(days=expires_in_days) if expires_in_days else None
    with open_session(load_settings()) as session:
        token, secret = service.make_token(
            session,
            _operator(),
            label=label,
            expires_at=expires,
            scopes=scope,
            namespaces=namespace or None,
            user=user,
            service_account=service_account,
        )
        _audit(
            session, Action.ADMIN, "token", f"token:{token.id}", owner=f"{token.principal_kind}:{token.principal_name}"
        )
        token_id = token.id
    console.print(f"Token {token_id} made; its secret, shown this once:")
    print(secret)


@tokens_app.command("list")
@friendly_errors
def tokens_list(
    user: UserOption = None, as_json: JsonTableOption = False, cursor: CursorOption = None, limit: LimitOption = 50
) -> None:
    """Every token (or a user's), newest first; never a secret."""
    with open_session(load_settings()) as session:
        page = service.list_tokens(session, _operator(), owner=user, everyone=True, cursor=cursor, limit=limit)
        items = [TokenOut.model_validate(t).model_dump(mode="json") for t in page.items]
    print_page(
        page,
        items,
        as_json,
        "token(s)",
        "id, holder, label, scopes, expires, revoked",
        lambda t: [
            str(t["id"]),
            f"{t['principal_kind']}:{t['principal_name']}",
            t["label"],
            ",".join(t["scopes"]) if t["scopes"] is not None else "all",
            t["expires_at"] or "-",
            t["revoked_at"] or "-",
        ],
    )


@tokens_app.command("revoke")
@friendly_errors
def tokens_revoke(token_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Revoke a token (servers see it within HEADWATER_AUTH_CACHE_SECONDS)."""
    with open_session(load_settings()) as session:
        service.revoke_token(session, token_id, by=_operator())
        _audit(session, Action.ADMIN, "token", f"token:{token_id}")
    console.print(f"Token {token_id} revoked.")


@service_accounts_app.command("create")
@friendly_errors
def accounts_create(
    name: str,
    description: Annotated[str | None, typer.Option(help="What it is.")] = None,
    group: Annotated[list[str] | None, typer.Option(help="A group it is in (repeatable).")] = None,
) -> None:
    """Make a service account."""
    with open_session(load_settings()) as session:
        service.create_service_account(
            session, name=name, description=description, groups=group or [], by=_operator().name
        )
        _audit(session, Action.ADMIN, "service_account", f"service_account:{name}")
    console.print(f"Service account {name} made.")


@service_accounts_app.command("list")
@friendly_errors
def accounts_list(as_json: JsonTableOption = False, cursor: CursorOption = None, limit: LimitOption = 50) -> None:
    """Service accounts, oldest first."""
    with open_session(load_settings()) as session:
        page = service.list_service_accounts(session, cursor=cursor, limit=limit)
        items = [ServiceAccountOut.model_validate(a).model_dump(mode="json") for a in page.items]
    print_page(
        page,
        items,
        as_json,
        "service account(s)",
        "name, groups, disabled",
        lambda a: [a["name"], ",".join(a["groups"]), "yes" if a["disabled"] else "no"],
    )


@service_accounts_app.command("disable")
@friendly_errors
def accounts_disable(name: str) -> None:
    """Disable a service account and revoke its tokens."""
    with open_session(load_settings()) as session:
        _, revoked = service.disable_service_account(session, name)
        _audit(session, Action.ADMIN, "service_account", f"service_account:{name}", tokens_revoked=revoked)
    console.print(f"Service account {name} disabled; {len(revoked)} token(s) revoked.")


@roles_app.command("grant")
@friendly_errors
def roles_grant(
    role: Role, user: UserOption = None, service_account: AccountOption = None, group: GroupOption = None
) -> None:
    """Grant ROLE to a user, a service account or a group."""
    kind, subject = _subject(user, service_account, group)
    with open_session(load_settings()) as session:
        service.grant(session, subject_kind=kind, subject=subject, role=role, by=_operator().name)
        _audit(session, Action.ADMIN, "role_binding", f"{kind}:{subject}", role=role.value)
    console.print(f"{kind} {subject} has the role {role.value}.")


@roles_app.command("revoke")
@friendly_errors
def roles_revoke(
    role: Role, user: UserOption = None, service_account: AccountOption = None, group: GroupOption = None
) -> None:
    """Take ROLE back from a user, a service account or a group."""
    kind, subject = _subject(user, service_account, group)
    with open_session(load_settings()) as session:
        service.revoke(session, subject_kind=kind, subject=subject, role=role)
        _audit(session, Action.ADMIN, "role_binding", f"{kind}:{subject}", role=role.value, revoked=True)
    console.print(f"{kind} {subject} no longer has the role {role.value}.")


@roles_app.command("list")
@friendly_errors
def roles_list(as_json: JsonTableOption = False, cursor: CursorOption = None, limit: LimitOption = 100) -> None:
    """Role bindings, oldest first."""
    with open_session(load_settings()) as session:
        page = service.list_bindings(session, subject_kind=None, subject=None, cursor=cursor, limit=limit)
        items = [
            RoleBindingOut(
                id=b.id,
                subject_kind=service.api_subject(b.subject_kind),
                subject=b.subject,
                role=Role(b.role),
                created_at=b.created_at,
                created_by=b.created_by,
            ).model_dump(mode="json")
            for b in page.items
        ]
    print_page(
        page,
        items,
        as_json,
        "role binding(s)",
        "subject, role, by",
        lambda b: [f"{b['subject_kind']}:{b['subject']}", b["role"], b["created_by"]],
    )


def _list_audit(
    actor: str | None,
    action: str | None,
    outcome: str | None,
    since: dt.datetime | None,
    as_json: bool,
    cursor: str | None,
    limit: int,
) -> None:
    filters = service.AuditFilters(
        actor=actor,
        action=action,
        outcome=outcome,
        since=since.replace(tzinfo=since.tzinfo or dt.UTC) if since else None,
    )
    with open_session(load_settings()) as session:
        page = service.list_audit(session, filters, cursor=cursor, limit=limit)
        items = [AuditOut.model_validate(e).model_dump(mode="json") for e in page.items]
    if as_json:
        print(json.dumps({"items": items, "next_cursor": page.next_cursor, "total": page.total}, indent=2))
        return
    print_page(
        page,
        items,
        False,
        "audit entr(ies)",
        "at, actor, action, method, target, outcome",
        lambda e: [e["at"], e["actor"], e["action"], e["method"], e["target"], e["outcome"]],
    )


ActorOption = Annotated[str | None, typer.Option(help="Only this actor's entries.")]
ActionOption = Annotated[str | None, typer.Option(help="Only this action's entries.")]
OutcomeOption = Annotated[str | None, typer.Option(help="ok, refused or failed.")]
SinceOption = Annotated[dt.datetime | None, typer.Option(help="Only entries from this time (UTC unless given).")]


@audit_app.callback()
@friendly_errors
def audit(
    ctx: typer.Context,
    actor: ActorOption = None,
    action: ActionOption = None,
    outcome: OutcomeOption = None,
    since: SinceOption = None,
    as_json: JsonTableOption = False,
    cursor: CursorOption = None,
    limit: LimitOption = 50,
) -> None:
    """The audit log, newest first (``headwater audit --actor alice`` or ``headwater audit list ...``)."""
    if ctx.invoked_subcommand is None:
        _list_audit(actor, action, outcome, since, as_json, cursor, limit)


@audit_app.command("list")
@friendly_errors
def audit_list(
    actor: ActorOption = None,
    action: ActionOption = None,
    outcome: OutcomeOption = None,
    since: SinceOption = None,
    as_json: JsonTableOption = False,
    cursor: CursorOption = None,
    limit: LimitOption = 50,
) -> None:
    """The audit log, newest first."""
    _list_audit(actor, action, outcome, since, as_json, cursor, limit)
