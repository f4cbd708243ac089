"""Jobs in the index: create, read, cancel, retry. Functions never commit; the caller's
transaction (an HTTP request, the runner) does."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from openpacs.archive.models import Job, JobFailure
from openpacs.jobs.errors import JobConflict, JobNotFound

KIND_LENGTH = 32


class JobState(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    partly_failed = "partly_failed"
    failed = "failed"
    cancelled = "cancelled"


FINISHED = frozenset(
    {JobState.succeeded, JobState.partly_failed, JobState.failed, JobState.cancelled}
)
RETRYABLE = frozenset({JobState.partly_failed, JobState.failed, JobState.cancelled})


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def json_object(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A plain JSON object copy of `value`, or ValueError naming what cannot be stored."""
    try:
        decoded = json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"job {what} must be JSON (str, numbers, lists, objects): {exc}") from exc
    return decoded  # type: ignore[no-any-return]


def create(
    session: Session, kind: str, parameters: Mapping[str, Any], *, at: dt.datetime | None = None
) -> Job:
    """Queue a job; the runner that has a handler for `kind` picks it up."""
    if not 0 < len(kind) <= KIND_LENGTH:
        raise ValueError(f"job kind {kind!r}: use 1-{KIND_LENGTH} characters")
    when = at or now()
    job = Job(
        kind=kind,
        state=JobState.queued,
        parameters=json_object(parameters, "parameters"),
        next_attempt_at=when,
        created_at=when,
    )
    session.add(job)
    session.flush()
    return job


def get(session: Session, job_id: int, *, for_update: bool = False) -> Job:
    job = session.get(Job, job_id, with_for_update=for_update)
    if job is None:
        raise JobNotFound(f"no job {job_id}; GET /api/jobs lists them")
    return job


def list_jobs(
    session: Session,
    *,
    state: JobState | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Job]:
    """Newest first."""
    query = select(Job).order_by(Job.id.desc()).limit(limit).offset(offset)
    if state is not None:
        query = query.where(Job.state == state)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))


def failures(session: Session, job_id: int, *, limit: int = 1000) -> list[JobFailure]:
    query = select(JobFailure).where(JobFailure.job_id == job_id)
    return list(session.scalars(query.order_by(JobFailure.pk).limit(limit)))


def cancel(session: Session, job_id: int) -> Job:
    """A queued job is cancelled at once; a running one is flagged and its handler stops at the
    next item."""
    # Locked, so a runner claiming the job at this moment is either before or after us.
    job = get(session, job_id, for_update=True)
    if job.state in FINISHED:
        raise JobConflict(f"job {job_id} is {job.state} already; there is nothing to cancel")
    if job.state == JobState.queued:
        job.state = JobState.cancelled
        job.finished_at = now()
    job.cancel_requested = True
    session.flush()
    return job


def retry(session: Session, job_id: int) -> Job:
    """Queue a finished job again with fresh attempts; its handler resumes from its checkpoint."""
    job = get(session, job_id, for_update=True)
    if job.state not in RETRYABLE:
        hint = "wait for it to finish" if job.state not in FINISHED else "submit a new job"
        raise JobConflict(
            f"job {job_id} is {job.state}; only failed or cancelled jobs are retried ({hint})"
        )
    job.state = JobState.queued
    job.attempts = 0
    job.next_attempt_at = now()
    job.error = None
    job.cancel_requested = False
    job.finished_at = None
    session.flush()
    return job
