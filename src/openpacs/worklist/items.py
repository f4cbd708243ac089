"""Worklist items in the index: create, read, replace, delete, list, and status changes.

Functions take the caller's session and never commit (the request's or the listener's
transaction owns it). Each write keeps three views in step: the spec as given, the DICOM
dataset modalities receive, and the columns MWL queries match on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from openpacs.archive.errors import NotFound
from openpacs.archive.models import WorklistItem
from openpacs.dicom import json as dicom_json
from openpacs.dicom import values
from openpacs.dicom.matching import like_literal
from openpacs.worklist.spec import ItemSpec, Status, build_dataset, new_study_uid


class ItemNotFound(NotFound):
    """No worklist item has that id."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _apply(item: WorklistItem, spec: ItemSpec, study_uid: str) -> None:
    """The spec, its dataset, and the matching columns read from that dataset (so keys given
    only as `attributes` match too)."""
    ds = build_dataset(spec, study_uid)
    step = ds.ScheduledProcedureStepSequence[0]
    item.spec = spec.model_dump(mode="json", exclude_none=True)
    item.dataset = dicom_json.to_json(ds)
    item.status = spec.status.value
    item.patient_id = spec.patient_id
    _name(item, "patient_name", ds.get("PatientName"))
    item.patient_birth_date = values.da(ds.get("PatientBirthDate"))
    item.patient_sex = values.text(ds.get("PatientSex"), 16)
    item.accession_number = values.text(ds.get("AccessionNumber"), 16)
    item.requested_procedure_id = values.text(ds.get("RequestedProcedureID"), 16)
    item.study_instance_uid = study_uid
    referring = ds.get("ReferringPhysicianName")
    _name(item, "referring_physician", referring, full="referring_physician_name")
    item.step_id = values.text(step.get("ScheduledProcedureStepID"), 16)
    item.modality = values.text(step.get("Modality"), 16)
    item.station_ae_titles = values.text(step.get("ScheduledStationAETitle"), 340)
    item.station_name = values.text(step.get("ScheduledStationName"), 16)
    item.start_date = values.da(step.get("ScheduledProcedureStepStartDate"))
    item.start_time = values.tm(step.get("ScheduledProcedureStepStartTime"))
    performing = step.get("ScheduledPerformingPhysicianName")
    _name(item, "performing_physician", performing, full="performing_physician_name")


def _name(item: WorklistItem, prefix: str, value: Any, *, full: str | None = None) -> None:
    """A PN on its columns: whole, per component group, and folded for fuzzy search."""
    groups = values.person_name(value)
    setattr(item, full or prefix, groups.full)
    setattr(item, f"{prefix}_alphabetic", groups.alphabetic)
    setattr(item, f"{prefix}_ideographic", groups.ideographic)
    setattr(item, f"{prefix}_phonetic", groups.phonetic)
    setattr(item, f"{prefix}_folded", values.fold_name(value))


def create(session: Session, spec: ItemSpec) -> WorklistItem:
    when = _now()
    item = WorklistItem(created_at=when, updated_at=when)
    _apply(item, spec, spec.study_instance_uid or new_study_uid())
    session.add(item)
    session.flush()
    return item


def get(session: Session, item_id: int) -> WorklistItem:
    item = session.get(WorklistItem, item_id)
    if item is None:
        raise ItemNotFound(f"no worklist item {item_id}; GET /api/worklist lists them")
    return item


def update(session: Session, item_id: int, spec: ItemSpec) -> WorklistItem:
    """Replace every field; the Study Instance UID stays unless the spec names another."""
    item = get(session, item_id)
    _apply(item, spec, spec.study_instance_uid or item.study_instance_uid)
    item.updated_at = _now()
    session.flush()
    return item


def delete(session: Session, item_id: int) -> None:
    session.delete(get(session, item_id))
    session.flush()


def set_status(session: Session, item: WorklistItem, status: Status) -> None:
    """Move an item along (MPPS, an arriving study); the dataset's step status follows."""
    if item.status == status.value:
        return
    spec = ItemSpec.model_validate({**item.spec, "status": status.value})
    _apply(item, spec, item.study_instance_uid)
    item.updated_at = _now()


@dataclass(frozen=True)
class Filters:
    """What GET /api/worklist narrows the list by (all optional, combined with AND)."""

    patient_id: str | None = None
    patient_name: str | None = None  # word-prefix, case- and accent-insensitive
    accession_number: str | None = None
    modality: str | None = None
    station_ae_title: str | None = None
    date_from: str | None = None  # YYYYMMDD, inclusive
    date_to: str | None = None
    statuses: Sequence[Status] = ()


def list_items(
    session: Session, filters: Filters, *, limit: int = 100, offset: int = 0
) -> tuple[list[WorklistItem], int]:
    """The page of items matching `filters` (soonest scheduled first) and how many match."""
    conditions = _conditions(filters)
    count = session.scalar(select(func.count()).select_from(WorklistItem).where(*conditions))
    statement = (
        select(WorklistItem)
        .where(*conditions)
        .order_by(
            WorklistItem.start_date.asc().nulls_last(),
            WorklistItem.start_time.asc().nulls_last(),
            WorklistItem.id.asc(),
        )
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(statement)), int(count or 0)


def _conditions(filters: Filters) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if filters.patient_id:
        found.append(WorklistItem.patient_id == filters.patient_id)
    if filters.accession_number:
        found.append(WorklistItem.accession_number == filters.accession_number)
    if filters.modality:
        found.append(WorklistItem.modality == filters.modality.upper())
    if filters.station_ae_title:
        wrapped = "\\" + func.coalesce(WorklistItem.station_ae_titles, "") + "\\"
        found.append(wrapped.like(f"%\\{like_literal(filters.station_ae_title)}\\%", escape="!"))
    if filters.date_from:
        found.append(WorklistItem.start_date >= filters.date_from)
    if filters.date_to:
        found.append(WorklistItem.start_date <= filters.date_to)
    if filters.statuses:
        found.append(WorklistItem.status.in_([status.value for status in filters.statuses]))
    if filters.patient_name:
        words = values.fold_name(filters.patient_name, stored=False) or ""
        found += [
            or_(WorklistItem.patient_name_folded.like(f"% {like_literal(word)}%", escape="!"))
            for word in words.split()
        ]
    return found


def describe(item: WorklistItem) -> dict[str, Any]:
    """The item as the API shows it: id, status, the spec, the generated UID, timestamps."""
    return {
        **item.spec,
        "id": item.id,
        "status": item.status,
        "study_instance_uid": item.study_instance_uid,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
