"""Downloads of a study or a series as a ZIP, streamed: the files as stored
(`archive.zip`), or de-identified (`deidentified.zip?options=...`).

The answer starts once the index named every file and each was found on disk (404 / 503
before any byte); it is then written entry by entry, never built in memory or on disk. A
download is audited as `downloaded` when it starts.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from openpacs import logs
from openpacs.accounts import Action
from openpacs.archive import export, zipstream
from openpacs.archive.errors import InvalidQuery
from openpacs.dicom.deidentify import Option, Profile
from openpacs.web import auth
from openpacs.web.api.deps import core_of
from openpacs.web.dicomweb.common import only, state, uid

log = logs.get_logger("api")
router = APIRouter(prefix="/api/studies", tags=["studies"])
ZIP = "application/zip"
OPTIONS_HELP = "de-identification options joined by '+': " + ", ".join(o.value for o in Option)


def content_disposition(filename: str) -> str:
    """attachment with an ASCII fallback and the real name per RFC 5987 / RFC 6266."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _selection(request: Request, study: str, series: str | None) -> export.Selection:
    study = uid(study, "StudyInstanceUID")
    if series is not None:
        series = uid(series, "SeriesInstanceUID")
    core = core_of(request)
    with core.sessions() as session:
        return export.select_study(session, core.storage, study, series)


def _zip(request: Request, study: str, series: str | None) -> StreamingResponse:
    only(request, ())
    selection = _selection(request, study, series)
    auth.record(
        request,
        Action.downloaded,
        study=study,
        series=series,
        detail=f"ZIP as stored: {len(selection.members)} file(s), {selection.size} bytes",
    )
    return StreamingResponse(
        zipstream.stream(export.as_stored(selection)),
        media_type=ZIP,
        headers={"Content-Disposition": content_disposition(selection.filename)},
    )


def _key(request: Request) -> bytes:
    configured = core_of(request).settings.studies.deidentify_key
    return configured.encode("utf-8") if configured else state(request).anonymize_key


def _deidentified(
    request: Request, study: str, series: str | None, options: str
) -> StreamingResponse:
    only(request, ("options",))
    try:
        profile = Profile.from_names(options)
    except ValueError as exc:
        raise InvalidQuery("options", str(exc)) from exc
    selection = _selection(request, study, series)
    export.check_deidentifiable(selection)
    auth.record(
        request,
        Action.downloaded,
        study=study,
        series=series,
        detail=f"ZIP de-identified ({profile.name}): {len(selection.members)} file(s)",
    )
    name = f"{uid(study, 'StudyInstanceUID')}-deidentified.zip"
    return StreamingResponse(
        zipstream.stream(export.deidentified(selection, _key(request), profile)),
        media_type=ZIP,
        headers={"Content-Disposition": content_disposition(name)},
    )


@router.get("/{study}/archive.zip", summary="Download a study as a ZIP")
def study_zip(study: str, request: Request) -> StreamingResponse:
    """Every file of the study as stored, in patient/study/series folders (streamed)."""
    return _zip(request, study, None)


@router.get("/{study}/series/{series}/archive.zip", summary="Download a series as a ZIP")
def series_zip(study: str, series: str, request: Request) -> StreamingResponse:
    """Every file of one series as stored (streamed)."""
    return _zip(request, study, series)


@router.get("/{study}/deidentified.zip", summary="Export a study de-identified")
def study_deidentified(
    study: str, request: Request, options: str = Query("basic", description=OPTIONS_HELP)
) -> StreamingResponse:
    """Every file through the PS3.15 Basic Profile and the options named (keyed by
    `[studies] deidentify_key`); 406 when an object has burned-in annotation."""
    return _deidentified(request, study, None, options)


@router.get("/{study}/series/{series}/deidentified.zip", summary="Export a series de-identified")
def series_deidentified(
    study: str,
    series: str,
    request: Request,
    options: str = Query("basic", description=OPTIONS_HELP),
) -> StreamingResponse:
    """One series through the PS3.15 Basic Profile and the options named."""
    return _deidentified(request, study, series, options)
