"""POST /api/uploads: the console's drag and drop. DICOM files and ZIPs of them, as
multipart/form-data (any number of files) or as one body (application/dicom,
application/zip, application/octet-stream), each stored through the one ingest path with its
own result.

The body is streamed part by part into the storage's temporary folder (`media.
receive_multipart`), never held in memory. Limits (`[studies] upload_*`): a body over
`upload_max_bytes` is 413 (files complete before it are still stored), more than
`upload_max_files` files 413 (likewise), a file over `upload_max_file_bytes` is rejected with
the reason and the others go on. A body cut off (client gone, proxy limit) is 400 naming the
truncation; the files that arrived whole before it are stored and listed.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from openpacs import logs
from openpacs.accounts import Action
from openpacs.archive import uploads
from openpacs.web import auth
from openpacs.web.api.deps import core_of
from openpacs.web.dicomweb import media

log = logs.get_logger("api")
router = APIRouter(prefix="/api/uploads", tags=["uploads"])
_FILENAME = re.compile(r'filename\*?=(?:UTF-8\'\')?"?([^";]*)"?', re.IGNORECASE)
SINGLE_BODY = ("application/dicom", "application/zip", "application/octet-stream")


class FileOut(BaseModel):
    name: str
    outcome: str  # stored | duplicate | overwritten | rejected
    reason: str | None = None
    study: str | None = None
    sop_instance_uid: str | None = None


class UploadOut(BaseModel):
    stored: int
    duplicates: int
    rejected: int
    files: list[FileOut]
    detail: str | None = None  # why the upload stopped early, if it did


def _name(part: media.ReceivedPart, number: int) -> str:
    found = _FILENAME.search(part.headers.get("content-disposition", ""))
    name = found.group(1).strip() if found else ""
    return name.replace("\\", "/").rsplit("/", 1)[-1][:200] or f"file-{number}"


def _answer(report: uploads.UploadReport, status: int, detail: str | None = None) -> JSONResponse:
    body = UploadOut(
        stored=report.count("stored") + report.count("overwritten"),
        duplicates=report.count("duplicate"),
        rejected=report.count(uploads.REJECTED),
        files=[FileOut(**vars(result)) for result in report.files],
        detail=detail,
    )
    return JSONResponse(body.model_dump(), status_code=status)


async def _receive(request: Request, limit: int) -> tuple[list[uploads.Received], str | None, int]:
    """The files of the body, why the body ended early (None when it did not) and the
    status that says so (413 past the size limit, 400 cut off)."""
    storage = core_of(request).storage
    content_type = media.parse_media_type(request.headers.get("content-type") or "none/none")
    kind = content_type.media_type
    if kind in ("multipart/form-data", media.MULTIPART):
        boundary = content_type.params.get("boundary")
        if not boundary:
            raise HTTPException(400, "the multipart Content-Type has no boundary")
        try:
            parts = await media.receive_multipart(
                request.stream(), boundary, storage.new_temp, limit, keep_complete=True
            )
            stopped, status = None, 200
        except media.Truncated as exc:
            parts, stopped, status = exc.complete, str(exc), 413 if exc.too_large else 400
        files = [
            uploads.Received(_name(part, number), part.path, part.content_type)
            for number, part in enumerate(parts, start=1)
        ]
        return files, stopped, status
    if kind in SINGLE_BODY:
        part = await media.receive_body(request.stream(), storage.new_temp, limit)
        name = request.headers.get("x-file-name") or ("upload.zip" if "zip" in kind else "upload")
        return [uploads.Received(name[:200], part.path, kind)], None, 200
    raise HTTPException(
        415,
        f"send multipart/form-data (one part per file) or one file as {', '.join(SINGLE_BODY)}",
    )


@router.post("", summary="Upload DICOM files or ZIPs of them", response_model=UploadOut)
async def upload(request: Request) -> JSONResponse:
    """Store each file through the ingest path; 200 with a result per file (stored,
    duplicate, overwritten, rejected with the reason)."""
    core = core_of(request)
    settings = core.settings.studies
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > settings.upload_max_bytes:
        raise HTTPException(
            413,
            f"the upload ({length} bytes) exceeds [studies] upload_max_bytes "
            f"({settings.upload_max_bytes}); send fewer files at a time",
        )
    files, detail, status = await _receive(request, settings.upload_max_bytes)
    limits = uploads.Limits(settings.upload_max_files, settings.upload_max_file_bytes)
    try:
        report = await run_in_threadpool(uploads.store_uploads, core.archive, files, limits)
    except uploads.TooManyFiles as exc:
        report, status, detail = exc.report, 413, str(exc)
    studies = sorted({r.study for r in report.files if r.study and r.outcome != "duplicate"})
    if report.files:
        await run_in_threadpool(
            auth.record,
            request,
            Action.uploaded,
            study=studies[0] if len(studies) == 1 else None,
            detail=(
                f"{report.count('stored')} stored, {report.count('duplicate')} duplicate, "
                f"{report.count(uploads.REJECTED)} rejected; studies: {', '.join(studies[:20])}"
            ),
        )
    log.info(
        "upload: %d stored, %d duplicate, %d rejected%s",
        report.count("stored"),
        report.count("duplicate"),
        report.count(uploads.REJECTED),
        f" ({detail})" if detail else "",
    )
    return _answer(report, status, detail)
