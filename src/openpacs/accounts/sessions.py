"""Signed-in browser sessions: a random id in a cookie, its SHA-256 in the database."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from openpacs.archive.models import User, UserSession

# last_seen_at is written at most this often per session: not one write per request.
TOUCH_EVERY = dt.timedelta(seconds=60)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    """The CSRF token that goes with a session: derived from its id, so nothing more is
    stored, and a token of one session is worthless for another."""
    raw = hashlib.sha256(b"openpacs-csrf\0" + session_id.encode()).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True)
class Lifetime:
    absolute: dt.timedelta
    idle: dt.timedelta


def open_session(
    session: Session, user: User, lifetime: Lifetime, now: dt.datetime, address: str | None
) -> str:
    """A new session for `user`; returns the id for the cookie (not stored as such)."""
    session_id = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            id_hash=digest(session_id),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime.absolute,
            address=address,
        )
    )
    # Expired sessions of anyone are cleared here, at sign-in, not by a timer.
    session.execute(delete(UserSession).where(UserSession.expires_at <= now))
    return session_id


def find_session(
    session: Session, session_id: str, lifetime: Lifetime, now: dt.datetime
) -> tuple[UserSession, User] | None:
    """The live session and its user, or None when unknown, expired or idle too long."""
    row = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.id_hash == digest(session_id))
    ).one_or_none()
    if row is None:
        return None
    found, user = row[0], row[1]
    if found.expires_at <= now or found.last_seen_at + lifetime.idle <= now:
        return None
    return found, user


def needs_touch(found: UserSession, now: dt.datetime) -> bool:
    return now - found.last_seen_at >= TOUCH_EVERY


def touch(session: Session, id_hash: str, now: dt.datetime) -> None:
    session.execute(
        update(UserSession).where(UserSession.id_hash == id_hash).values(last_seen_at=now)
    )


def close_session(session: Session, session_id: str) -> None:
    session.execute(delete(UserSession).where(UserSession.id_hash == digest(session_id)))
