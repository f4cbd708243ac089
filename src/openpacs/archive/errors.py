"""Core errors. They know no protocol: `dimse/status.py` and `web/errors.py` map them."""

from __future__ import annotations


class ArchiveError(Exception):
    """Base of every failure the archive reports to a caller."""


class InvalidInstance(ArchiveError):
    """The object cannot be stored as it is: not DICOM, unreadable, or a key attribute is
    missing or unusable. The message says which and why."""


class InvalidAttribute(InvalidInstance):
    """A key attribute holds an unusable value: a UID with a path in it, one that disagrees with
    the command that carried it, and the like."""


class MissingAttribute(InvalidAttribute):
    """A required attribute (PatientID, a UID, the SOP class) is absent or empty."""


class DuplicateRefused(ArchiveError):
    """The SOP instance is stored already and the duplicate policy says refuse."""


class StorageUnavailable(ArchiveError):
    """The file could not be written: full disk, permissions. Retrying later may work."""


class StorageFull(StorageUnavailable):
    """No space left on the storage volume."""


class IndexUnavailable(ArchiveError):
    """The index database did not take the write. Retrying later may work."""


class NotFound(ArchiveError):
    """What was asked for is not in the archive."""


class CannotConvert(ArchiveError):
    """The object exists but cannot be given in the form asked for (another transfer syntax, a
    rendered image): the caller may fall back to another form."""


class InvalidQuery(ArchiveError):
    """A query that cannot be run: a malformed key value, a level the model lacks, a unique key
    missing above the level. `keyword` names the attribute, `reason` says why."""

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword}: {reason}")
        self.keyword = keyword
        self.reason = reason


class Conflict(ArchiveError):
    """The request does not fit the current state: a name taken already, a job finished."""
