"""Personal API tokens: shown once at creation, kept as SHA-256, revoked by deleting."""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from openpacs.accounts.errors import TokenNotFound
from openpacs.accounts.sessions import TOUCH_EVERY, digest
from openpacs.archive.models import ApiToken, User

# Recognisable in logs and secret scanners; the rest is 256 random bits.
PREFIX = "opt_"


def create(session: Session, user: User, name: str, now: dt.datetime) -> tuple[ApiToken, str]:
    """A new token for `user`: the row and the token itself (the only time it is known)."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=digest(token), created_at=now)
    session.add(row)
    session.flush()
    return row, token


def create_launch_token(
    session: Session, user: User, name: str, now: dt.datetime, lifetime: dt.timedelta
) -> tuple[ApiToken, str]:
    """A read-only token of `user` that ends after `lifetime` (a viewer launch link carries
    it); the user's launch tokens that ended already are removed."""
    session.execute(
        delete(ApiToken).where(
            ApiToken.user_id == user.id,
            ApiToken.expires_at.is_not(None),
            ApiToken.expires_at <= now,
        )
    )
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=digest(token),
        created_at=now,
        expires_at=now + lifetime,
        read_only=True,
    )
    session.add(row)
    session.flush()
    return row, token


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )


def delete_token(session: Session, user: User, token_id: int) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise TokenNotFound(f"you have no token {token_id}")
    session.delete(row)
    return row


def find_token(session: Session, token: str) -> tuple[ApiToken, User] | None:
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest(token))
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def needs_touch(row: ApiToken, now: dt.datetime) -> bool:
    return row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY


def touch(session: Session, token_id: int, now: dt.datetime) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
