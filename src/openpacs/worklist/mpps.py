"""Modality Performed Procedure Steps (PS3.4 F.7): what a modality reports doing, and the
worklist item it moves along (IN PROGRESS, then COMPLETED or DISCONTINUED).

An N-CREATE starts a step (status IN PROGRESS) and links it to the item its Scheduled Step
Attributes name (Study Instance UID, else accession number; the scheduled step ID narrows
either); each N-SET merges its attributes in until the step is COMPLETED or DISCONTINUED,
after which it may not change. The performed series and instances are kept with the step.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from openpacs.archive.errors import ArchiveError, Conflict, NotFound
from openpacs.archive.models import PerformedStep, WorklistItem
from openpacs.dicom import json as dicom_json
from openpacs.worklist import items
from openpacs.worklist.spec import FINISHED, Status


class StepNotFound(NotFound):
    """No performed procedure step has that SOP Instance UID."""


class StepExists(Conflict):
    """A performed procedure step with that SOP Instance UID exists already."""


class StepFinished(Conflict):
    """The step is completed or discontinued: it may not change any more."""


class InvalidStep(ArchiveError):
    """The attributes given cannot make or change a step; the message says which and why."""


_STATUSES = {status.value: status for status in Status}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _status(ds: Dataset, *, required: bool) -> Status | None:
    value = str(ds.get("PerformedProcedureStepStatus", "") or "").strip().upper()
    if not value:
        if required:
            raise InvalidStep("PerformedProcedureStepStatus is missing")
        return None
    status = _STATUSES.get(value)
    if status is None or status is Status.scheduled:
        raise InvalidStep(
            f"PerformedProcedureStepStatus {value!r}: use IN PROGRESS, COMPLETED or DISCONTINUED"
        )
    return status


def create(session: Session, sop_instance_uid: str, ds: Dataset, calling_ae: str) -> PerformedStep:
    """N-CREATE: a new step, IN PROGRESS (PS3.4 F.7.2.1), and its item moved along."""
    if _find(session, sop_instance_uid) is not None:
        raise StepExists(f"performed procedure step {sop_instance_uid} exists already")
    status = _status(ds, required=True)
    if status is not Status.in_progress:
        raise InvalidStep("an N-CREATE starts a step: PerformedProcedureStepStatus IN PROGRESS")
    item = _scheduled_item(session, ds)
    when = _now()
    step = PerformedStep(
        sop_instance_uid=sop_instance_uid,
        item_id=item.id if item is not None else None,
        status=status.value,
        calling_ae=calling_ae[:16],
        dataset=dicom_json.to_json(ds),
        series=_series(ds),
        created_at=when,
        updated_at=when,
    )
    session.add(step)
    if item is not None and item.status not in {s.value for s in FINISHED}:
        items.set_status(session, item, status)
    session.flush()
    return step


def update(session: Session, sop_instance_uid: str, ds: Dataset) -> PerformedStep:
    """N-SET: merge the attributes in; COMPLETED or DISCONTINUED ends the step and its item."""
    step = _find(session, sop_instance_uid)
    if step is None:
        raise StepNotFound(f"no performed procedure step {sop_instance_uid}")
    if step.status != Status.in_progress.value:
        raise StepFinished(f"performed procedure step {sop_instance_uid} is {step.status} already")
    status = _status(ds, required=False)
    merged = dicom_json.from_json(step.dataset)
    for element in ds:
        merged[element.tag] = element
    step.dataset = dicom_json.to_json(merged)
    step.series = _series(merged)
    step.updated_at = _now()
    if status is not None:
        step.status = status.value
        if step.item_id is not None:
            item = session.get(WorklistItem, step.item_id)
            if item is not None:
                items.set_status(session, item, status)
    session.flush()
    return step


def _find(session: Session, sop_instance_uid: str) -> PerformedStep | None:
    statement = select(PerformedStep).where(PerformedStep.sop_instance_uid == sop_instance_uid)
    return session.scalars(statement).one_or_none()


def _scheduled_item(session: Session, ds: Dataset) -> WorklistItem | None:
    """The worklist item the step performs, from its Scheduled Step Attributes Sequence."""
    for scheduled in ds.get("ScheduledStepAttributesSequence") or []:
        study = str(scheduled.get("StudyInstanceUID", "") or "").strip()
        accession = str(scheduled.get("AccessionNumber", "") or "").strip()
        step_id = str(scheduled.get("ScheduledProcedureStepID", "") or "").strip()
        statement = select(WorklistItem)
        if study:
            statement = statement.where(WorklistItem.study_instance_uid == study)
        elif accession:
            statement = statement.where(WorklistItem.accession_number == accession)
        else:
            continue
        if step_id:
            statement = statement.where(WorklistItem.step_id == step_id)
        found = session.scalars(statement.order_by(WorklistItem.id).limit(1)).first()
        if found is not None:
            return found
    return None


def _series(ds: Dataset) -> list[dict[str, Any]]:
    """The performed series: their UIDs, descriptions and the instances referenced."""
    out = []
    for series in ds.get("PerformedSeriesSequence") or []:
        out.append(
            {
                "series_instance_uid": str(series.get("SeriesInstanceUID", "") or ""),
                "description": str(series.get("SeriesDescription", "") or ""),
                "instances": [
                    str(ref.get("ReferencedSOPInstanceUID", "") or "")
                    for ref in series.get("ReferencedImageSequence") or []
                ],
            }
        )
    return out


def steps_of(session: Session, item_id: int) -> list[PerformedStep]:
    statement = select(PerformedStep).where(PerformedStep.item_id == item_id)
    return list(session.scalars(statement.order_by(PerformedStep.id)))
