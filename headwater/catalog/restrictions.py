"""Restricted datasets: a dataset restricted to groups by hand, tags that restrict every dataset carrying them,
and the filters every read uses so that a reader outside the audience never learns such a dataset exists.

A dataset's audience is the union of the groups (or users) of its own restriction and of each restricting tag
it carries; it is kept in ``dataset_audience`` (one row per member) so that a read filters with one indexed
subquery. An empty audience means the dataset is not restricted. Admins see everything (their audience is
None). docs/security/restricted-data.md says why and how.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, cast, delete, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from headwater.auth.actions import Action
from headwater.auth.policy import Audience, Resource, audience_of, check, may_see
from headwater.auth.principal import Principal
from headwater.catalog.events import metadata_changed
from headwater.catalog.models import (
    Dataset,
    DatasetAudience,
    DatasetRestriction,
    DatasetTag,
    Field,
    RestrictingTag,
)
from headwater.db import in_chunks, utcnow
from headwater.errors import InvalidInput, NotFound

__all__ = [
    "RestrictionView",
    "audience_or_all",
    "audience_members",
    "check_restrict",
    "clear_restricting_tag",
    "clear_restriction",
    "get_restriction",
    "hidden_among",
    "is_visible",
    "list_restricting_tags",
    "refresh_audience",
    "restricting_tags_among",
    "set_restricting_tag",
    "set_restriction",
    "visible",
]


# ------------------------------------------------------------------------------------ reading


def visible(column: InstrumentedAttribute[int] | ColumnElement[int], audience: Audience) -> ColumnElement[bool] | None:
    """The condition that the dataset whose id is ``column`` is visible to ``audience`` (None: no condition)."""
    if audience is None:
        return None
    return or_(
        ~exists().where(DatasetAudience.dataset_id == column),
        exists().where(DatasetAudience.dataset_id == column, DatasetAudience.member.in_(sorted(audience))),
    )


def audience_members(session: Session, dataset_ids: Iterable[int]) -> dict[int, set[str]]:
    """The audience of each restricted dataset among ``dataset_ids`` (unrestricted ones are absent)."""
    found: dict[int, set[str]] = {}
    for chunk in in_chunks(sorted(set(dataset_ids))):
        for dataset_id, member in session.execute(
            select(DatasetAudience.dataset_id, DatasetAudience.member).where(DatasetAudience.dataset_id.in_(chunk))
        ):
            found.setdefault(dataset_id, set()).add(member)
    return found


def hidden_among(session: Session, dataset_ids: Iterable[int], audience: Audience) -> set[int]:
    """The datasets among ``dataset_ids`` that ``audience`` may not see."""
    if audience is None:
        return set()
    return {i for i, members in audience_members(session, dataset_ids).items() if not members & audience}


def is_visible(session: Session, dataset_id: int, audience: Audience) -> bool:
    """Whether ``audience`` may see the dataset ``dataset_id`` (true for a dataset that does not exist)."""
    return not hidden_among(session, [dataset_id], audience)


@dataclass(frozen=True)
class RestrictionView:
    """A dataset's restriction as an admin or owner sees it."""

    dataset_id: int
    groups: list[str]
    set_by: str | None
    set_at: str | None
    tags: dict[str, list[str]]
    audience: list[str]


def get_restriction(session: Session, *, dataset_id: int) -> RestrictionView:
    """A dataset's own restriction, the restricting tags it carries, and the audience both make."""
    direct = session.get(DatasetRestriction, dataset_id)
    tags = {
        tag: sorted(groups)
        for tag, groups in session.execute(
            select(RestrictingTag.tag, RestrictingTag.groups)
            .join(DatasetTag, DatasetTag.tag == RestrictingTag.tag)
            .where(DatasetTag.dataset_id == dataset_id)
            .order_by(RestrictingTag.tag)
        )
    }
    restricting = {t: g for t, g in session.execute(select(RestrictingTag.tag, RestrictingTag.groups))}
    for column_tags in session.scalars(select(Field.tags).where(Field.dataset_id == dataset_id)):
        for tag in column_tags or ():
            if tag in restricting:  # a restricting tag on a column restricts the dataset too
                tags[tag] = sorted(restricting[tag])
    return RestrictionView(
        dataset_id=dataset_id,
        groups=sorted(direct.groups) if direct else [],
        set_by=direct.set_by if direct else None,
        set_at=direct.set_at.isoformat() if direct else None,
        tags=tags,
        audience=sorted(audience_members(session, [dataset_id]).get(dataset_id, set())),
    )


def restricting_tags_among(session: Session, tags: Iterable[str]) -> set[str]:
    """Which of ``tags`` restrict the datasets carrying them."""
    wanted = sorted(set(tags))
    if not wanted:
        return set()
    return set(session.scalars(select(RestrictingTag.tag).where(RestrictingTag.tag.in_(wanted))))


def list_restricting_tags(session: Session) -> list[RestrictingTag]:
    """Every restricting tag, by tag (there are few: they are a policy an admin writes)."""
    return list(session.scalars(select(RestrictingTag).order_by(RestrictingTag.tag).limit(1000)))


# ------------------------------------------------------------------------------------ writing


def refresh_audience(session: Session, dataset_ids: Sequence[int]) -> None:
    """Derive ``dataset_audience`` again for these datasets from their restriction and restricting tags."""
    ids = sorted(set(dataset_ids))
    for chunk in in_chunks(ids):
        members: set[tuple[int, str]] = set()
        for dataset_id, groups in session.execute(
            select(DatasetRestriction.dataset_id, DatasetRestriction.groups).where(
                DatasetRestriction.dataset_id.in_(chunk)
            )
        ):
            members.update((dataset_id, g) for g in groups)
        for dataset_id, groups in session.execute(
            select(DatasetTag.dataset_id, RestrictingTag.groups)
            .join(RestrictingTag, RestrictingTag.tag == DatasetTag.tag)
            .where(DatasetTag.dataset_id.in_(chunk))
        ):
            members.update((dataset_id, g) for g in groups)
        restricting: dict[str, list[str]] = {
            t: g for t, g in session.execute(select(RestrictingTag.tag, RestrictingTag.groups))
        }
        if restricting:  # a column tagged pii restricts its whole dataset (restriction is per dataset)
            for dataset_id, tags in session.execute(
                select(Field.dataset_id, Field.tags).where(Field.dataset_id.in_(chunk))
            ):
                for tag in tags or ():
                    members.update((dataset_id, g) for g in restricting.get(tag, ()))
        session.execute(delete(DatasetAudience).where(DatasetAudience.dataset_id.in_(chunk)))
        if members:
            session.add_all(DatasetAudience(dataset_id=d, member=m) for d, m in sorted(members))
    session.flush()


def check_restrict(principal: Principal, dataset: Dataset) -> None:
    """Refuse (403) unless ``principal`` may restrict ``dataset`` or lift its restriction: admins and its owners."""
    owners = [o.owner for o in dataset.owners]
    check(principal, Action.CATALOG_RESTRICT, Resource("dataset", dataset.name, owners=owners))


def _groups(groups: Sequence[str]) -> list[str]:
    cleaned = sorted({g.strip() for g in groups})
    if not cleaned or "" in cleaned:
        raise InvalidInput("name at least one group, none of them empty", detail={"field": "groups"})
    return cleaned


def set_restriction(session: Session, *, dataset: Dataset, groups: Sequence[str], principal: Principal) -> None:
    """Restrict ``dataset`` to ``groups`` (replacing its restriction), as ``principal`` (who must be allowed).

    Someone who is not an admin may not restrict a dataset away from themselves: they would lose sight of it.
    """
    check_restrict(principal, dataset)
    wanted = _groups(groups)
    if not may_see(principal, wanted):
        raise InvalidInput(
            f"you are in none of {wanted}: you would no longer see dataset {dataset.id}; include a group of yours",
            detail={"field": "groups"},
        )
    row = session.get(DatasetRestriction, dataset.id)
    if row is None:
        session.add(DatasetRestriction(dataset_id=dataset.id, groups=wanted, set_by=principal.name, set_at=utcnow()))
    else:
        row.groups, row.set_by, row.set_at = wanted, principal.name, utcnow()
    session.flush()
    refresh_audience(session, [dataset.id])
    metadata_changed(session, [dataset.id], {"by": principal.name, "changed": ["restriction"]})


def clear_restriction(session: Session, *, dataset: Dataset, principal: Principal) -> None:
    """Lift ``dataset``'s own restriction (its restricting tags still apply); NotFound when it has none."""
    check_restrict(principal, dataset)
    row = session.get(DatasetRestriction, dataset.id)
    if row is None:
        raise NotFound(f"dataset {dataset.id} has no restriction of its own", detail={"field": "dataset_id"})
    session.delete(row)
    session.flush()
    refresh_audience(session, [dataset.id])
    metadata_changed(session, [dataset.id], {"by": principal.name, "changed": ["restriction"]})


def _tagged(session: Session, tag: str) -> list[int]:
    tagged = set(session.scalars(select(DatasetTag.dataset_id).where(DatasetTag.tag == tag)))
    # Column tags are a JSON list per field: narrowed by its text in SQL (both databases), then checked exactly.
    text = cast(Field.tags, String)
    for dataset_id, tags in session.execute(select(Field.dataset_id, Field.tags).where(text.contains(f'"{tag}"'))):
        if tag in (tags or ()):
            tagged.add(dataset_id)
    return sorted(tagged)


def set_restricting_tag(session: Session, *, tag: str, groups: Sequence[str], principal: Principal) -> RestrictingTag:
    """Make ``tag`` restrict every dataset carrying it (now and later) to ``groups``; admins only."""
    check(principal, Action.ADMIN)
    wanted = _groups(groups)
    row = session.get(RestrictingTag, tag)
    if row is None:
        row = RestrictingTag(tag=tag, groups=wanted, set_by=principal.name, set_at=utcnow())
        session.add(row)
    else:
        row.groups, row.set_by, row.set_at = wanted, principal.name, utcnow()
    session.flush()
    tagged = _tagged(session, tag)
    refresh_audience(session, tagged)
    metadata_changed(session, tagged, {"by": principal.name, "changed": ["restriction"], "tag": tag})
    return row


def clear_restricting_tag(session: Session, *, tag: str, principal: Principal) -> None:
    """Stop ``tag`` restricting the datasets carrying it; NotFound when it does not."""
    check(principal, Action.ADMIN)
    row = session.get(RestrictingTag, tag)
    if row is None:
        raise NotFound(f"tag {tag!r} restricts nothing", detail={"field": "tag"})
    session.delete(row)
    session.flush()
    tagged = _tagged(session, tag)
    refresh_audience(session, tagged)
    metadata_changed(session, tagged, {"by": principal.name, "changed": ["restriction"], "tag": tag})


def audience_or_all(principal: Principal | None) -> Audience:
    """The audience of ``principal``; None (everything) for an internal caller, who passes no principal."""
    return None if principal is None else audience_of(principal)
