"""QIDO-RS routes: studies, series and instances, at the top and under their parents."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from openpacs.archive.errors import CannotConvert
from openpacs.archive.query import Level
from openpacs.dicom import json as dj
from openpacs.web.dicomweb import media, qido, urls
from openpacs.web.dicomweb.common import accept, state, uid

router = APIRouter()
SERVICE = "openpacs"


def _search(request: Request, level: Level, path_uids: dict[str, str]) -> Response:
    ranges = accept(request)
    if not media.accepts_json(ranges):
        raise CannotConvert("searches answer application/dicom+json (or application/json) only")
    dicomweb = state(request)
    checked = {keyword: uid(value, keyword) for keyword, value in path_uids.items()}
    search = qido.parse(
        level,
        list(request.query_params.multi_items()),
        checked,
        max_results=dicomweb.settings.qido_max_results,
    )
    with dicomweb.core.sessions() as session:
        answers = qido.run(session, search)
    root = urls.service_root(request)
    body = dj.dumps([dj.to_json(qido.complete(ds, level, root)) for ds in answers])
    response = Response(body, media_type=media.DICOM_JSON)
    for text in qido.warnings_for(answers, search):
        response.headers.append("Warning", media.warning(SERVICE, text))
    return response


@router.get("/studies", summary="QIDO-RS: search for studies")
def search_studies(request: Request) -> Response:
    return _search(request, Level.STUDY, {})


@router.get("/series", summary="QIDO-RS: search for series")
def search_series(request: Request) -> Response:
    return _search(request, Level.SERIES, {})


@router.get("/instances", summary="QIDO-RS: search for instances")
def search_instances(request: Request) -> Response:
    return _search(request, Level.IMAGE, {})


@router.get("/studies/{study}/series", summary="QIDO-RS: search for series of a study")
def search_study_series(study: str, request: Request) -> Response:
    return _search(request, Level.SERIES, {"StudyInstanceUID": study})


@router.get("/studies/{study}/instances", summary="QIDO-RS: search for instances of a study")
def search_study_instances(study: str, request: Request) -> Response:
    return _search(request, Level.IMAGE, {"StudyInstanceUID": study})


@router.get(
    "/studies/{study}/series/{series}/instances",
    summary="QIDO-RS: search for instances of a series",
)
def search_series_instances(study: str, series: str, request: Request) -> Response:
    return _search(request, Level.IMAGE, {"StudyInstanceUID": study, "SeriesInstanceUID": series})
