"""The audit log: who signed in, opened, sent, deleted or changed what, when, from where.
One INSERT per event; the caller's transaction carries it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openpacs.archive.models import AuditEvent


class Action(StrEnum):
    login = "login"
    login_failed = "login-failed"
    locked_out = "locked-out"
    logout = "logout"
    password_changed = "password-changed"
    user_created = "user-created"
    user_changed = "user-changed"
    user_deleted = "user-deleted"
    token_created = "token-created"
    token_deleted = "token-deleted"
    opened = "opened"
    downloaded = "downloaded"
    uploaded = "uploaded"
    sent = "sent"
    retrieved = "retrieved"
    deleted = "deleted"
    changed = "changed"


@dataclass(frozen=True)
class Actor:
    """Who acts: a user name (None: anonymous read) and the client address."""

    username: str | None
    address: str | None


def record(
    session: Session,
    actor: Actor,
    action: Action,
    *,
    at: dt.datetime,
    study: str | None = None,
    series: str | None = None,
    instance: str | None = None,
    obj: str | None = None,
    detail: str | None = None,
) -> None:
    session.add(
        AuditEvent(
            at=at,
            username=actor.username,
            address=actor.address,
            action=action.value,
            study_instance_uid=study,
            series_instance_uid=series,
            sop_instance_uid=instance,
            object=obj[:200] if obj else None,
            detail=detail,
        )
    )


@dataclass(frozen=True)
class Filters:
    username: str | None = None
    action: str | None = None
    study: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def search(
    session: Session, filters: Filters, limit: int, offset: int
) -> tuple[list[AuditEvent], int]:
    """Events matching `filters`, newest first, one page of them, and how many match."""
    conditions = []
    if filters.username:
        conditions.append(AuditEvent.username == filters.username)
    if filters.action:
        conditions.append(AuditEvent.action == filters.action)
    if filters.study:
        conditions.append(AuditEvent.study_instance_uid == filters.study)
    if filters.since:
        conditions.append(AuditEvent.at >= filters.since)
    if filters.until:
        conditions.append(AuditEvent.at < filters.until)
    total = session.scalar(select(func.count()).select_from(AuditEvent).where(*conditions)) or 0
    page = session.scalars(
        select(AuditEvent)
        .where(*conditions)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(page), total
