"""Jobs: long work (send, retrieve, forward) persisted in the index, so a restart loses nothing.

Register a handler per kind on a `JobRunner`, submit jobs, and let its workers run them:

    runner.register("store", send_instances)      # send_instances(parameters, context)
    job_id = runner.submit("store", {"node": "ORTHANC", "studies": [...]})
"""

from __future__ import annotations

from openpacs.jobs.errors import (
    Cancelled,
    Interrupted,
    JobConflict,
    JobNotFound,
    Lost,
    Transient,
)
from openpacs.jobs.repository import (
    FINISHED,
    RETRYABLE,
    JobState,
    cancel,
    create,
    failures,
    get,
    list_jobs,
    retry,
)
from openpacs.jobs.runner import Handler, JobContext, JobRunner

__all__ = [
    "FINISHED",
    "RETRYABLE",
    "Cancelled",
    "Handler",
    "Interrupted",
    "JobConflict",
    "JobContext",
    "JobNotFound",
    "JobRunner",
    "JobState",
    "Lost",
    "Transient",
    "cancel",
    "create",
    "failures",
    "get",
    "list_jobs",
    "retry",
]
