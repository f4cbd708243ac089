"""The console's study list: plain search fields, sorting and paging turned into one query of
the engine (`archive.query`), so the list finds what C-FIND and QIDO-RS find; and a study's
series for its expanded row.

Field semantics: patient ID and accession number are DICOM values (exact, or `*`/`?`
wildcards); the patient name matches as QIDO's `fuzzymatching` does (each word starts a word of
the stored name, any group, case and accents aside, so 张 finds 张^三); the keyword is a
case-insensitive part of the study description or of the remark the console keeps with the
study; the modality one of the study's modalities.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from openpacs.archive import query
from openpacs.archive.errors import NotFound
from openpacs.archive.models import Study
from openpacs.dicom.matching import like_literal

MAX_PAGE = 500

# What the study list and a study's series rows show: the name each goes by in an item, and
# the attribute it is.
STUDY_FIELDS = {
    "study_instance_uid": "StudyInstanceUID",
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_sex": "PatientSex",
    "patient_birth_date": "PatientBirthDate",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "accession_number": "AccessionNumber",
    "study_description": "StudyDescription",
    "referring_physician_name": "ReferringPhysicianName",
    "study_id": "StudyID",
    "modalities": "ModalitiesInStudy",
    "number_of_series": "NumberOfStudyRelatedSeries",
    "number_of_instances": "NumberOfStudyRelatedInstances",
}
SERIES_FIELDS = {
    "series_instance_uid": "SeriesInstanceUID",
    "series_number": "SeriesNumber",
    "modality": "Modality",
    "series_description": "SeriesDescription",
    "body_part_examined": "BodyPartExamined",
    "series_date": "SeriesDate",
    "number_of_instances": "NumberOfSeriesRelatedInstances",
}


class Sort(enum.StrEnum):
    """What the study list sorts on (the API's `sort`, '-' first for descending)."""

    DATE = "date"
    NAME = "name"
    PATIENT_ID = "patient_id"
    MODALITY = "modality"
    ACCESSION = "accession"
    INSTANCES = "instances"


_SORT_KEYS: dict[Sort, tuple[str, ...]] = {
    Sort.DATE: ("StudyDate", "StudyTime"),
    Sort.NAME: ("PatientName",),
    Sort.PATIENT_ID: ("PatientID",),
    Sort.MODALITY: ("ModalitiesInStudy",),
    Sort.ACCESSION: ("AccessionNumber",),
    Sort.INSTANCES: ("NumberOfStudyRelatedInstances",),
}


@dataclass(frozen=True)
class StudyFilters:
    """Every field optional; given ones combine with AND. Dates are YYYYMMDD, inclusive."""

    patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    modality: str | None = None
    date_from: str | None = None
    date_to: str | None = None
    keyword: str | None = None


@dataclass(frozen=True)
class Page:
    total: int
    # STUDY_FIELDS' names → values as the engine gives them, and each study's "remark"
    items: list[dict[str, Any]]


def _identifier(fields: dict[str, str], values: dict[str, Any]) -> Dataset:
    identifier = Dataset()
    for keyword in fields.values():
        setattr(identifier, keyword, values.get(keyword))
    return identifier


def _filter_values(filters: StudyFilters) -> dict[str, Any]:
    values: dict[str, Any] = {
        "PatientID": filters.patient_id or None,
        "PatientName": filters.patient_name or None,
        "AccessionNumber": filters.accession_number or None,
        "ModalitiesInStudy": filters.modality.upper() if filters.modality else None,
    }
    if filters.date_from or filters.date_to:
        values["StudyDate"] = f"{filters.date_from or ''}-{filters.date_to or ''}"
    return values


def _keyword(filters: StudyFilters) -> tuple[ColumnElement[bool], ...]:
    """The keyword as a part of the description or the remark, any case, taken literally."""
    if not filters.keyword:
        return ()
    pattern = f"%{like_literal(filters.keyword, query.ESCAPE)}%"
    return (
        or_(
            Study.study_description.ilike(pattern, escape=query.ESCAPE),
            Study.remark.ilike(pattern, escape=query.ESCAPE),
        ),
    )


def order_keys(sort: Sort, descending: bool) -> tuple[str, ...]:
    sign = "-" if descending else ""
    return tuple(sign + keyword for keyword in _SORT_KEYS[sort])


def studies(
    session: Session,
    filters: StudyFilters,
    *,
    sort: Sort = Sort.DATE,
    descending: bool = True,
    offset: int = 0,
    limit: int = 25,
) -> Page:
    """One page of matching studies in the order asked, and how many match in all."""
    options = query.QueryOptions(
        limit=min(limit, MAX_PAGE),
        offset=offset,
        relational=True,
        fuzzy=True,
        order_by=order_keys(sort, descending),
        also=_keyword(filters),
    )
    identifier = _identifier(STUDY_FIELDS, _filter_values(filters))
    plan = query.prepare(identifier, query.Level.STUDY, query.Model.STUDY_ROOT, options)
    answers = plan.run(session)
    items = [_named(STUDY_FIELDS, record) for record in answers.records()]
    remarks = _remarks(session, [item["study_instance_uid"] for item in items])
    for item in items:
        item["remark"] = remarks.get(item["study_instance_uid"])
    total = plan.count(session) if answers.more or offset else len(items)
    return Page(total=total, items=items)


def _remarks(session: Session, uids: list[str]) -> dict[str, str | None]:
    """The remarks of the studies named (one query for the page), by StudyInstanceUID."""
    if not uids:
        return {}
    rows = session.execute(
        select(Study.study_instance_uid, Study.remark).where(
            Study.study_instance_uid.in_(uids), Study.remark.is_not(None)
        )
    )
    return {uid: remark for uid, remark in rows}


def series_of(session: Session, study_instance_uid: str) -> list[dict[str, Any]]:
    """The series of a stored study in their numbering; NotFound when the study is not here.
    The UID must have been checked (a wildcard here would list every series)."""
    identifier = _identifier(SERIES_FIELDS, {})
    identifier.StudyInstanceUID = study_instance_uid
    answers = query.find(session, identifier, query.Level.SERIES, query.Model.STUDY_ROOT)
    found = [_named(SERIES_FIELDS, record) for record in answers.records()]
    if not found:
        raise NotFound(f"study {study_instance_uid} is not in the archive")
    return found


def _named(fields: dict[str, str], record: list[query.Element]) -> dict[str, Any]:
    # Answers come in the identifier's order, which pydicom keeps by tag: matched by tag here.
    by_keyword = {keyword_for_tag(tag): value for tag, _, value in record}
    return {name: by_keyword[keyword] for name, keyword in fields.items()}
