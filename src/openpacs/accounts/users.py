"""Users: create, change, delete, sign in; the first start's `admin`."""

from __future__ import annotations

import datetime as dt
import functools
import re
from enum import StrEnum

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from openpacs.accounts import passwords, throttle
from openpacs.accounts.clock import utcnow
from openpacs.accounts.errors import LastAdmin, UserExists, UserNotFound, WeakPassword
from openpacs.archive.models import ApiToken, User, UserSession

DEFAULT_ADMIN = "admin"
USERNAME = re.compile(r"^[\w.@-]{1,64}$")


class Role(StrEnum):
    """admin: everything; operator: everything but settings, users and audit; viewer: read."""

    admin = "admin"
    operator = "operator"
    viewer = "viewer"


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise ValueError(f"user name {username!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
    return username


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def find(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def get(session: Session, username: str) -> User:
    user = find(session, username)
    if user is None:
        raise UserNotFound(f"no user {username!r}")
    return user


def create(
    session: Session,
    username: str,
    password: str,
    role: Role,
    *,
    min_length: int,
    must_change_password: bool = False,
) -> User:
    """A new user; raises UserExists, WeakPassword, or ValueError for a bad name."""
    check_username(username)
    passwords.check_rules(password, username, min_length)
    if find(session, username) is not None:
        raise UserExists(f"user {username!r} exists already")
    return insert(session, username, passwords.hash_password(password), role, must_change_password)


def insert(
    session: Session, username: str, password_hash: str, role: Role, must_change: bool
) -> User:
    """Add a user whose password is hashed already (no rules checked)."""
    now = utcnow()
    user = User(
        username=username,
        password_hash=password_hash,
        role=role.value,
        disabled=False,
        must_change_password=must_change,
        created_at=now,
        updated_at=now,
        password_changed_at=now,
    )
    session.add(user)
    session.flush()
    return user


@functools.cache
def _default_admin_hash() -> str:
    # Hashed once per process: a test suite opens many empty databases.
    return passwords.hash_password(DEFAULT_ADMIN)


def ensure_admin(session: Session) -> User | None:
    """On an empty user table: `admin` with password `admin`, to be changed at first sign-in."""
    if session.scalar(select(func.count()).select_from(User)):
        return None
    return insert(session, DEFAULT_ADMIN, _default_admin_hash(), Role.admin, True)


def set_password(session: Session, user: User, password: str, *, must_change: bool) -> None:
    """Store a new password; every session of the user ends (tokens stay)."""
    user.password_hash = passwords.hash_password(password)
    user.must_change_password = must_change
    user.password_changed_at = user.updated_at = utcnow()
    end_sessions(session, user)


def reset_password(
    session: Session, user: User, password: str, *, min_length: int, must_change: bool
) -> None:
    """An admin's (or the server's `openpacs user passwd`) new password for `user`: the rules
    apply, it may not be the current one, and a lockout of the user name is lifted."""
    passwords.check_rules(password, user.username, min_length)
    if passwords.verify(user.password_hash, password):
        raise WeakPassword("the new password must differ from the current one")
    set_password(session, user, password, must_change=must_change)
    throttle.succeeded(session, user.username)


def update_user(
    session: Session,
    username: str,
    *,
    role: Role | None = None,
    password: str | None = None,
    disabled: bool | None = None,
    min_length: int,
) -> User:
    """An admin's change: role, a password reset (to be changed at next sign-in), disabled."""
    user = get(session, username)
    if role is not None and role != user.role:
        if user.role == Role.admin:
            _keep_an_admin(session, user)
        user.role = role.value
    if disabled is not None and disabled != user.disabled:
        if disabled and user.role == Role.admin:
            _keep_an_admin(session, user)
        user.disabled = disabled
        if disabled:
            end_sessions(session, user)
    if password is not None:
        reset_password(session, user, password, min_length=min_length, must_change=True)
    user.updated_at = utcnow()
    return user


def delete_user(session: Session, username: str) -> None:
    user = get(session, username)
    if user.role == Role.admin:
        _keep_an_admin(session, user)
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.delete(user)


def _keep_an_admin(session: Session, leaving: User) -> None:
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.admin.value, User.id != leaving.id, User.disabled.is_(False))
    )
    if not others:
        raise LastAdmin(f"{leaving.username!r} is the last enabled admin: make another first")


def end_sessions(session: Session, user: User) -> None:
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))


def signed_in(session: Session, user: User, when: dt.datetime) -> None:
    session.execute(update(User).where(User.id == user.id).values(last_login_at=when))
