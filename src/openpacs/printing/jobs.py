"""Print jobs in the index: one per film session, its films, list filters, state changes.

Functions take the caller's session and never commit (the request's or the listener's
transaction owns it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from openpacs.archive.errors import Conflict
from openpacs.archive.models import PrintFilm, PrintJob
from openpacs.printing.errors import JobNotFound


class State(StrEnum):
    received = "received"  # the film session exists; nothing printed yet
    printing = "printing"  # a film is being composed and kept
    printed = "printed"  # every film asked for is kept
    forwarded = "forwarded"  # sent on to a printer (Print SCU)
    failed = "failed"  # see reason


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create(
    session: Session,
    *,
    calling_ae: str,
    called_ae: str,
    film_session_uid: str,
    colour: bool,
    attributes: dict[str, Any],
) -> PrintJob:
    when = _now()
    job = PrintJob(
        calling_ae=calling_ae,
        called_ae=called_ae,
        film_session_uid=film_session_uid,
        colour=colour,
        state=State.received.value,
        attributes=attributes,
        folder="",
        film_count=0,
        created_at=when,
        updated_at=when,
    )
    session.add(job)
    session.flush()
    job.folder = str(job.id)
    return job


def get(session: Session, job_id: int) -> PrintJob:
    job = session.get(PrintJob, job_id)
    if job is None:
        raise JobNotFound(f"no print job {job_id}")
    return job


def films_of(session: Session, job_id: int) -> list[PrintFilm]:
    return list(
        session.scalars(
            select(PrintFilm).where(PrintFilm.job_id == job_id).order_by(PrintFilm.number)
        )
    )


def film(session: Session, job_id: int, number: int) -> PrintFilm:
    found = session.scalars(
        select(PrintFilm).where(PrintFilm.job_id == job_id, PrintFilm.number == number)
    ).first()
    if found is None:
        raise JobNotFound(f"print job {job_id} has no film {number}")
    return found


def set_state(session: Session, job_id: int, state: State, reason: str | None = None) -> None:
    job = get(session, job_id)
    job.state, job.reason, job.updated_at = state.value, reason, _now()


def add_film(session: Session, job_id: int, film: PrintFilm) -> None:
    job = get(session, job_id)
    film.job_id = job_id
    session.add(film)
    job.film_count += 1
    job.updated_at = _now()


def next_film_number(session: Session, job_id: int) -> int:
    highest = session.scalar(select(func.max(PrintFilm.number)).where(PrintFilm.job_id == job_id))
    return int(highest or 0) + 1


def studies_of(session: Session, job_id: int) -> list[str]:
    """The studies a job's films were stored in (for the audit log)."""
    query = select(PrintFilm.study_instance_uid).where(PrintFilm.job_id == job_id).distinct()
    return sorted(session.scalars(query))


def delete(session: Session, job_id: int) -> str:
    """Remove the job and its films from the index; returns its folder for the caller to
    remove. A job still printing is refused (its association is writing into the folder)."""
    job = get(session, job_id)
    if job.state in (State.received.value, State.printing.value):
        raise Conflict(f"print job {job_id} is {job.state}: its association is still open")
    folder = job.folder
    session.delete(job)
    return folder


def interrupted(session: Session) -> int:
    """At start-up: jobs left received or printing by a server that stopped belong to
    associations that no longer exist; they failed. Returns how many."""
    found = list(
        session.scalars(
            select(PrintJob).where(PrintJob.state.in_([State.received.value, State.printing.value]))
        )
    )
    for job in found:
        job.state = (
            State.printed.value
            if job.film_count and job.state == State.printing.value
            else State.failed.value
        )
        if job.state == State.failed.value:
            job.reason = "the server stopped while the modality was printing"
        job.updated_at = _now()
    return len(found)


@dataclass(frozen=True)
class Filters:
    calling_ae: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    states: Sequence[State] = ()


def list_jobs(
    session: Session, filters: Filters, *, limit: int, offset: int
) -> tuple[list[PrintJob], int]:
    """Newest first, and how many match in all."""
    conditions: list[ColumnElement[bool]] = []
    if filters.calling_ae:
        conditions.append(PrintJob.calling_ae == filters.calling_ae)
    if filters.since is not None:
        conditions.append(PrintJob.created_at >= filters.since)
    if filters.until is not None:
        conditions.append(PrintJob.created_at < filters.until)
    if filters.states:
        conditions.append(PrintJob.state.in_([s.value for s in filters.states]))
    total = session.scalar(select(func.count()).select_from(PrintJob).where(*conditions)) or 0
    found = session.scalars(
        select(PrintJob)
        .where(*conditions)
        .order_by(PrintJob.created_at.desc(), PrintJob.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(found), int(total)
