"""Accounts: users and roles, sessions, personal API tokens, sign-in throttling, the audit log.

Beside nodes and jobs: above the archive (whose index holds the tables), below the web side,
which checks every request with it (`openpacs.web.auth`)."""

from __future__ import annotations

from openpacs.accounts.audit import Action, Actor
from openpacs.accounts.clock import Clock, utcnow
from openpacs.accounts.errors import (
    LastAdmin,
    LockedOut,
    TokenNotFound,
    UserExists,
    UserNotFound,
    WeakPassword,
)
from openpacs.accounts.users import Role
from openpacs.archive.errors import ArchiveError

__all__ = [
    "Action",
    "Actor",
    "ArchiveError",
    "Clock",
    "LastAdmin",
    "LockedOut",
    "Role",
    "TokenNotFound",
    "UserExists",
    "UserNotFound",
    "WeakPassword",
    "utcnow",
]
