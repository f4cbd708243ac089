"""Sign-in throttling: failures counted per user name and per client address in the database
(so every process and a restart see them); too many within the window lock sign-in."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openpacs.accounts.errors import LockedOut
from openpacs.archive.models import LoginThrottle
from openpacs.config import AuthSettings

USER = "user"
ADDRESS = "address"


@dataclass(frozen=True)
class Limits:
    max_failures: int
    window: dt.timedelta
    lockout: dt.timedelta

    @classmethod
    def of(cls, settings: AuthSettings) -> Limits:
        return cls(
            settings.max_failures,
            dt.timedelta(minutes=settings.failure_window_minutes),
            dt.timedelta(minutes=settings.lockout_minutes),
        )


def _keys(username: str | None, address: str | None) -> list[tuple[str, str]]:
    keys = []
    if username:
        keys.append((USER, username.casefold()[:128]))
    if address:
        keys.append((ADDRESS, address[:128]))
    return keys


def _retry_after(until: dt.datetime, now: dt.datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def check(session: Session, username: str | None, address: str | None, now: dt.datetime) -> None:
    """Raises LockedOut while the user name or the address is locked."""
    for scope, key in _keys(username, address):
        row = session.get(LoginThrottle, (scope, key))
        if row is not None and row.locked_until is not None and row.locked_until > now:
            raise LockedOut(_retry_after(row.locked_until, now))


def failed(
    session: Session, username: str | None, address: str | None, limits: Limits, now: dt.datetime
) -> LockedOut | None:
    """Count a failure; returns LockedOut when this one locked the user name or address."""
    locked: dt.datetime | None = None
    for scope, key in _keys(username, address):
        row = _row(session, scope, key, now)
        if row.window_start + limits.window <= now:
            row.failures, row.window_start = 0, now
        row.failures += 1
        if row.failures >= limits.max_failures:
            row.locked_until = now + limits.lockout
            row.failures, row.window_start = 0, now
            locked = max(locked or row.locked_until, row.locked_until)
    session.flush()
    return None if locked is None else LockedOut(_retry_after(locked, now))


def succeeded(session: Session, username: str) -> None:
    """A user's sign-in clears the user name's count (not the address's: one good account
    must not let an address go on guessing others)."""
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.scope == USER, LoginThrottle.key == username.casefold()[:128]
        )
    )


def _row(session: Session, scope: str, key: str, now: dt.datetime) -> LoginThrottle:
    query = select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key)
    row = session.scalars(query.with_for_update()).one_or_none()
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = LoginThrottle(scope=scope, key=key, failures=0, window_start=now)
            session.add(row)
        return row
    except IntegrityError:  # another process counted a first failure at the same moment
        return session.scalars(query.with_for_update()).one()
