"""/api/studies/{study}: the Studies page's changes: delete a study or a series, edit patient
and study attributes, the study's remark.

Viewers may not call these (the app-wide access check lets only GET/HEAD through for them);
each change writes an audit record in the transaction that makes it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from openpacs import logs
from openpacs.accounts import Action
from openpacs.archive import removal
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
