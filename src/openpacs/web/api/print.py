"""/api/print/jobs: what modalities printed to the Print SCP, with each film's PNG."""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse
from PIL import Image
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from openpacs import jobs as job_queue
from openpacs import logs, nodes
from openpacs.accounts import Action
from openpacs.archive.errors import Conflict
from openpacs.archive.models import PrintFilm, PrintJob
from openpacs.printing import compose, jobs
from openpacs.printing.errors import JobNotFound
from openpacs.printing.outgoing import Layout
from openpacs.web import auth
from openpacs.web.api.deps import ReadSession, ServicesDep, WriteSession, core_of
from openpacs.web.api.jobs import JobOut as QueuedJob

log = logs.get_logger("api")
router = APIRouter(prefix="/api/print", tags=["print"])


class ImageBoxOut(BaseModel):
    position: int
    uid: str
    file: str | None  # the archived N-SET dataset, relative to the job folder


class AnnotationOut(BaseModel):
    position: int  # 1 above the images, 2 below
    text: str


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
    annotations: list[AnnotationOut]
    created_at: dt.datetime


class PrintJobOut(BaseModel):
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


class PrintJobDetail(PrintJobOut):
    films: list[FilmOut]


class PrintJobPage(BaseModel):
    total: int
    items: list[PrintJobOut]


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
        annotations=[AnnotationOut.model_validate(a) for a in film.annotations or []],
        created_at=film.created_at,
    )


@router.get("/jobs", response_model=PrintJobPage)
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
) -> PrintJobPage:
    """Newest first; every filter optional, `state` repeatable."""
    filters = jobs.Filters(
        calling_ae=calling_ae, since=_utc(since), until=_utc(until), states=state or ()
    )
    found, total = jobs.list_jobs(session, filters, limit=limit, offset=offset)
    return PrintJobPage(total=total, items=[PrintJobOut.model_validate(_job(j)) for j in found])


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


@router.get("/jobs/{job_id}", response_model=PrintJobDetail)
def get_job(job_id: int, session: ReadSession) -> PrintJobDetail:
    """The job with its films (attributes, image boxes, the stored Secondary Capture)."""
    job = jobs.get(session, job_id)
    films = [_film(job_id, f) for f in jobs.films_of(session, job_id)]
    return PrintJobDetail.model_validate({**_job(job), "films": films})


@router.delete("/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: int, session: WriteSession, request: Request) -> Response:
    """Forget the job, its PNGs and archived image boxes; the films stored as Secondary
    Captures stay in the archive (they are images of a study like any other). 409 while the
    modality's association is still open."""
    studies: list[str | None] = [*jobs.studies_of(session, job_id)]
    folder = jobs.delete(session, job_id)
    for study in studies or [None]:  # a job without films: one row naming the job
        auth.record_in(session, request, Action.deleted, study=study, obj=f"print_job:{job_id}")
    session.flush()
    if folder:
        shutil.rmtree(core_of(request).storage.print_dir / folder, ignore_errors=True)
    log.info("print job %d removed", job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _film_path(
    request: Request, session: Session, job_id: int, number: int
) -> tuple[Path, PrintFilm]:
    job = jobs.get(session, job_id)
    film = jobs.film(session, job_id, number)
    path = core_of(request).storage.print_dir / job.folder / film.png
    if not path.is_file():
        raise JobNotFound(f"the PNG of film {number} of print job {job_id} is missing")
    return path, film


SizeCap = Annotated[
    int | None,
    Query(
        ge=16, le=8192, description="longest side in pixels at most (the film is never enlarged)"
    ),
]


def _capped(path: Path, size: int | None) -> Image.Image:
    image = Image.open(path)
    if size is not None:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    return image


@router.get(
    "/jobs/{job_id}/films/{number}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def film_png(
    job_id: int, number: int, session: ReadSession, request: Request, size: SizeCap = None
) -> Response:
    """The film as composed, as PNG; `size` caps its longest side."""
    path, _ = _film_path(request, session, job_id, number)
    if size is None:
        return FileResponse(path, media_type="image/png")
    out = io.BytesIO()
    with _capped(path, size) as image:
        image.save(out, format="PNG")
    return Response(out.getvalue(), media_type="image/png")


@router.get(
    "/jobs/{job_id}/films/{number}.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def film_pdf(
    job_id: int, number: int, session: ReadSession, request: Request, size: SizeCap = None
) -> Response:
    """The film as a one-page PDF at its film size (14INX17IN prints 14 x 17 inches); `size`
    caps the longest side of the image inside, in pixels."""
    path, film = _film_path(request, session, job_id, number)
    box = film.attributes
    film_size = str((box.get("20100050") or {}).get("Value", ["8INX10IN"])[0])
    landscape = (box.get("20100040") or {}).get("Value", ["PORTRAIT"])[0] == "LANDSCAPE"
    width_mm, height_mm = compose.FILM_SIZES_MM.get(film_size, (203.2, 254.0))
    page_mm = max(width_mm, height_mm) if landscape else min(width_mm, height_mm)
    out = io.BytesIO()
    with _capped(path, size) as image:
        # The resolution that makes the page the film's physical width.
        dpi = image.width / (page_mm / compose.MM_PER_INCH)
        image.save(out, format="PDF", resolution=dpi)
    return Response(out.getvalue(), media_type="application/pdf")


PRINT_KIND = "print"  # the job kind dimse/print_job.py handles


class PrintIn(BaseModel):
    node: str = Field(min_length=1, description="a registered node with the printer use")
    layout: Layout = Field(
        Layout.composed,
        description="composed: each film as we composed it, one image per film; original: "
        "the modality's own film box and image boxes, laid out by the printer",
    )


@router.post(
    "/jobs/{job_id}/print",
    response_model=QueuedJob,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        404: {"description": "no such print job or node"},
        409: {"description": "the print job is still being received"},
        422: {"description": "the node is not a printer, or the job has no film"},
    },
)
def forward_job(
    job_id: int,
    body: PrintIn,
    session: WriteSession,
    services: ServicesDep,
    background: BackgroundTasks,
) -> QueuedJob | JSONResponse:
    """Queue a job printing this print job's films on a registered printer (Print SCU); follow
    it with GET /api/jobs/{id}. The print job turns `forwarded`, or `failed` with the reason."""
    job = jobs.get(session, job_id)
    if job.state in (jobs.State.received.value, jobs.State.printing.value):
        raise Conflict(f"print job {job_id} is {job.state}: wait until its films are kept")
    node = nodes.get(session, body.node)
    problem = None
    if not node.printer:
        problem = f"node {body.node!r} is not registered as a printer (add 'printer' to its uses)"
    elif not job.film_count:
        problem = f"print job {job_id} has no film to print"
    if problem is not None:
        log.warning("POST /api/print/jobs/%d/print -> 422: %s", job_id, problem)
        return JSONResponse({"error": "CannotPrint", "detail": problem}, status_code=422)
    parameters = {"print_job": job_id, "node": body.node, "layout": body.layout.value}
    queued = job_queue.create(session, PRINT_KIND, parameters)
    log.info("job %d queued: print job %d to %s (%s)", queued.id, job_id, body.node, body.layout)
    background.add_task(services.wake_jobs)
    return QueuedJob.of(queued)
