"""Cluster selectors an operator might write, named by HEADWATER_JOBS_CLUSTER_SELECTOR in the selection tests
(``cluster_selectors:busiest``): one that uses the loads it is given, and ones that misbehave."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from headwater.jobs.schemas import JobSubmit
from headwater.jobs.selectors import ClusterLoad

# What the last call saw: the candidates and the job's name (the tests read it back).
SEEN: list[tuple[tuple[ClusterLoad, ...], str]] = []


def busiest(candidates: Sequence[ClusterLoad], request: JobSubmit) -> ClusterLoad:
    """The cluster with the most jobs bound to it (the opposite of the default, so its use is visible)."""
    SEEN.append((tuple(candidates), request.name))
    return max(candidates, key=lambda c: (c.jobs, c.name))


def undecided(candidates: Sequence[ClusterLoad], request: JobSubmit) -> ClusterLoad | None:
    """Leaves the choice to the default."""
    return None


def stranger(candidates: Sequence[ClusterLoad], request: JobSubmit) -> ClusterLoad:
    """A cluster that is not among the candidates."""
    return replace(candidates[0], name="elsewhere", id=-1)


def by_name(candidates: Sequence[ClusterLoad], request: JobSubmit) -> str:
    """A name instead of a candidate."""
    return candidates[0].name


def broken(candidates: Sequence[ClusterLoad], request: JobSubmit) -> ClusterLoad:
    """Fails."""
    raise RuntimeError("selector bug")
