"""Writes to the index: record an instance with its patient, study and series, keep aggregates.

All functions take the caller's session and never commit: the caller owns the transaction, so a
stored file and its rows appear together or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from openpacs.archive.models import Base, Instance, Patient, Series, Study
from openpacs.dicom import values as v
from openpacs.logs import get_logger

log = get_logger("db")

Getter = Callable[[Dataset], Any]


def _attr(keyword: str, convert: Callable[[Any], Any] = v.text) -> Getter:
    def get(ds: Dataset) -> Any:
        try:
            return convert(ds.get(keyword))
        except Exception as exc:  # a malformed optional attribute must not refuse the object
            log.debug("ignoring unreadable %s: %s", keyword, exc)
            return None

    return get


def _seq_item_attr(sequence: str, keyword: str) -> Getter:
    def get(ds: Dataset) -> Any:
        try:
            items = ds.get(sequence)
            return v.text(items[0].get(keyword)) if items else None
        except Exception as exc:
            log.debug("ignoring unreadable %s.%s: %s", sequence, keyword, exc)
            return None

    return get


def _code(sequence: str) -> Getter:
    def get(ds: Dataset) -> Any:
        items = ds.get(sequence)
        if not items:
            return None
        item = items[0]
        return f"{item.get('CodeValue', '')}^{item.get('CodingSchemeDesignator', '')}"

    return get


def _other_patient_ids(ds: Dataset) -> str | None:
    ids = [v.text(item.get("PatientID")) for item in ds.get("OtherPatientIDsSequence") or []]
    return v.text([i for i in ids if i] or ds.get("OtherPatientIDs"))


def _names(
    keyword: str, full: str, alphabetic: str, ideographic: str, phonetic: str
) -> dict[str, Getter]:
    """Getters for a PN attribute's whole value and each of its component groups."""

    def groups(ds: Dataset) -> v.NameGroups:
        try:
            return v.person_name(ds.get(keyword))
        except Exception as exc:
            log.debug("ignoring unreadable %s: %s", keyword, exc)
            return v.NameGroups(None, None, None, None)

    return {
        full: lambda ds: groups(ds).full,
        alphabetic: lambda ds: groups(ds).alphabetic,
        ideographic: lambda ds: groups(ds).ideographic,
        phonetic: lambda ds: groups(ds).phonetic,
    }


def _charset(ds: Dataset) -> str | None:
    return v.text(ds.get("SpecificCharacterSet"))


PATIENT: dict[str, Getter] = {
    "issuer_of_patient_id": lambda ds: v.text(ds.get("IssuerOfPatientID")) or "",
    **_names(
        "PatientName",
        "patient_name",
        "patient_name_alphabetic",
        "patient_name_ideographic",
        "patient_name_phonetic",
    ),
    "patient_birth_date": _attr("PatientBirthDate", v.da),
    "patient_birth_time": _attr("PatientBirthTime", v.tm),
    "patient_sex": _attr("PatientSex"),
    "other_patient_ids": _other_patient_ids,
    "ethnic_group": _attr("EthnicGroup"),
    "patient_comments": _attr("PatientComments"),
    "specific_character_set": _charset,
}

STUDY: dict[str, Getter] = {
    "study_date": _attr("StudyDate", v.da),
    "study_time": _attr("StudyTime", v.tm),
    "accession_number": _attr("AccessionNumber"),
    "issuer_of_accession_number": _seq_item_attr(
        "IssuerOfAccessionNumberSequence", "LocalNamespaceEntityID"
    ),
    "study_id": _attr("StudyID"),
    "study_description": _attr("StudyDescription"),
    **_names(
        "ReferringPhysicianName",
        "referring_physician_name",
        "referring_physician_alphabetic",
        "referring_physician_ideographic",
        "referring_physician_phonetic",
    ),
    "name_of_physicians_reading_study": _attr("NameOfPhysiciansReadingStudy"),
    "admitting_diagnoses_description": _attr("AdmittingDiagnosesDescription"),
    "patient_age": _attr("PatientAge"),
    "patient_size": _attr("PatientSize"),
    "patient_weight": _attr("PatientWeight"),
    "occupation": _attr("Occupation"),
    "additional_patient_history": _attr("AdditionalPatientHistory"),
    "institution_name": _attr("InstitutionName"),
    "timezone_offset_from_utc": _attr("TimezoneOffsetFromUTC"),
    "specific_character_set": _charset,
}

SERIES: dict[str, Getter] = {
    "modality": _attr("Modality"),
    "series_number": _attr("SeriesNumber", v.integer),
    "series_description": _attr("SeriesDescription"),
    "series_date": _attr("SeriesDate", v.da),
    "series_time": _attr("SeriesTime", v.tm),
    "body_part_examined": _attr("BodyPartExamined"),
    "laterality": _attr("Laterality"),
    "protocol_name": _attr("ProtocolName"),
    "manufacturer": _attr("Manufacturer"),
    "manufacturer_model_name": _attr("ManufacturerModelName"),
    "station_name": _attr("StationName"),
    "institution_name": _attr("InstitutionName"),
    "institutional_department_name": _attr("InstitutionalDepartmentName"),
    "operators_name": _attr("OperatorsName"),
    "performing_physician_name": _attr("PerformingPhysicianName"),
    "performed_procedure_step_start_date": _attr("PerformedProcedureStepStartDate", v.da),
    "performed_procedure_step_start_time": _attr("PerformedProcedureStepStartTime", v.tm),
    "performed_procedure_step_id": _attr("PerformedProcedureStepID"),
    "scheduled_procedure_step_id": _seq_item_attr(
        "RequestAttributesSequence", "ScheduledProcedureStepID"
    ),
    "requested_procedure_id": _seq_item_attr("RequestAttributesSequence", "RequestedProcedureID"),
    "frame_of_reference_uid": _attr("FrameOfReferenceUID"),
}

INSTANCE: dict[str, Getter] = {
    "instance_number": _attr("InstanceNumber", v.integer),
    "content_date": _attr("ContentDate", v.da),
    "content_time": _attr("ContentTime", v.tm),
    "acquisition_date_time": _attr("AcquisitionDateTime"),
    "image_type": _attr("ImageType"),
    "rows": _attr("Rows", v.integer),
    "columns": _attr("Columns", v.integer),
    "bits_allocated": _attr("BitsAllocated", v.integer),
    "number_of_frames": _attr("NumberOfFrames", v.integer),
    "photometric_interpretation": _attr("PhotometricInterpretation"),
    "completion_flag": _attr("CompletionFlag"),
    "verification_flag": _attr("VerificationFlag"),
    "concept_name_code": _code("ConceptNameCodeSequence"),
    "specific_character_set": _charset,
}


def _row(getters: dict[str, Getter], ds: Dataset, table: type[Base]) -> dict[str, Any]:
    columns = table.__table__.columns
    row = {}
    for name, get in getters.items():
        value = get(ds)
        column_type = columns[name].type
        length = getattr(column_type, "length", None)
        # Over-long values are clipped, not refused: a 70-character description is the
        # modality's bug, and the file keeps the whole value anyway.
        if isinstance(value, str) and length and len(value) > length:
            value = value[:length]
        row[name] = value
    return row


@dataclass(frozen=True)
class IndexValues:
    """The column values of each level, read from a header before its file moves anywhere."""

    patient: dict[str, Any]
    study: dict[str, Any]
    series: dict[str, Any]
    instance: dict[str, Any]


def extract(ds: Dataset) -> IndexValues:
    return IndexValues(
        patient=_row(PATIENT, ds, Patient),
        study=_row(STUDY, ds, Study),
        series=_row(SERIES, ds, Series),
        instance=_row(INSTANCE, ds, Instance),
    )


@dataclass(frozen=True)
class InstanceKeys:
    """The validated identity of an object: what paths and unique keys are built from."""

    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    study_date: str | None


@dataclass(frozen=True)
class FileInfo:
    relpath: str
    size: int
    transfer_syntax_uid: str


def _insert(session: Session, table: type[Base], values: dict[str, Any], keys: list[str]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when this call created the row."""
    dialect = session.get_bind().dialect.name
    builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
    pk = table.__table__.c.pk
    stmt = builder(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    # RETURNING gives a row only when one was inserted; rowcount is not reliable across drivers.
    return session.execute(stmt.returning(pk)).first() is not None


def find_instance(session: Session, sop_instance_uid: str) -> Instance | None:
    return session.scalars(
        select(Instance).where(Instance.sop_instance_uid == sop_instance_uid)
    ).one_or_none()


def record_instance(
    session: Session,
    values: IndexValues,
    keys: InstanceKeys,
    file: FileInfo,
    *,
    origin: str,
    calling_ae: str | None,
) -> Instance:
    """Insert an instance and whatever patient/study/series it needs; update every aggregate."""
    now = dt.datetime.now(dt.UTC)
    patient_values = {"patient_id": keys.patient_id, **values.patient}
    _insert(session, Patient, patient_values, ["patient_id", "issuer_of_patient_id"])
    patient_pk = session.scalars(
        select(Patient.pk).where(
            Patient.patient_id == keys.patient_id,
            Patient.issuer_of_patient_id == patient_values["issuer_of_patient_id"],
        )
    ).one()

    study_values = {
        "study_instance_uid": keys.study_instance_uid,
        "patient_pk": patient_pk,
        **values.study,
    }
    new_study = _insert(session, Study, study_values, ["study_instance_uid"])
    # Lock the study row: aggregates below are read-modify-write (no-op lock on SQLite, where the
    # write transaction already holds the database lock).
    study = session.scalars(
        select(Study).where(Study.study_instance_uid == keys.study_instance_uid).with_for_update()
    ).one()
    if study.patient_pk != patient_pk:
        log.warning(
            "study %s belongs to another patient record than the one in instance %s; "
            "kept under the study's patient",
            keys.study_instance_uid,
            keys.sop_instance_uid,
        )

    series_values = {
        "series_instance_uid": keys.series_instance_uid,
        "study_pk": study.pk,
        "source_ae": calling_ae,
        **values.series,
    }
    new_series = _insert(session, Series, series_values, ["series_instance_uid"])
    series = session.scalars(
        select(Series).where(Series.series_instance_uid == keys.series_instance_uid)
    ).one()

    instance = Instance(
        series_pk=series.pk,
        sop_instance_uid=keys.sop_instance_uid,
        sop_class_uid=keys.sop_class_uid,
        transfer_syntax_uid=file.transfer_syntax_uid,
        file_path=file.relpath,
        file_size=file.size,
        received_at=now,
        calling_ae=calling_ae,
        origin=origin,
        **values.instance,
    )
    session.add(instance)
    session.flush()

    series.number_of_instances += 1
    series.updated_at = now
    study.number_of_instances += 1
    study.number_of_series += int(new_series)
    study.size_bytes += file.size
    study.modalities_in_study = _add_value(study.modalities_in_study, series.modality)
    study.sop_classes_in_study = _add_value(study.sop_classes_in_study, keys.sop_class_uid)
    study.updated_at = now
    session.execute(
        update(Patient)
        .where(Patient.pk == study.patient_pk)
        .values(
            number_of_studies=Patient.number_of_studies + int(new_study),
            number_of_series=Patient.number_of_series + int(new_series),
            number_of_instances=Patient.number_of_instances + 1,
            updated_at=now,
        )
    )
    session.flush()
    return instance


def _add_value(joined: str, value: str | None) -> str:
    if not value:
        return joined
    present = joined.split("\\") if joined else []
    if value in present:
        return joined
    return "\\".join(sorted([*present, value]))


def remove_instance(session: Session, instance: Instance) -> None:
    """Delete an instance row, update aggregates, and drop parents it leaves empty."""
    series = session.get_one(Series, instance.series_pk, with_for_update=True)
    study = session.get_one(Study, series.study_pk, with_for_update=True)
    now = dt.datetime.now(dt.UTC)
    session.delete(instance)
    session.flush()
    series.number_of_instances -= 1
    study.number_of_instances -= 1
    study.size_bytes -= instance.file_size
    series_gone = series.number_of_instances <= 0
    if series_gone:
        session.delete(series)
        study.number_of_series -= 1
    session.flush()
    study_gone = study.number_of_instances <= 0
    patient_pk = study.patient_pk
    if study_gone:
        session.delete(study)
    else:
        _recompute_study_sets(session, study)
        study.updated_at = now
    session.execute(
        update(Patient)
        .where(Patient.pk == patient_pk)
        .values(
            number_of_studies=Patient.number_of_studies - int(study_gone),
            number_of_series=Patient.number_of_series - int(series_gone),
            number_of_instances=Patient.number_of_instances - 1,
            updated_at=now,
        )
    )
    session.execute(
        delete(Patient).where(Patient.pk == patient_pk, Patient.number_of_instances <= 0)
    )
    session.flush()


def _recompute_study_sets(session: Session, study: Study) -> None:
    modalities = session.scalars(
        select(Series.modality).where(Series.study_pk == study.pk).distinct()
    ).all()
    sop_classes = session.scalars(
        select(Instance.sop_class_uid)
        .join(Series, Instance.series_pk == Series.pk)
        .where(Series.study_pk == study.pk)
        .distinct()
    ).all()
    study.modalities_in_study = "\\".join(sorted(m for m in modalities if m))
    study.sop_classes_in_study = "\\".join(sorted(sop_classes))


@dataclass(frozen=True)
class Counts:
    patients: int
    studies: int
    series: int
    instances: int
    stored_bytes: int


def counts(session: Session) -> Counts:
    def count(table: type[Base]) -> int:
        return session.scalar(select(func.count()).select_from(table)) or 0

    return Counts(
        patients=count(Patient),
        studies=count(Study),
        series=count(Series),
        instances=count(Instance),
        stored_bytes=session.scalar(select(func.coalesce(func.sum(Instance.file_size), 0))) or 0,
    )


def clear(session: Session) -> None:
    """Empty the index (reindex rebuilds it from the files)."""
    for table in (Instance, Series, Study, Patient):
        session.execute(delete(table))
