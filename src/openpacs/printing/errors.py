"""Print errors. Like the archive's, they know no protocol: `dimse/status.py` maps them to
N-service statuses and `web/errors.py` (through the archive's bases) to HTTP."""

from __future__ import annotations

from openpacs.archive.errors import ArchiveError, NotFound


class PrintError(ArchiveError):
    """Base of what a print request can fail with; the message is the reason given back."""


class NoSuchInstance(PrintError):
    """The request names a film session, film box, image box or LUT this session lacks."""


class DuplicateInstance(PrintError):
    """An N-CREATE names a SOP Instance UID already in use."""


class ClassInstanceConflict(PrintError):
    """The SOP instance exists but is not of the SOP class the request names."""


class InvalidValue(PrintError):
    """An attribute holds a value we cannot use; `keyword` names it."""

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword}: {reason}")
        self.keyword = keyword


class MissingValue(InvalidValue):
    """A required attribute is absent or empty."""


class NotSettable(InvalidValue):
    """An attribute that may not be changed, or does not belong to the object."""


class UnsupportedOperation(PrintError):
    """The operation does not apply to this object (an N-ACTION on an image box)."""


class NoSuchAction(PrintError):
    """An N-ACTION with an Action Type ID the object lacks."""


class ResourceLimit(PrintError):
    """A limit was reached: one film session per association, film size, image box bytes."""


class NothingToPrint(PrintError):
    """An N-ACTION on a film session without film boxes."""


class ImageTooLarge(InvalidValue):
    """An image does not fit its box and the SCU asked to fail rather than decimate or crop."""


class PrintFailed(PrintError):
    """Composing or keeping the film failed (storage, index); retrying may work."""


class JobNotFound(NotFound):
    """No print job has that id, or the job has no such film."""
