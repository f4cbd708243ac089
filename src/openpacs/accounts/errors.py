"""Account errors. Like the archive's, they know no protocol: `web/errors.py` maps them."""

from __future__ import annotations

from openpacs.archive.errors import ArchiveError, Conflict, NotFound


class UserNotFound(NotFound):
    """No user of that name."""


class UserExists(Conflict):
    """The user name is taken."""


class LastAdmin(Conflict):
    """The change would leave no enabled admin, and so no one to manage users."""


class TokenNotFound(NotFound):
    """No token of that id among the user's own."""


class WeakPassword(ArchiveError):
    """A new password breaks a rule; the message names it."""


class LockedOut(ArchiveError):
    """Too many failed sign-ins for a user name or a client address; `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} seconds")
        self.retry_after = retry_after
