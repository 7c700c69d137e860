"""Resolving a job request to a cluster and a command, read top to bottom: match the criteria (Genie's rule: the
first cluster criterion matching an UP cluster with an ACTIVE command wins), keep the clusters that can ever hold
the job's memory, let the selector (:mod:`headwater.jobs.selectors`) choose among several, and fix the job's
memory. Only clusters and commands open to the submitter are considered (docs/security/jobs.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater.errors import Forbidden, InvalidInput
from headwater.jobs import access, selectors
from headwater.jobs.models import (
    ACTIVE_STATUSES,
    Cluster,
    ClusterStatus,
    Command,
    CommandStatus,
    Job,
    JobStatus,
)
from headwater.jobs.schemas import JobSubmit

__all__ = ["MAX_CANDIDATES", "Resolution", "job_memory", "resolve", "tags_of"]

# Resolution reads every UP cluster and ACTIVE command; installations have tens, this bounds the read.
MAX_CANDIDATES = 1000
# Jobs bound to a cluster: queued for it or held by a worker (a selector weighs both).
_BOUND = [JobStatus.RESOLVED.value, *(s.value for s in ACTIVE_STATUSES)]


@dataclass(frozen=True)
class Resolution:
    """Where the job runs, what runs it, the memory it is counted for (None: none), and why."""

    cluster: Cluster
    command: Command
    memory_mb: int | None
    why: str


@dataclass(frozen=True)
class _Match:
    """The winning criterion and each cluster it matched that can run the job, with its command and memory."""

    index: int
    tags: list[str]
    pairs: list[tuple[Cluster, Command, int | None]]


@dataclass(frozen=True)
class _Miss:
    """Why nothing matched, and the clusters that would run the job but for its memory (cluster, memory)."""

    why: str
    too_small: list[tuple[Cluster, int]]


def tags_of(resource: Cluster | Command) -> set[str]:
    """The tags ``resource`` answers to in criteria: its own and ``headwater.id:``/``headwater.name:``."""
    return {*resource.tags, *selectors.implicit_tags(resource.id, resource.name)}


def job_memory(data: JobSubmit, command: Command, cluster: Cluster) -> int | None:
    """The job's memory on ``cluster`` with ``command``: the request's, else the command's, else the cluster's
    default for its jobs (Genie's order); None counts as 0 MB."""
    for value in (data.memory_mb, command.memory_mb, cluster.default_job_memory_mb):
        if value is not None:
            return value
    return None


def _fits(memory: int | None, cluster: Cluster) -> bool:
    return memory is None or cluster.max_memory_mb is None or memory <= cluster.max_memory_mb


def _command_runs_on(command: Command, cluster: Cluster) -> bool:
    if not command.cluster_criteria:
        return True
    tags = tags_of(cluster)
    return any(set(criterion) <= tags for criterion in command.cluster_criteria)


def _match(data: JobSubmit, clusters: list[Cluster], commands: list[Command]) -> _Match | _Miss:
    wanted = set(data.command_criteria)
    commands = [c for c in commands if wanted <= tags_of(c)]
    if not commands:
        return _Miss(f"no ACTIVE command has all of the command criteria tags {sorted(wanted)}", [])
    misses: list[str] = []
    too_small: list[tuple[Cluster, int]] = []
    for index, criterion in enumerate(data.cluster_criteria):
        tags = sorted(set(criterion))
        matching = [c for c in clusters if set(tags) <= tags_of(c)]
        if not matching:
            misses.append(f"cluster_criteria[{index}] {tags} matched no UP cluster")
            continue
        pairs: list[tuple[Cluster, Command, int | None]] = []
        small: list[tuple[Cluster, int]] = []
        for cluster in matching:
            runs = [(command, job_memory(data, command, cluster)) for command in commands]
            runs = [(command, memory) for command, memory in runs if _command_runs_on(command, cluster)]
            fitting = [(command, memory) for command, memory in runs if _fits(memory, cluster)]
            if fitting:
                pairs.append((cluster, *fitting[0]))
            elif runs:
                small.append((cluster, runs[0][1] or 0))
        if pairs:
            return _Match(index, tags, pairs)
        names = [c.name for c in matching]
        if small:
            too_small += small
            misses.append(
                f"cluster_criteria[{index}] {tags} matched UP cluster(s) {names}, too small for the job's memory"
            )
        else:
            misses.append(
                f"cluster_criteria[{index}] {tags} matched UP cluster(s) {names} but no ACTIVE command with tags "
                f"{sorted(wanted)} runs on them"
            )
    return _Miss("no cluster criterion matched: " + "; ".join(misses), too_small)


def resolve(session: Session, data: JobSubmit, submitter: access.Submitter, *, selector: str) -> Resolution | str:
    """Resolve ``data`` for ``submitter``: a Resolution, or why it matches nothing (the job is then INVALID).

    Forbidden when nothing open matches but closed clusters or commands would (their groups are no secret: anyone
    with jobs.read lists them); InvalidInput when the only clusters that would run it cannot ever hold its memory.
    """
    commands = list(
        session.scalars(
            select(Command)
            .where(Command.status == CommandStatus.ACTIVE.value)
            .order_by(Command.id)
            .limit(MAX_CANDIDATES)
        )
    )
    clusters = list(
        session.scalars(
            select(Cluster).where(Cluster.status == ClusterStatus.UP.value).order_by(Cluster.id).limit(MAX_CANDIDATES)
        )
    )
    usable_commands = [c for c in commands if submitter.may_use(c.groups)]
    usable_clusters = [c for c in clusters if submitter.may_use(c.groups)]
    found = _match(data, usable_clusters, usable_commands)
    if isinstance(found, _Match):
        return _select(session, data, found, selector)
    if (len(usable_commands), len(usable_clusters)) != (len(commands), len(clusters)):
        closed = _match(data, clusters, commands)
        if isinstance(closed, _Match):
            _refuse_closed(submitter, closed)
    if found.too_small:
        _refuse_too_big(found.too_small)
    return found.why


def _refuse_closed(submitter: access.Submitter, closed: _Match) -> None:
    cluster, command, _ = closed.pairs[0]
    groups = sorted({*cluster.groups, *command.groups})
    raise Forbidden(
        f"the job's criteria match only clusters or commands {submitter.principal.name!r} may not use: cluster "
        f"{cluster.name!r} (groups {sorted(cluster.groups)}) with command {command.name!r} (groups "
        f"{sorted(command.groups)}) would run it; ask to join one of {groups}, or choose other tags",
        detail={"permission": "jobs.submit", "groups": groups, "field": "cluster_criteria"},
    )


def _refuse_too_big(too_small: list[tuple[Cluster, int]]) -> None:
    # Queued, it would wait for memory no cluster it may run on ever has (Genie fails such a job on the node it
    # reached instead, #549); say so now, with the sizes to ask for.
    sizes = ", ".join(f"{c.name!r} holds {c.max_memory_mb} MB" for c, _ in too_small)
    largest = max(c.max_memory_mb or 0 for c, _ in too_small)
    needed = min(memory for _, memory in too_small)
    raise InvalidInput(
        f"the job needs {needed} MB of memory but every cluster its criteria match is smaller ({sizes}); ask for "
        f"at most {largest} MB with memory_mb, or choose clusters with more memory",
        detail={"field": "memory_mb", "memory_mb": needed, "largest_mb": largest},
    )


def _select(session: Session, data: JobSubmit, found: _Match, selector: str) -> Resolution | str:
    prefix = f"cluster_criteria[{found.index}] {found.tags}"
    if len(found.pairs) == 1:
        cluster, command, memory = found.pairs[0]
        return Resolution(cluster, command, memory, f"{prefix} chose cluster {cluster.name!r} and command "
                                                    f"{command.name!r}")  # fmt: skip
    candidates = _loads(session, found.pairs)
    try:
        selection = selectors.select(candidates, data, selector)
    except selectors.SelectorError as exc:
        return f"{prefix} matched clusters {[c.name for c in candidates]}; {exc}"
    cluster, command, memory = next(p for p in found.pairs if p[0].id == selection.chosen.id)
    return Resolution(cluster, command, memory, f"{prefix}: {selection.why}; command {command.name!r}")


def _loads(session: Session, pairs: Sequence[tuple[Cluster, Command, int | None]]) -> list[selectors.ClusterLoad]:
    """Each candidate with the jobs bound to it now (one grouped read on the cluster/status index)."""
    counts: dict[int, list[int]] = {cluster.id: [0, 0, 0] for cluster, _, _ in pairs}  # running, queued, memory
    rows = session.execute(
        select(Job.cluster_id, Job.status, func.count(), func.coalesce(func.sum(Job.memory_mb), 0))
        .where(Job.cluster_id.in_(list(counts)), Job.status.in_(_BOUND))
        .group_by(Job.cluster_id, Job.status)
    )
    for cluster_id, status, count, memory in rows:
        slot = counts[cluster_id or 0]  # never None: the read is by cluster
        slot[1 if status == JobStatus.RESOLVED.value else 0] += count
        slot[2] += int(memory or 0)
    return [
        selectors.ClusterLoad(
            name=cluster.name,
            id=cluster.id,
            type=cluster.type,
            tags=tuple(cluster.tags),
            command=command.name,
            max_concurrent_jobs=cluster.max_concurrent_jobs,
            running=counts[cluster.id][0],
            queued=counts[cluster.id][1],
            max_memory_mb=cluster.max_memory_mb,
            committed_memory_mb=counts[cluster.id][2],
            job_memory_mb=memory,
        )
        for cluster, command, memory in pairs
    ]
