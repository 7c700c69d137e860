"""The named actions every operation is authorised as, and what each role may do.

Every REST route and GraphQL root field declares one action (tests/auth/test_every_edge_declares.py fails when
one does not); :func:`headwater.auth.policy.decide` is the one place an action is allowed or refused.
"""

from __future__ import annotations

import enum

__all__ = ["ROLE_ACTIONS", "Action", "Role"]


class Action(enum.StrEnum):
    """An operation, as a principal is allowed or refused it."""

    PUBLIC = "public"  # health probes, the sign-in pages, static files: no principal needed
    SELF = "self"  # who am I, my own API tokens: any signed-in principal
    CATALOG_READ = "catalog.read"
    CATALOG_EDIT = "catalog.edit"  # descriptions, tags, owners, schemas; a dataset's owners may without the role
    CATALOG_RESTRICT = "catalog.restrict"  # restrict a dataset to groups or lift it; admins and its owners
    SOURCES_ADMIN = "sources.admin"  # register, change, delete and sync sources (they hold credentials)
    LINEAGE_READ = "lineage.read"
    LINEAGE_WRITE = "lineage.write"  # OpenLineage events, SQL lineage that records
    SEARCH_READ = "search.read"
    JOBS_READ = "jobs.read"
    JOBS_SUBMIT = "jobs.submit"
    # Submit a job that runs as another user (a scheduler acting for people): admins only (docs/security/jobs.md).
    JOBS_SUBMIT_AS = "jobs.submit_as"
    JOBS_KILL = "jobs.kill"  # anyone's job: admins; a job's user kills their own through ownership
    JOBS_LOGS = "jobs.logs"  # anyone's job's logs and output files: admins; a job's user reads their own
    JOBS_ADMIN = "jobs.admin"  # clusters, commands, applications
    AUDIT_READ = "audit.read"
    ADMIN = "admin"  # role bindings, service accounts, anyone's tokens


class Role(enum.StrEnum):
    """A set of actions granted together (to a user, a service account or a group)."""

    VIEWER = "viewer"
    EDITOR = "editor"
    OPERATOR = "operator"
    ADMIN = "admin"


_READ = frozenset({Action.SELF, Action.CATALOG_READ, Action.LINEAGE_READ, Action.SEARCH_READ, Action.JOBS_READ})
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: _READ,
    Role.EDITOR: _READ | {Action.CATALOG_EDIT, Action.LINEAGE_WRITE},
    Role.OPERATOR: _READ | {Action.JOBS_SUBMIT},  # they kill and read the logs of their own jobs as owners
    Role.ADMIN: frozenset(Action),
}
