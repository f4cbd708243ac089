"""/api/print/jobs: what modalities printed to the Print SCP, with each film's PNG."""

from __future__ import annotations

import datetime as dt
import shutil
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel

from openpacs import logs
from openpacs.archive.models import PrintFilm, PrintJob
from openpacs.printing import jobs
from openpacs.printing.errors import JobNotFound
from openpacs.web.api.deps import ReadSession, WriteSession, core_of

log = logs.get_logger("api")
router = APIRouter(prefix="/api/print", tags=["print"])


class ImageBoxOut(BaseModel):
    position: int
    uid: str
    file: str | None  # the archived N-SET dataset, relative to the job folder


class FilmOut(BaseModel):
    number: int
    film_box_uid: str
    width: int
    height: int
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str  # the Secondary Capture in the archive
    png_url: str
    attributes: dict[str, Any]  # the film box, DICOM JSON
    image_boxes: list[ImageBoxOut]
    created_at: dt.datetime


class JobOut(BaseModel):
    id: int
    calling_ae: str
    called_ae: str
    film_session_uid: str
    colour: bool
    state: jobs.State
    reason: str | None
    film_count: int
    attributes: dict[str, Any]  # the film session, DICOM JSON
    created_at: dt.datetime
    updated_at: dt.datetime


class JobDetail(JobOut):
    films: list[FilmOut]


class JobPage(BaseModel):
    total: int
    items: list[JobOut]


def _job(job: PrintJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "calling_ae": job.calling_ae,
        "called_ae": job.called_ae,
        "film_session_uid": job.film_session_uid,
        "colour": job.colour,
        "state": job.state,
        "reason": job.reason,
        "film_count": job.film_count,
        "attributes": job.attributes,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
    }


def _film(job_id: int, film: PrintFilm) -> FilmOut:
    return FilmOut(
        number=film.number,
        film_box_uid=film.film_box_uid,
        width=film.width,
        height=film.height,
        study_instance_uid=film.study_instance_uid,
        series_instance_uid=film.series_instance_uid,
        sop_instance_uid=film.sop_instance_uid,
        png_url=f"/api/print/jobs/{job_id}/films/{film.number}.png",
        attributes=film.attributes,
        image_boxes=[ImageBoxOut.model_validate(b) for b in film.image_boxes],
        created_at=film.created_at,
    )


@router.get("/jobs", response_model=JobPage)
def list_jobs(
    session: ReadSession,
    calling_ae: str | None = None,
    since: Annotated[
        dt.datetime | None, Query(description="created at or after (ISO 8601; UTC if naive)")
    ] = None,
    until: Annotated[
        dt.datetime | None, Query(description="created before (ISO 8601; UTC if naive)")
    ] = None,
    state: Annotated[list[jobs.State] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    """Newest first; every filter optional, `state` repeatable."""
    filters = jobs.Filters(
        calling_ae=calling_ae, since=_utc(since), until=_utc(until), states=state or ()
    )
    found, total = jobs.list_jobs(session, filters, limit=limit, offset=offset)
    return JobPage(total=total, items=[JobOut.model_validate(_job(j)) for j in found])


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@router.get("/jobs/{job_id}", response_model=JobDetail)
def get_job(job_id: int, session: ReadSession) -> JobDetail:
    """The job with its films (attributes, image boxes, the stored Secondary Capture)."""
    job = jobs.get(session, job_id)
    films = [_film(job_id, f) for f in jobs.films_of(session, job_id)]
    return JobDetail.model_validate({**_job(job), "films": films})


@router.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: int, session: WriteSession, request: Request) -> Response:
    """Forget the job, its PNGs and archived image boxes; the films stored as Secondary
    Captures stay in the archive (they are images of a study like any other). 409 while the
    modality's association is still open."""
    folder = jobs.delete(session, job_id)
    session.flush()
    if folder:
        shutil.rmtree(core_of(request).storage.print_dir / folder, ignore_errors=True)
    log.info("print job %d removed", job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/jobs/{job_id}/films/{number}.png",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
def film_png(job_id: int, number: int, session: ReadSession, request: Request) -> FileResponse:
    """The film as composed, as PNG."""
    job = jobs.get(session, job_id)
    film = jobs.film(session, job_id, number)
    path = core_of(request).storage.print_dir / job.folder / film.png
    if not path.is_file():
        raise JobNotFound(f"the PNG of film {number} of print job {job_id} is missing")
    return FileResponse(path, media_type="image/png")
