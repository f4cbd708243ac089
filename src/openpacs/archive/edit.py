"""Editing a stored study's patient and study attributes: every file rewritten and the index
rows changed in one operation, and the study's free-text remark.

Order, so that a failure at any step leaves the study as it was:
1. each file is rewritten into the temporary folder (`dicom.edit.rewrite`); a failure removes
   the temp files and changes nothing;
2. taking the writers' turn and inside one index transaction: the study row is locked and the
   instance set compared with step 1's (a store or delete meanwhile: Conflict, try again);
   each new file is swapped in (a file keeping its path is first hard-linked to a backup in
   the temporary folder, then replaced atomically; a file whose path changes because the
   layout names the StudyDate or PatientID is placed at its new path beside the old one);
   then the rows are updated and the caller's audit record added;
3. the transaction commits; only then are the backups and the files at old paths removed.
   When anything in step 2 fails, the swaps are undone (backups moved back, new paths
   removed) before the error goes up.
A crash inside step 2 can leave a rewritten file under an index row that still holds the old
values; reading it gives the new values, `openpacs reindex` realigns the row.

Patient-level values (name, birth date, sex) are set on the patient row the study belongs to
after the edit; other studies of that patient keep their files as they are (the index keeps
one set of demographics per patient, as ingest does). A new PatientID moves the study to that
patient's row (made when missing); the old row is recounted and dropped when empty.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydicom.errors import InvalidDicomError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from openpacs.archive import index
from openpacs.archive.core import Core
from openpacs.archive.errors import Conflict, InvalidInstance, NotFound, StorageUnavailable
from openpacs.archive.ingest import read_header
from openpacs.archive.models import Instance, Patient, Series, Study
from openpacs.archive.removal import recount_patient
from openpacs.archive.storage import relative_path
from openpacs.dicom import edit
from openpacs.dicom.charset import apply_charset, decide_charset
from openpacs.logs import get_logger

log = get_logger("db")

# The index columns each editable attribute fills (see archive.index's getters).
_NAME_COLUMNS = ("", "_alphabetic", "_ideographic", "_phonetic", "_folded")
PATIENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "PatientName": tuple(f"patient_name{suffix}" for suffix in _NAME_COLUMNS),
    "PatientBirthDate": ("patient_birth_date",),
    "PatientSex": ("patient_sex",),
}
STUDY_COLUMNS: dict[str, tuple[str, ...]] = {
    "AccessionNumber": ("accession_number",),
    "StudyDescription": ("study_description",),
    "ReferringPhysicianName": tuple(
        "referring_physician" + (suffix or "_name") for suffix in _NAME_COLUMNS
    ),
    "StudyDate": ("study_date",),
    "StudyTime": ("study_time",),
    "StudyID": ("study_id",),
}
# Where each attribute's old value is read from, for the audit record.
_OLD_VALUES: dict[str, tuple[str, str]] = {
    "PatientName": ("patient", "patient_name"),
    "PatientID": ("patient", "patient_id"),
    "PatientBirthDate": ("patient", "patient_birth_date"),
    "PatientSex": ("patient", "patient_sex"),
    "AccessionNumber": ("study", "accession_number"),
    "StudyDescription": ("study", "study_description"),
    "ReferringPhysicianName": ("study", "referring_physician_name"),
    "StudyDate": ("study", "study_date"),
    "StudyTime": ("study", "study_time"),
    "StudyID": ("study", "study_id"),
}
REMARK_MAX = 4000


@dataclass
class _File:
    """One instance on its way through the edit."""

    pk: int
    sop_instance_uid: str
    old_relpath: str
    new_relpath: str
    keys: index.InstanceKeys
    temp: Path
    backup: Path | None = None
    swapped: bool = False
    size: int = 0


@dataclass(frozen=True)
class Edited:
    study_instance_uid: str
    instances: int
    old: dict[str, str | None]
    new: dict[str, str]
    charset_changed: bool
    moved_to_patient: str | None = None
    warnings: list[str] = field(default_factory=list)


Audit = Callable[[Session, "Edited"], None]


def edit_study(core: Core, study: str, changes: Mapping[str, object], audit: Audit) -> Edited:
    """Apply `changes` (keyword -> new value) to every file of `study` and to its index rows;
    `audit(session, edited)` adds the audit record in the same transaction.

    InvalidEdit names an attribute that cannot change or a value its VR refuses; NotFound,
    Conflict (the study changed meanwhile), StorageUnavailable / InvalidInstance (a file
    could not be read or written) leave everything as it was."""
    checked = edit.check_changes(changes)
    files, old = _plan(core, study, checked)
    charset_changed = False
    try:
        for item in files:
            try:
                done = edit.rewrite(core.storage.path(item.old_relpath), item.temp, checked)
            except (InvalidDicomError, ValueError, KeyError, TypeError) as exc:
                raise InvalidInstance(
                    f"instance {item.sop_instance_uid} cannot be rewritten: {exc}"
                ) from exc
            except OSError as exc:
                raise StorageUnavailable(
                    f"cannot rewrite instance {item.sop_instance_uid}: {exc.strerror or exc}"
                ) from exc
            charset_changed = charset_changed or done.charset_changed
        header = read_header(files[0].temp)
        apply_charset(header, decide_charset(header))
        edited = Edited(study, len(files), old, checked, charset_changed)
        with core.writing() as session:
            try:
                _check_unchanged(session, study, files)
                _swap(core, files)
                moved = _update_rows(
                    session, study, checked, files, index.extract(header), charset_changed
                )
                edited = replace(edited, moved_to_patient=moved)
                audit(session, edited)
                session.flush()
            except BaseException:
                _undo(core, files)
                raise
    finally:
        for item in files:
            item.temp.unlink(missing_ok=True)
    _finish(core, files)
    return edited


def _plan(
    core: Core, study: str, changes: dict[str, str]
) -> tuple[list[_File], dict[str, str | None]]:
    with core.sessions() as session:
        row = session.execute(
            select(Study, Patient)
            .join(Patient, Patient.pk == Study.patient_pk)
            .where(Study.study_instance_uid == study)
        ).one_or_none()
        if row is None:
            raise NotFound(f"study {study} is not stored")
        study_row, patient_row = row
        rows = {"study": study_row, "patient": patient_row}
        old = {
            keyword: getattr(rows[_OLD_VALUES[keyword][0]], _OLD_VALUES[keyword][1])
            for keyword in changes
        }
        instances = session.execute(
            select(
                Instance.pk,
                Instance.sop_instance_uid,
                Instance.sop_class_uid,
                Instance.file_path,
                Series.series_instance_uid,
            )
            .join(Series, Series.pk == Instance.series_pk)
            .where(Series.study_pk == study_row.pk)
            .order_by(Instance.pk)
        ).all()
        patient_id = changes.get("PatientID", patient_row.patient_id)
        study_date = changes.get("StudyDate", study_row.study_date) or None
    files = []
    for instance in instances:
        keys = index.InstanceKeys(
            patient_id=patient_id,
            study_instance_uid=study,
            series_instance_uid=instance.series_instance_uid,
            sop_instance_uid=instance.sop_instance_uid,
            sop_class_uid=instance.sop_class_uid,
            study_date=study_date,
        )
        files.append(
            _File(
                pk=instance.pk,
                sop_instance_uid=instance.sop_instance_uid,
                old_relpath=instance.file_path,
                new_relpath=relative_path(core.storage.layout, keys),
                keys=keys,
                temp=core.storage.new_temp(),
            )
        )
    return files, old


def _check_unchanged(session: Session, study: str, files: list[_File]) -> None:
    study_row = session.scalars(
        select(Study).where(Study.study_instance_uid == study).with_for_update()
    ).one_or_none()
    if study_row is None:
        raise Conflict(f"study {study} was deleted while it was being edited")
    now = set(
        session.scalars(
            select(Instance.pk)
            .join(Series, Series.pk == Instance.series_pk)
            .where(Series.study_pk == study_row.pk)
        )
    )
    if now != {item.pk for item in files}:
        raise Conflict(
            f"study {study} gained or lost instances while it was being edited; edit it again"
        )


def _swap(core: Core, files: list[_File]) -> None:
    storage = core.storage
    for item in files:
        item.size = item.temp.stat().st_size
        if item.new_relpath == item.old_relpath:
            final = storage.path(item.old_relpath)
            item.backup = storage.new_temp()
            try:
                os.link(final, item.backup)
                os.replace(item.temp, final)
            except OSError as exc:
                raise StorageUnavailable(
                    f"cannot replace the file of {item.sop_instance_uid}: {exc.strerror or exc}"
                ) from exc
        else:
            storage.place(item.temp, item.keys)
        item.swapped = True


def _undo(core: Core, files: list[_File]) -> None:
    for item in files:
        if not item.swapped:
            if item.backup is not None:
                item.backup.unlink(missing_ok=True)
            continue
        try:
            if item.backup is not None:
                os.replace(item.backup, core.storage.path(item.old_relpath))
            else:
                core.storage.delete(item.new_relpath)
        except (OSError, StorageUnavailable) as exc:
            log.error("undoing the edit of %s failed: %s", item.sop_instance_uid, exc)


def _finish(core: Core, files: list[_File]) -> None:
    for item in files:
        with contextlib.suppress(OSError):
            if item.backup is not None:
                item.backup.unlink(missing_ok=True)
        if item.new_relpath != item.old_relpath:
            try:
                core.storage.delete(item.old_relpath)
            except (OSError, StorageUnavailable) as exc:
                log.warning("edited file moved; the old copy %s stays: %s", item.old_relpath, exc)


def _update_rows(
    session: Session,
    study: str,
    changes: dict[str, str],
    files: list[_File],
    values: index.IndexValues,
    charset_changed: bool,
) -> str | None:
    now = dt.datetime.now(dt.UTC)
    study_row = session.scalars(select(Study).where(Study.study_instance_uid == study)).one()
    old_patient = study_row.patient_pk
    moved = None
    if "PatientID" in changes:
        issuer = session.scalar(
            select(Patient.issuer_of_patient_id).where(Patient.pk == old_patient)
        )
        target = session.scalar(
            select(Patient.pk).where(
                Patient.patient_id == changes["PatientID"],
                Patient.issuer_of_patient_id == (issuer or ""),
            )
        )
        if target is None:
            patient = Patient(
                **{
                    **values.patient,
                    "patient_id": changes["PatientID"],
                    "issuer_of_patient_id": issuer or "",
                }
            )
            session.add(patient)
            session.flush()
            target = patient.pk
        if target != old_patient:
            study_row.patient_pk = target
            moved = changes["PatientID"]
    patient_values = _columns(changes, PATIENT_COLUMNS, values.patient)
    study_values = _columns(changes, STUDY_COLUMNS, values.study)
    charset = values.study.get("specific_character_set")
    if charset_changed:
        study_values["specific_character_set"] = charset
        if patient_values:
            patient_values["specific_character_set"] = charset
    if patient_values:
        patient_values["updated_at"] = now
        session.execute(
            update(Patient).where(Patient.pk == study_row.patient_pk).values(**patient_values)
        )
    for name, value in study_values.items():
        setattr(study_row, name, value)
    study_row.updated_at = now
    for item in files:
        session.execute(
            update(Instance)
            .where(Instance.pk == item.pk)
            .values(
                file_path=item.new_relpath,
                file_size=item.size,
                **({"specific_character_set": charset} if charset_changed else {}),
            )
        )
    session.flush()
    study_row.size_bytes = int(
        session.scalar(
            select(func.coalesce(func.sum(Instance.file_size), 0))
            .join(Series, Series.pk == Instance.series_pk)
            .where(Series.study_pk == study_row.pk)
        )
        or 0
    )
    if moved is not None:
        session.flush()
        recount_patient(session, study_row.patient_pk)
        recount_patient(session, old_patient)
    return moved


def _columns(
    changes: dict[str, str], columns: dict[str, tuple[str, ...]], values: dict[str, Any]
) -> dict[str, Any]:
    return {
        column: values.get(column) for keyword in changes for column in columns.get(keyword, ())
    }


def set_remark(session: Session, study: str, remark: str | None) -> str | None:
    """Set (or, with None or blank text, clear) a study's remark; NotFound when not stored,
    ValueError when longer than REMARK_MAX characters. Returns what was stored."""
    text = (remark or "").strip() or None
    if text is not None and len(text) > REMARK_MAX:
        raise ValueError(f"a remark has at most {REMARK_MAX} characters, got {len(text)}")
    row = session.scalars(select(Study).where(Study.study_instance_uid == study)).one_or_none()
    if row is None:
        raise NotFound(f"study {study} is not stored")
    row.remark = text
    return text
