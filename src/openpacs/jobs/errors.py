"""Job errors: what callers of the job service see, and what handlers raise or meet."""

from __future__ import annotations

from openpacs.archive.errors import Conflict, NotFound


class JobNotFound(NotFound):
    """No job has that id."""


class JobConflict(Conflict):
    """The job's state does not allow what was asked: cancel a finished job, retry a running
    one."""


class Transient(Exception):
    """Raised by a handler: this attempt failed for a reason that may pass (the peer is busy,
    down or unreachable). The runner tries again after a backoff, up to `jobs.max_attempts`."""


class Cancelled(Exception):
    """Raised by `JobContext.check_cancelled()` once someone asked to cancel the job."""


class Interrupted(Exception):
    """Raised by `JobContext.check_cancelled()` when the server stops: the job goes back to the
    queue without spending an attempt, and resumes (from its checkpoint) at the next start."""


class Lost(Exception):
    """The job is no longer this runner's (taken over after its lease ran out, or deleted)."""
