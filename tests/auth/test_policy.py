"""The one policy function: roles grant actions, ownership adds to them, restriction and scopes take away."""

from __future__ import annotations

import pytest

from headwater.auth import ANONYMOUS, LOCAL_ADMIN, Action, Principal, PrincipalKind, Resource, Role, check, decide
from headwater.errors import Forbidden, Unauthenticated


def user(
    name: str = "alice", *roles: Role, groups: tuple[str, ...] = (), scopes: set[Action] | None = None
) -> Principal:
    return Principal(
        name=name,
        kind=PrincipalKind.USER,
        roles=frozenset(roles),
        groups=frozenset(groups),
        scopes=frozenset(scopes) if scopes is not None else None,
    )


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        (Role.VIEWER, [Action.CATALOG_READ, Action.LINEAGE_READ, Action.SEARCH_READ], [Action.CATALOG_EDIT]),
        (Role.EDITOR, [Action.CATALOG_EDIT, Action.LINEAGE_WRITE], [Action.JOBS_SUBMIT, Action.SOURCES_ADMIN]),
        (
            Role.OPERATOR,
            [Action.JOBS_SUBMIT, Action.JOBS_READ],
            [Action.CATALOG_EDIT, Action.JOBS_KILL, Action.JOBS_LOGS],
        ),
        (Role.ADMIN, list(Action), []),
    ],
)
def test_each_role_grants_its_actions_and_no_others(role: Role, allowed: list[Action], refused: list[Action]) -> None:
    principal = user("alice", role)
    assert all(decide(principal, action) for action in allowed)
    assert not any(decide(principal, action) for action in refused)


def test_no_credential_is_unauthenticated_and_a_missing_role_forbidden_naming_the_permission() -> None:
    with pytest.raises(Unauthenticated):
        check(ANONYMOUS, Action.CATALOG_READ)
    with pytest.raises(Forbidden) as refused:
        check(user("bob", Role.VIEWER), Action.JOBS_SUBMIT)
    assert "jobs.submit" in refused.value.message and refused.value.detail == {"permission": "jobs.submit"}


def test_public_needs_nobody_and_the_local_admin_may_do_everything() -> None:
    assert decide(ANONYMOUS, Action.PUBLIC)
    assert all(decide(LOCAL_ADMIN, action) for action in Action)


def test_owners_edit_their_dataset_without_the_editor_role_by_name_or_by_group() -> None:
    orders = Resource(kind="dataset", name="shop.orders", owners=["alice", "team-payments"])
    assert decide(user("alice", Role.VIEWER), Action.CATALOG_EDIT, orders)
    assert decide(user("carol", Role.VIEWER, groups=("team-payments",)), Action.CATALOG_EDIT, orders)
    assert not decide(user("dave", Role.VIEWER, groups=("team-search",)), Action.CATALOG_EDIT, orders)
    # Ownership lets an owner edit, never administer sources or submit jobs.
    assert not decide(user("alice", Role.VIEWER), Action.SOURCES_ADMIN, orders)


def test_a_jobs_user_kills_it_and_reads_its_logs_and_only_admins_do_so_for_anyones_job() -> None:
    olives = Resource(kind="job", name="nightly", owners=["olive"])
    for action in (Action.JOBS_KILL, Action.JOBS_LOGS):
        assert decide(user("olive", Role.OPERATOR), action, olives)
        assert decide(user("olive"), action, olives)  # ownership alone, no role
        assert not decide(user("otto", Role.OPERATOR), action, olives)
        assert not decide(user("vera", Role.VIEWER), action, olives)
        assert not decide(user("eddie", Role.EDITOR), action, olives)
        assert decide(user("root", Role.ADMIN), action, olives)
    assert decide(user("vera", Role.VIEWER), Action.JOBS_READ, olives)  # what it is, where it ran: every role


def test_a_restricted_resource_is_refused_to_outsiders_whatever_their_role_but_not_to_admins() -> None:
    salaries = Resource(kind="dataset", name="hr.salaries", restricted_to=["hr"])
    assert not decide(user("erin", Role.EDITOR), Action.CATALOG_READ, salaries)
    assert decide(user("frank", Role.VIEWER, groups=("hr",)), Action.CATALOG_READ, salaries)
    assert decide(user("root", Role.ADMIN), Action.CATALOG_READ, salaries)


def test_a_scoped_token_never_grants_more_than_its_scopes_even_to_an_admin_or_an_owner() -> None:
    producer = user("airflow", Role.ADMIN, scopes={Action.LINEAGE_WRITE})
    assert decide(producer, Action.LINEAGE_WRITE)
    assert not decide(producer, Action.CATALOG_READ)
    assert not decide(producer, Action.ADMIN)
    owned = Resource(kind="dataset", name="x", owners=["airflow"])
    assert not decide(producer, Action.CATALOG_EDIT, owned)
    assert decide(producer, Action.SELF)
