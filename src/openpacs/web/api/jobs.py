"""/api/jobs: follow, cancel and retry jobs (send, retrieve, forward)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from openpacs import jobs, logs, nodes
from openpacs.accounts import Action
from openpacs.archive.models import Job, JobFailure
from openpacs.archive.retrieve import select_named
from openpacs.dicom import qr
from openpacs.dicom.uids import check_uid
from openpacs.web import auth
from openpacs.web.api.deps import ReadSession, ServicesDep, WriteSession, core_of

log = logs.get_logger("api")
router = APIRouter(prefix="/api/jobs", tags=["jobs"])
FAILURES_SHOWN = 1000
SENT_SHOWN = 10_000
# The kinds openpacs.dimse registers (this side may not import openpacs.dimse).
STORE_KIND, MOVE_KIND, GET_KIND = "store", "move", "get"
MAX_UIDS = 10_000


class JobOut(BaseModel):
    id: int
    kind: str
    state: jobs.JobState
    parameters: dict[str, Any]
    total: int
    done: int
    failed: int
    attempts: int
    next_attempt_at: dt.datetime | None  # queued jobs only: when a worker may start it
    error: str | None
    cancel_requested: bool
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(**_fields(job))


class FailureOut(BaseModel):
    item: str
    reason: str
    at: dt.datetime

    @classmethod
    def of(cls, failure: JobFailure) -> FailureOut:
        return cls(item=failure.item, reason=failure.reason, at=failure.at)


class JobDetail(JobOut):
    failures: list[FailureOut]  # the first FAILURES_SHOWN of the latest attempt
    sent: list[str] = Field(
        default_factory=list,
        description=(
            "Store jobs: SOP Instance UIDs the node has stored, over all attempts (the first "
            f"{SENT_SHOWN}), as of the job's last checkpoint: every 100 instances and at the "
            "end of each attempt. Other kinds: empty"
        ),
    )


def _sent(job: Job) -> list[str]:
    """What a store job's checkpoint (dimse/store_job.py, key `sent`) says the node stored."""
    if job.kind != STORE_KIND or not isinstance(job.checkpoint, dict):
        return []
    sent = job.checkpoint.get("sent")
    return [str(uid) for uid in sent[:SENT_SHOWN]] if isinstance(sent, list) else []


def _fields(job: Job) -> dict[str, Any]:
    queued = job.state == jobs.JobState.queued
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "parameters": job.parameters,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "attempts": job.attempts,
        "next_attempt_at": job.next_attempt_at if queued else None,
        "error": job.error,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


@router.get("", response_model=list[JobOut])
def list_jobs(
    session: ReadSession,
    state: jobs.JobState | None = None,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[JobOut]:
    """Newest first, optionally only one state or kind."""
    found = jobs.list_jobs(session, state=state, kind=kind, limit=limit, offset=offset)
    return [JobOut.of(job) for job in found]


class StoreIn(BaseModel):
    """What to send where: a registered node, and UIDs of stored studies, series, instances."""

    node: str = Field(min_length=1)
    studies: list[str] = Field(default_factory=list, max_length=MAX_UIDS)
    series: list[str] = Field(default_factory=list, max_length=MAX_UIDS)
    instances: list[str] = Field(default_factory=list, max_length=MAX_UIDS)

    @field_validator("studies", "series", "instances")
    @classmethod
    def _uids(cls, values: list[str]) -> list[str]:
        # Deduplicated in order, so the job's parameters say what was asked, once.
        return list(dict.fromkeys(check_uid(value, "UID") for value in values))


@router.post(
    "/store",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "no such node"}, 422: {"description": "nothing selected"}},
)
def store_job(
    body: StoreIn,
    request: Request,
    session: WriteSession,
    services: ServicesDep,
    background: BackgroundTasks,
) -> JobOut | JSONResponse:
    """Queue a job sending stored studies, series and instances to a node (C-STORE); follow it
    with GET /api/jobs/{id}. 404 for an unknown node, 422 when nothing stored is selected."""
    nodes.get(session, body.node)
    selected = select_named(
        session,
        core_of(request).storage,
        studies=body.studies,
        series=body.series,
        instances=body.instances,
    )
    if not selected:
        asked = (
            "no UIDs given"
            if not (body.studies or body.series or body.instances)
            else ("none of the UIDs given is stored")
        )
        detail = f"nothing to send: {asked}; name stored studies, series or instances"
        log.warning("POST /api/jobs/store -> 422: %s", detail)
        return JSONResponse(
            {"error": "NothingSelected", "detail": detail},
            status_code=422,
        )
    job = jobs.create(session, STORE_KIND, body.model_dump())
    _audit(session, request, Action.sent, body, job)
    log.info("job %d queued: store %d instance(s) to %s", job.id, len(selected), body.node)
    # After the commit (background tasks run once the answer is out), or the worker misses it.
    background.add_task(services.wake_jobs)
    return JobOut.of(job)


class RetrieveIn(BaseModel):
    """What to retrieve from a registered node: a patient (patient root), studies, series of
    one study, or instances of one series."""

    node: str = Field(min_length=1)
    patient_id: str | None = Field(default=None, max_length=64)
    studies: list[str] = Field(default_factory=list, max_length=MAX_UIDS)
    series: list[str] = Field(default_factory=list, max_length=MAX_UIDS)
    instances: list[str] = Field(default_factory=list, max_length=MAX_UIDS)

    @field_validator("studies", "series", "instances")
    @classmethod
    def _uids(cls, values: list[str]) -> list[str]:
        return list(dict.fromkeys(check_uid(value, "UID") for value in values))


class MoveIn(RetrieveIn):
    # The AE title the node sends to; left out: our Store SCP (retrieve to this archive).
    destination: str | None = Field(default=None, min_length=1, max_length=16)


def _audit(
    session: WriteSession, request: Request, action: Action, body: StoreIn | RetrieveIn, job: Job
) -> None:
    """One audit row per study and series named (instances: one row for all of them)."""
    where, what = f"node:{body.node}", f"job {job.id}"
    for study in body.studies:
        auth.record_in(session, request, action, study=study, obj=where, detail=what)
    for series in body.series:
        auth.record_in(session, request, action, series=series, obj=where, detail=what)
    if body.instances:
        detail = f"{what}: {len(body.instances)} instance(s)"
        auth.record_in(
            session, request, action, instance=body.instances[0], obj=where, detail=detail
        )
    if isinstance(body, RetrieveIn) and body.patient_id:
        auth.record_in(session, request, action, obj=where, detail=f"{what}: a patient")


def _queue_retrieve(
    kind: str,
    request: Request,
    body: RetrieveIn,
    session: WriteSession,
    services: ServicesDep,
    background: BackgroundTasks,
) -> JobOut | JSONResponse:
    nodes.get(session, body.node)
    try:
        selection = qr.Selection.of(body.model_dump())
    except qr.InvalidKeys as exc:
        log.warning("POST /api/jobs/%s -> 422: %s", kind, exc)
        return JSONResponse({"error": "InvalidSelection", "detail": str(exc)}, status_code=422)
    job = jobs.create(session, kind, body.model_dump(exclude_none=True))
    _audit(session, request, Action.retrieved, body, job)
    log.info("job %d queued: %s %s from %s", job.id, kind, selection.describe(), body.node)
    background.add_task(services.wake_jobs)
    return JobOut.of(job)


RETRIEVE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such node"},
    422: {"description": "not a patient, studies, series of one study or instances of one"},
}


@router.post(
    "/move",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=RETRIEVE_RESPONSES,
)
def move_job(
    body: MoveIn,
    request: Request,
    session: WriteSession,
    services: ServicesDep,
    background: BackgroundTasks,
) -> JobOut | JSONResponse:
    """Queue a job asking a node to C-MOVE studies, series or instances (or a patient) to
    `destination`, by default to us; follow it with GET /api/jobs/{id}."""
    return _queue_retrieve(MOVE_KIND, request, body, session, services, background)


@router.post(
    "/get",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=RETRIEVE_RESPONSES,
)
def get_instances_job(
    body: RetrieveIn,
    request: Request,
    session: WriteSession,
    services: ServicesDep,
    background: BackgroundTasks,
) -> JobOut | JSONResponse:
    """Queue a job fetching studies, series or instances (or a patient) from a node with
    C-GET into this archive; follow it with GET /api/jobs/{id}."""
    return _queue_retrieve(GET_KIND, request, body, session, services, background)


@router.get("/{job_id}", response_model=JobDetail)
def get_job(job_id: int, session: ReadSession) -> JobDetail:
    """The job, with the items its latest attempt could not handle and why, and for a store
    job the instances the node has stored (so a client shows each item's outcome)."""
    job = jobs.get(session, job_id)
    failures = jobs.failures(session, job_id, limit=FAILURES_SHOWN)
    return JobDetail(**_fields(job), failures=[FailureOut.of(f) for f in failures], sent=_sent(job))


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: int, session: WriteSession) -> JobOut:
    """A queued job is cancelled at once, a running one at its next item; 409 when finished."""
    job = jobs.cancel(session, job_id)
    log.info("job %d: cancel requested (%s)", job_id, job.state)
    return JobOut.of(job)


@router.post("/{job_id}/retry", response_model=JobOut)
def retry_job(
    job_id: int, session: WriteSession, services: ServicesDep, background: BackgroundTasks
) -> JobOut:
    """Queue a failed, partly failed or cancelled job again with fresh attempts; 409 otherwise."""
    job = jobs.retry(session, job_id)
    log.info("job %d queued again", job_id)
    # After the commit (background tasks run once the answer is out), or the worker misses it.
    background.add_task(services.wake_jobs)
    return JobOut.of(job)
