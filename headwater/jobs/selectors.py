"""Choosing one cluster when several match a job's winning criterion (Genie's ``ClusterSelector``, with load).

A selector sees each candidate cluster with its load (:class:`ClusterLoad`) and the job request, and returns one
candidate, or None to hand the choice to the default. Built in: ``least-loaded`` (the default) and ``random``;
``HEADWATER_JOBS_CLUSTER_SELECTOR=module:function`` names an operator's own. The tags every cluster and command
answers to without storing them (``headwater.id:<id>``, ``headwater.name:<name>``) are defined here too.
Why the default counts queued jobs and breaks ties at random: docs/concepts/jobs.md#choosing-among-clusters.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

from headwater.plugins import load_callable

if TYPE_CHECKING:
    from headwater.jobs.schemas import JobSubmit

__all__ = [
    "DEFAULT_SELECTOR",
    "ID_PREFIX",
    "NAME_PREFIX",
    "RESERVED_PREFIX",
    "ClusterLoad",
    "ClusterSelector",
    "Selection",
    "SelectorError",
    "check_criterion",
    "check_own_tags",
    "implicit_tags",
    "least_loaded",
    "load_selector",
    "random_cluster",
    "select",
]

log = logging.getLogger("headwater.jobs.selectors")

RESERVED_PREFIX = "headwater."
ID_PREFIX = "headwater.id:"
NAME_PREFIX = "headwater.name:"
DEFAULT_SELECTOR = "least-loaded"


def implicit_tags(resource_id: int, name: str) -> list[str]:
    """The tags a cluster or command answers to in criteria without storing them."""
    return [f"{ID_PREFIX}{resource_id}", f"{NAME_PREFIX}{name}"]


def check_own_tags(tags: list[str]) -> list[str]:
    """Refuse stored tags in the reserved ``headwater.`` prefix: one could claim another cluster's id or name."""
    for tag in tags:
        if tag.lower().startswith(RESERVED_PREFIX):
            raise ValueError(
                f"tag {tag!r}: tags starting {RESERVED_PREFIX!r} are reserved (every cluster and command already "
                f"answers to {ID_PREFIX}<id> and {NAME_PREFIX}<name>); choose another tag"
            )
    return tags


def check_criterion(tags: list[str]) -> list[str]:
    """Refuse criteria tags in the reserved prefix other than ``headwater.id:`` and ``headwater.name:`` (a typo
    there would otherwise match nothing, silently)."""
    for tag in tags:
        if tag.lower().startswith(RESERVED_PREFIX) and not tag.startswith((ID_PREFIX, NAME_PREFIX)):
            raise ValueError(
                f"criterion tag {tag!r}: the only {RESERVED_PREFIX!r} tags are {ID_PREFIX}<id> and {NAME_PREFIX}<name>"
            )
    return tags


@dataclass(frozen=True)
class ClusterLoad:
    """A candidate cluster as a selector sees it: what it is, the command that would run the job there, and the
    jobs bound to it now (queued for it or running on it)."""

    name: str
    id: int
    type: str
    tags: tuple[str, ...]
    command: str
    max_concurrent_jobs: int
    running: int
    queued: int
    max_memory_mb: int | None
    committed_memory_mb: int
    job_memory_mb: int | None

    @property
    def jobs(self) -> int:
        """Jobs bound to the cluster: running and queued."""
        return self.running + self.queued

    @property
    def load(self) -> Fraction:
        """Jobs bound to it per concurrent slot (exact, so equal loads compare equal)."""
        return Fraction(self.jobs, self.max_concurrent_jobs)

    @property
    def free_memory_mb(self) -> int | None:
        """Memory not yet promised to its jobs (negative when queued jobs wait for memory); None: not limited."""
        return None if self.max_memory_mb is None else self.max_memory_mb - self.committed_memory_mb

    def describe(self) -> str:
        """A short account of its load, for the job's resolution reason."""
        text = f"{self.name} {self.jobs}/{self.max_concurrent_jobs} jobs"
        if self.max_memory_mb is not None:
            text += f", {self.free_memory_mb} of {self.max_memory_mb} MB free"
        return text


class ClusterSelector(Protocol):
    """Choose one of ``candidates`` (at least two) for ``request``, or None to let the default choose."""

    def __call__(self, candidates: Sequence[ClusterLoad], request: JobSubmit, /) -> ClusterLoad | None: ...


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and the reason, in words, recorded with the job."""

    chosen: ClusterLoad
    why: str


class SelectorError(Exception):
    """The configured selector failed or answered something that is not a candidate."""


def _least_loaded_key(candidate: ClusterLoad) -> tuple[bool, Fraction, float]:
    free = candidate.free_memory_mb
    # Sent where its memory is not free, a job waits there while another cluster could run it now (Genie #549).
    short = free is not None and (candidate.job_memory_mb or 0) > free
    return short, candidate.load, -(float("inf") if free is None else free)


def least_loaded(candidates: Sequence[ClusterLoad], request: JobSubmit) -> ClusterLoad:
    """A cluster with the job's memory free before one without, then the fewest jobs (queued and running) per slot,
    then the most free memory (a cluster declaring none counts as unlimited); equal candidates are chosen between
    at random, so submissions resolved at the same moment from the same committed loads do not all land on one
    cluster."""
    best = min(_least_loaded_key(c) for c in candidates)
    return random.choice([c for c in candidates if _least_loaded_key(c) == best])


def random_cluster(candidates: Sequence[ClusterLoad], request: JobSubmit) -> ClusterLoad:
    """Any candidate, uniformly (Genie's default)."""
    return random.choice(list(candidates))


BUILT_IN: dict[str, ClusterSelector] = {"least-loaded": least_loaded, "random": random_cluster}


@lru_cache(maxsize=16)
def load_selector(spec: str) -> ClusterSelector:
    """The selector ``spec`` names: ``least-loaded``, ``random`` or ``module:function``; ValueError saying why not."""
    if spec in BUILT_IN:
        return BUILT_IN[spec]
    if ":" not in spec:
        raise ValueError(f"{spec!r} is not one of {sorted(BUILT_IN)} nor module:function")
    selector: ClusterSelector = load_callable(spec)
    return selector


def _reason(spec: str, chosen: ClusterLoad, candidates: Iterable[ClusterLoad], how: str) -> str:
    loads = "; ".join(c.describe() for c in candidates)
    return f"selector {spec} chose cluster {chosen.name!r}{how} among {loads}"


def select(candidates: Sequence[ClusterLoad], request: JobSubmit, spec: str) -> Selection:
    """Let the selector ``spec`` choose among ``candidates`` (two or more); SelectorError when it fails or
    answers something that is not one of them. None from a custom selector falls back to least-loaded."""
    try:
        selector = load_selector(spec)
    except ValueError as exc:
        raise SelectorError(f"cluster selector {exc}") from None
    try:
        chosen = selector(tuple(candidates), request)
    except Exception as exc:  # an operator's code: whatever it raises becomes the job's reason, never a 500
        log.exception("cluster selector %s raised", spec)
        raise SelectorError(f"cluster selector {spec} raised {type(exc).__name__}: {exc}") from None
    if chosen is None and spec not in BUILT_IN:
        fallback = least_loaded(candidates, request)
        return Selection(fallback, _reason(DEFAULT_SELECTOR, fallback, candidates, f" ({spec} returned None)"))
    if not isinstance(chosen, ClusterLoad) or chosen not in candidates:
        log.error("cluster selector %s returned %r, not a candidate", spec, chosen)
        raise SelectorError(
            f"cluster selector {spec} returned {chosen!r:.200}, not one of the candidates "
            f"{[c.name for c in candidates]}; fix HEADWATER_JOBS_CLUSTER_SELECTOR"
        )
    return Selection(chosen, _reason(spec, chosen, candidates, _how(spec, chosen, candidates)))


def _how(spec: str, chosen: ClusterLoad, candidates: Sequence[ClusterLoad]) -> str:
    if spec == "random":
        return " (at random)"
    if spec != DEFAULT_SELECTOR:
        return ""
    tied = [c.name for c in candidates if c != chosen and _least_loaded_key(c) == _least_loaded_key(chosen)]
    return f" (least loaded; tied with {tied}, picked at random)" if tied else " (least loaded)"
