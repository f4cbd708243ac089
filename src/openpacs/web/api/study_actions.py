"""/api/studies/{study}: the Studies page's changes: delete a study or a series, edit patient
and study attributes, the study's remark.

Viewers may not call these (the app-wide access check lets only GET/HEAD through for them);
each change writes an audit record in the transaction that makes it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from openpacs import logs
from openpacs.accounts import Action
from openpacs.archive import edit, removal
from openpacs.dicom.edit import EDITABLE, InvalidEdit
from openpacs.web import auth
from openpacs.web.api.deps import core_of
from openpacs.web.dicomweb.common import uid

log = logs.get_logger("api")
router = APIRouter(prefix="/api/studies", tags=["studies"])


class Deleted(BaseModel):
    study: str
    series: list[str]
    instances: int
    size_bytes: int
    study_deleted: bool
    patient_deleted: bool
    # Files the storage could not remove (the index no longer names them; see the log).
    files_left: list[str]


def _delete(request: Request, study: str, series: str | None) -> Deleted:
    study = uid(study, "StudyInstanceUID")
    if series is not None:
        series = uid(series, "SeriesInstanceUID")
    core = core_of(request)
    with core.writing() as session:
        removed = removal.remove(session, study, series)
        auth.record_in(
            session,
            request,
            Action.deleted,
            study=study,
            series=series,
            detail=f"{removed.instances} instance(s), {removed.size_bytes} bytes",
        )
    # Committed: only now the files go (see openpacs.archive.removal for the order).
    removal.delete_files(core.storage, removed)
    log.info(
        "deleted %s%s: %d instance(s)",
        f"series {series} of " if series else "",
        f"study {study}",
        removed.instances,
    )
    return Deleted(
        study=study,
        series=removed.series_instance_uids,
        instances=removed.instances,
        size_bytes=removed.size_bytes,
        study_deleted=removed.study_gone,
        patient_deleted=removed.patient_gone,
        files_left=removed.files_left,
    )


@router.delete("/{study}", response_model=Deleted, summary="Delete a study")
def delete_study(study: str, request: Request) -> Deleted:
    """Remove the study's index rows and files (operator or admin). 404 when not stored."""
    return _delete(request, study, None)


@router.delete(
    "/{study}/series/{series}", response_model=Deleted, summary="Delete a series of a study"
)
def delete_series(study: str, series: str, request: Request) -> Deleted:
    """Remove one series; the study goes too when it was its last. 404 when not stored."""
    return _delete(request, study, series)


class EditOut(BaseModel):
    study: str
    instances: int
    old: dict[str, str | None]
    new: dict[str, str]
    charset_changed: bool  # the files now declare ISO_IR 192: the old set could not hold it
    moved_to_patient: str | None  # the PatientID the study now belongs to, when it changed


EDIT_EXAMPLE = {"PatientName": "Li^Si=李^四", "AccessionNumber": "A123", "StudyDate": "20240131"}
Changes = Annotated[
    dict[str, Any],
    Body(
        description="DICOM keyword -> new value ('' empties it); editable: " + ", ".join(EDITABLE),
        examples=[EDIT_EXAMPLE],
    ),
]


@router.patch("/{study}", response_model=EditOut, summary="Edit patient and study attributes")
def edit_study(
    study: str,
    request: Request,
    changes: Changes,
) -> EditOut:
    """Every file of the study rewritten (pixels untouched) and its index rows changed in one
    operation; 422 naming the attribute when a value is not valid for its VR."""
    study = uid(study, "StudyInstanceUID")

    def audit(session: Session, done: edit.Edited) -> None:
        detail = json.dumps({"old": done.old, "new": done.new}, ensure_ascii=False)
        auth.record_in(session, request, Action.changed, study=study, detail=detail)

    try:
        done = edit.edit_study(core_of(request), study, changes, audit)
    except InvalidEdit as exc:
        raise HTTPException(422, detail=str(exc)) from exc
    log.info("edited study %s: %s", study, ", ".join(sorted(done.new)))
    return EditOut(
        study=study,
        instances=done.instances,
        old=done.old,
        new=done.new,
        charset_changed=done.charset_changed,
        moved_to_patient=done.moved_to_patient,
    )


class RemarkIn(BaseModel):
    remark: str | None


class RemarkOut(BaseModel):
    study: str
    remark: str | None


@router.put("/{study}/remark", response_model=RemarkOut, summary="Set a study's remark")
def put_remark(study: str, body: RemarkIn, request: Request) -> RemarkOut:
    """Free text kept with the study in the index (empty clears it); searched by the
    console's keyword box."""
    study = uid(study, "StudyInstanceUID")
    with core_of(request).writing() as session:
        try:
            text = edit.set_remark(session, study, body.remark)
        except ValueError as exc:
            raise HTTPException(422, detail=f"remark: {exc}") from exc
        auth.record_in(
            session, request, Action.changed, study=study, detail=f"remark: {text or ''}"[:2000]
        )
    return RemarkOut(study=study, remark=text)
