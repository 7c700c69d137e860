"""Who a job runs as, which clusters and commands it may use, and how many jobs its user may have active.

The edge turns the request's principal into a :class:`Submitter` (:func:`submitter_of`); the jobs service takes it
when it accepts a job: the job's user is the submitter's, resolution only considers clusters and commands open to
the principal, and :func:`hold_active_slot` refuses a job over its user's limit, race-free on both databases.
The reasoning is in docs/security/jobs.md. :func:`job_resource` is what the permission checks need of a job:
its user, who may kill it and read its logs and output without a role granting that for everyone's jobs
(``jobs.kill``, ``jobs.logs``: admins').
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import partial
from typing import Annotated

from fastapi import Path
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from headwater.api.auth import ResourceLoader
from headwater.auth.actions import Action
from headwater.auth.policy import Resource, decide
from headwater.auth.principal import LOCAL_ADMIN, Principal, PrincipalKind
from headwater.errors import Forbidden, InvalidInput, NotFound, TooManyRequests
from headwater.jobs.models import FINAL_STATUSES, Job
from headwater.settings import Settings

__all__ = [
    "ME",
    "RETRY_AFTER_SECONDS",
    "Submitter",
    "active_limit_of",
    "hold_active_slot",
    "job_owner",
    "job_resource",
    "job_user",
    "may_use",
    "submitter_of",
    "trusted_submitter",
    "user_filter",
]

# What ``GET /jobs?user=me`` (and GraphQL's ``filter: {user: "me"}``) means: the principal asking.
ME = "me"
# A user at their limit waits for one of their jobs to end; jobs last seconds to hours, so ask again soon.
RETRY_AFTER_SECONDS = 10
# The first key of the per-user advisory locks (PostgreSQL): "hwjl", so they never meet another module's locks.
_LIMIT_LOCK_CLASS = 0x68776A6C
_FINAL = [status.value for status in FINAL_STATUSES]


@dataclass(frozen=True)
class Submitter:
    """Who submits a job: the user it runs as, the principal whose groups decide which clusters and commands it
    may use, and how many jobs that user may have active (None: no limit)."""

    user: str
    principal: Principal
    active_limit: int | None

    def may_use(self, groups: Collection[str]) -> bool:
        """Whether the principal may run on a cluster or command open to ``groups``."""
        return may_use(self.principal, groups)


def may_use(principal: Principal, groups: Collection[str]) -> bool:
    """A cluster or command open to ``groups`` (empty: to anyone holding jobs.submit) is usable by their members
    (a user listed by name counts) and by admins."""
    return not groups or principal.is_admin or principal.member_of(set(groups))


def job_user(principal: Principal, asked: str | None) -> str:
    """The user a job runs as: the principal's own name, or ``asked`` when the principal may submit as others."""
    if asked is None or asked == principal.name:
        return principal.name
    if decide(principal, Action.JOBS_SUBMIT_AS):
        return asked
    raise Forbidden(
        f"{principal.name!r} lacks the permission {Action.JOBS_SUBMIT_AS.value!r}, so its jobs run as "
        f"{principal.name!r}: leave 'user' out (or send {principal.name!r}), not {asked!r}",
        detail={"permission": Action.JOBS_SUBMIT_AS.value, "field": "user"},
    )


def active_limit_of(principal: Principal, user: str, settings: Settings) -> int | None:
    """How many active jobs ``user`` may have (None: no limit); ``principal`` is who submits.

    The user's own ``user:`` (or ``service:``) entry of HEADWATER_JOBS_USER_LIMITS wins; else, when the principal
    submits as itself, the highest of its groups' entries; else HEADWATER_JOBS_USER_ACTIVE_LIMIT. 0 is no limit.
    Local mode has no limit: the one local admin is every user.
    """
    if principal.kind is PrincipalKind.LOCAL:
        return None
    own_kind = "service" if principal.kind is PrincipalKind.SERVICE and user == principal.name else "user"
    own: int | None = None
    by_group: list[int] = []
    for entry in settings.jobs_user_limits:
        subject, _, number = entry.rpartition("=")
        kind, _, name = subject.partition(":")
        if kind == own_kind and name == user:
            own = int(number)
        elif kind == "group" and user == principal.name and name in principal.groups:
            by_group.append(int(number))
    if own is not None:
        limit = own
    elif by_group:
        limit = 0 if 0 in by_group else max(by_group)  # the most generous group's: 0 (no limit) most of all
    else:
        limit = settings.jobs_user_active_limit
    return limit or None


def submitter_of(principal: Principal, asked_user: str | None, settings: Settings) -> Submitter:
    """The submitter of a job ``principal`` sends, asking to run it as ``asked_user`` (None: as itself)."""
    user = job_user(principal, asked_user)
    return Submitter(user=user, principal=principal, active_limit=active_limit_of(principal, user, settings))


def trusted_submitter(user: str) -> Submitter:
    """The submitter of a job made on the server's own machine (the CLI, the demo): any cluster, no limit."""
    return Submitter(user=user, principal=LOCAL_ADMIN, active_limit=None)


def hold_active_slot(session: Session, submitter: Submitter) -> None:
    """Refuse (429) a job whose user already has as many queued or running jobs as their limit allows.

    Race-free: on PostgreSQL a transaction-scoped advisory lock per user is taken before counting, so a second
    submission of the same user waits for the first to commit and then counts its job; SQLite's transactions
    begin IMMEDIATE, so writers are serialised already.
    """
    limit = submitter.active_limit
    if limit is None:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:user))"),
            {"lock_class": _LIMIT_LOCK_CLASS, "user": submitter.user},
        )
    active = session.scalar(
        select(func.count()).select_from(Job).where(Job.user_name == submitter.user, Job.status.not_in(_FINAL))
    )
    if active is not None and active >= limit:
        raise TooManyRequests(
            f"{submitter.user!r} has {active} job(s) queued or running, the limit of {limit} per user "
            f"(HEADWATER_JOBS_USER_ACTIVE_LIMIT, HEADWATER_JOBS_USER_LIMITS); retry when one ends",
            retry_after=RETRY_AFTER_SECONDS,
            detail={"limit": limit, "active": active, "user": submitter.user},
        )


def user_filter(principal: Principal, user: str | None, *, mine: bool = False) -> str | None:
    """The user a job listing filters by: ``me`` (or ``mine``) is the principal asking."""
    if mine and user is not None and user not in (ME, principal.name):
        raise InvalidInput(
            f"mine=true lists {principal.name!r}'s jobs, but user={user!r} asks for another user's: send one",
            detail={"field": "user"},
        )
    if mine or user == ME:
        return principal.name
    return user


def job_resource(session: Session, *, job_id: str) -> Resource:
    """The job ``job_id`` as a decision sees it: owned by its user; 404 when there is no such job."""
    user = session.scalar(select(Job.user_name).where(Job.id == job_id))
    if user is None:
        raise NotFound(f"no job with id {job_id!r}", detail={"field": "id"})
    return Resource(kind="job", name=job_id, owners=(user,))


def job_owner(job_id: Annotated[str, Path(min_length=1, max_length=255)]) -> ResourceLoader:
    """The ``owned_by`` of a route on ``/api/v1/jobs/{job_id}``."""
    return partial(job_resource, job_id=job_id)
