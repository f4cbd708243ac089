"""/api/studies: the console's study list (search, sort, page) and a study's series with
thumbnails. Patient data: behind the app-wide access check (`web.auth`) like every route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from openpacs.archive import browse
from openpacs.web.api.deps import ReadSession
from openpacs.web.dicomweb.common import uid

router = APIRouter(prefix="/api/studies", tags=["studies"])

DATE = Query(pattern=r"^\d{8}$", description="YYYYMMDD, inclusive")
SORTS = "|".join(sort.value for sort in browse.Sort)


class StudyOut(BaseModel):
    study_instance_uid: str
    patient_id: str | None
    patient_name: str | None  # as stored, every component group, Unicode
    patient_sex: str | None
    patient_birth_date: str | None  # YYYYMMDD
    study_date: str | None  # YYYYMMDD
    study_time: str | None  # HHMMSS(.ffffff)
    accession_number: str | None
    study_description: str | None
    referring_physician_name: str | None
    study_id: str | None
    modalities: list[str]
    number_of_series: int | None
    number_of_instances: int | None
    remark: str | None  # the console's free text (PUT /api/studies/{study}/remark)


class StudyPage(BaseModel):
    total: int
    items: list[StudyOut]


class SeriesOut(BaseModel):
    series_instance_uid: str
    series_number: int | None
    modality: str | None
    series_description: str | None
    body_part_examined: str | None
    series_date: str | None
    number_of_instances: int | None
    thumbnail_url: str  # WADO-RS series thumbnail (JPEG of the middle image), same origin


@router.get("", response_model=StudyPage)
def search_studies(
    session: ReadSession,
    patient_id: Annotated[str | None, Query(description="exact, or * and ? wildcards")] = None,
    patient_name: Annotated[
        str | None, Query(description="word prefixes in any order, any component group")
    ] = None,
    accession_number: Annotated[str | None, Query(description="exact, or wildcards")] = None,
    modality: Annotated[str | None, Query(description="one of the study's modalities")] = None,
    date_from: Annotated[str | None, DATE] = None,
    date_to: Annotated[str | None, DATE] = None,
    keyword: Annotated[
        str | None, Query(description="part of the study description or remark, any case")
    ] = None,
    sort: Annotated[
        str, Query(pattern=rf"^-?({SORTS})$", description=f"-?({SORTS}); '-' for descending")
    ] = "-date",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=browse.MAX_PAGE)] = 25,
) -> StudyPage:
    """Studies matching every given field; newest first unless `sort` says otherwise."""
    filters = browse.StudyFilters(
        patient_id=patient_id,
        patient_name=patient_name,
        accession_number=accession_number,
        modality=modality,
        date_from=date_from,
        date_to=date_to,
        keyword=keyword,
    )
    page = browse.studies(
        session,
        filters,
        sort=browse.Sort(sort.removeprefix("-")),
        descending=sort.startswith("-"),
        offset=offset,
        limit=limit,
    )
    items = [StudyOut.model_validate({**found, "modalities": found["modalities"] or []})
             for found in page.items]  # fmt: skip
    return StudyPage(total=page.total, items=items)


@router.get("/{study}/series", response_model=list[SeriesOut])
def list_series(study: str, session: ReadSession) -> list[SeriesOut]:
    """The study's series in their numbering, each with its thumbnail's URL; 404 if unknown."""
    study = uid(study, "StudyInstanceUID")
    return [
        SeriesOut(
            **found,
            thumbnail_url=f"/dicomweb/studies/{study}/series/{found['series_instance_uid']}/thumbnail",
        )
        for found in browse.series_of(session, study)
    ]
