"""Modality Worklist C-FIND (PS3.4 K.6): which items a query matches, and what it gets back.

Matching runs in SQL through the same matchers and conditions as every other C-FIND
(`archive.query.condition`), on the item's indexed columns: patient ID and name, accession
number, requested procedure ID, Study Instance UID, referring physician, birth date, sex, and in
the scheduled procedure step the modality, station AE titles and name, start date and time,
performing physician, step ID and status. Other keys with a value are not matched (the answer
says so with 0xFF01, as for any C-FIND); every key is returned, nested sequences included.
Finished items (completed, discontinued) are left out unless the query asks for a status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from openpacs.archive import errors
from openpacs.archive.models import WorklistItem
from openpacs.archive.query import Field, Kind, Level, QueryOptions, condition
from openpacs.dicom import json as dicom_json
from openpacs.dicom import matching as m
from openpacs.monitoring import metrics
from openpacs.worklist.spec import FINISHED

W = WorklistItem
_L = Level.STUDY  # the worklist has no levels; Field wants one


def _name(keyword: str, prefix: str, full: str | None = None) -> Field:
    return Field(
        keyword,
        _L,
        getattr(W, full or prefix),
        Kind.NAME,
        groups=(
            getattr(W, f"{prefix}_alphabetic"),
            getattr(W, f"{prefix}_ideographic"),
            getattr(W, f"{prefix}_phonetic"),
        ),
        folded=getattr(W, f"{prefix}_folded"),
    )


ITEM_FIELDS: dict[str, Field] = {
    f.keyword: f
    for f in (
        Field("PatientID", _L, W.patient_id),
        _name("PatientName", "patient_name"),
        Field("PatientBirthDate", _L, W.patient_birth_date, Kind.DATE),
        Field("PatientSex", _L, W.patient_sex),
        Field("AccessionNumber", _L, W.accession_number),
        Field("RequestedProcedureID", _L, W.requested_procedure_id),
        Field("StudyInstanceUID", _L, W.study_instance_uid),
        _name("ReferringPhysicianName", "referring_physician", "referring_physician_name"),
    )
}
STEP_FIELDS: dict[str, Field] = {
    f.keyword: f
    for f in (
        Field("Modality", _L, W.modality),
        Field("ScheduledStationAETitle", _L, W.station_ae_titles, Kind.VALUES),
        Field("ScheduledStationName", _L, W.station_name),
        Field("ScheduledProcedureStepStartDate", _L, W.start_date, Kind.DATE, time=W.start_time),
        Field("ScheduledProcedureStepStartTime", _L, W.start_time, Kind.TIME),
        _name(
            "ScheduledPerformingPhysicianName",
            "performing_physician",
            "performing_physician_name",
        ),
        Field("ScheduledProcedureStepID", _L, W.step_id),
        Field("ScheduledProcedureStepStatus", _L, W.status),
    )
}
STEP_SEQUENCE = "ScheduledProcedureStepSequence"
SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)


@dataclass
class MwlQuery:
    """A worklist query: SQL conditions, and the keys that had a value but are not matched."""

    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    asks_status: bool = False


def prepare(identifier: Dataset, dialect: str, options: QueryOptions | None = None) -> MwlQuery:
    """The conditions of `identifier`; errors.InvalidQuery for a value that cannot match."""
    query = MwlQuery()
    for element in identifier:
        if element.tag.element == 0 or element.tag == SPECIFIC_CHARACTER_SET:
            continue
        keyword = m.element_keyword(element)
        if keyword == STEP_SEQUENCE:
            _step_keys(element, dialect, options, query)
        else:
            _key(element, keyword, ITEM_FIELDS, dialect, options, query)
    return query


def _matcher(element: DataElement) -> m.Matcher:
    try:
        return m.parse_element(element)
    except m.InvalidQuery as exc:
        raise errors.InvalidQuery(exc.keyword, exc.reason) from exc


def _key(
    element: DataElement,
    keyword: str,
    fields: dict[str, Field],
    dialect: str,
    options: QueryOptions | None,
    query: MwlQuery,
) -> None:
    matcher = _matcher(element)
    if isinstance(matcher, m.Universal):
        return
    found = fields.get(keyword)
    if found is None:
        query.ignored.append(keyword)
        return
    try:
        query.conditions.append(condition(found, matcher, dialect, options))
    except m.InvalidQuery as exc:
        raise errors.InvalidQuery(exc.keyword, exc.reason) from exc
    if keyword == "ScheduledProcedureStepStatus":
        query.asks_status = True


def _step_keys(
    element: DataElement, dialect: str, options: QueryOptions | None, query: MwlQuery
) -> None:
    items = element.value or []
    if len(items) > 1:
        raise errors.InvalidQuery(STEP_SEQUENCE, "a sequence key holds one item")
    for inner in items[0] if items else []:
        if inner.tag.element == 0:
            continue
        _key(inner, m.element_keyword(inner), STEP_FIELDS, dialect, options, query)


def find(
    session: Session,
    identifier: Dataset,
    *,
    include_finished: bool = False,
    limit: int = 0,
    options: QueryOptions | None = None,
) -> tuple[Iterator[Dataset], list[str]]:
    """The answers to a worklist query, each holding exactly the keys asked for, soonest first,
    and the keys that had a value but were not matched."""
    dialect = session.get_bind().dialect.name
    query = prepare(identifier, dialect, options)
    conditions = list(query.conditions)
    if not include_finished and not query.asks_status:
        conditions.append(W.status.not_in([status.value for status in FINISHED]))
    statement = (
        select(W.dataset)
        .where(*conditions)
        .order_by(W.start_date.asc().nulls_last(), W.start_time.asc().nulls_last(), W.id.asc())
    )
    if limit:
        statement = statement.limit(limit)
    with metrics.timed_index("worklist_find"):
        rows = session.scalars(statement).all()
    # Projected while still DICOM JSON: only the requested keys become pydicom elements.
    answers = (dicom_json.from_json(project(row, identifier)) for row in rows)
    return answers, query.ignored


def project(source: Mapping[str, Any], request: Dataset) -> dict[str, Any]:
    """The keys of `request` with the values of `source` (DICOM JSON; empty where it has
    none); a sequence key with item keys gets those keys of each item, an empty one every
    item whole. The result shares `source`'s values: read it, never change it."""
    out: dict[str, Any] = {}
    for element in request:
        tag = element.tag
        if tag.element == 0 or tag == SPECIFIC_CHARACTER_SET:
            continue
        key = f"{tag:08X}"
        held = source.get(key)
        if element.VR == "SQ":
            out[key] = _sequence(held, element.value)
        elif held is not None:
            out[key] = held
        else:
            out[key] = {"vr": element.VR}
    return out


def _sequence(held: Mapping[str, Any] | None, asked: DicomSequence | None) -> Mapping[str, Any]:
    if held is None or held.get("vr") != "SQ":
        return {"vr": "SQ"}
    if not asked or len(asked[0]) == 0:
        return held
    items = held.get("Value") or []
    return {"vr": "SQ", "Value": [project(item, asked[0]) for item in items]}
