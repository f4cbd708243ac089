"""Writes to the index: record an instance with its patient, study and series, keep aggregates.

All functions take the caller's session (or, on the ingest path, its bare connection) and never
commit: the caller owns the transaction, so a
stored file and its rows appear together or not at all.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from sqlalchemy import (
    Connection,
    Executable,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from openpacs.archive.models import Base, Instance, Patient, Series, Study
from openpacs.dicom import values as v
from openpacs.logs import get_logger

log = get_logger("db")

Getter = Callable[[Dataset], Any]


def _attr(keyword: str, convert: Callable[[Any], Any] = v.text) -> Getter:
    """`convert(ds.get(keyword))`; for text, dates, times and integers of the simple VRs
    computed from the raw bytes (the same result, without pydicom's conversion machinery)."""
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    if convert is v.integer:

        def integer(ds: Dataset) -> Any:
            value = v.raw_integer(ds, tag)
            return convert(ds.get(keyword)) if value is v.SLOW else value

        return integer
    if convert in (v.text, v.da, v.tm):

        def text(ds: Dataset) -> Any:
            value = v.raw_text(ds, tag)
            return convert(ds.get(keyword) if value is v.SLOW else value)

        return text
    return lambda ds: convert(ds.get(keyword))


def _seq_item_attr(sequence: str, keyword: str) -> Getter:
    def get(ds: Dataset) -> Any:
        items = ds.get(sequence)
        return v.text(items[0].get(keyword)) if items else None

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
    keyword: str, full: str, alphabetic: str, ideographic: str, phonetic: str, folded: str
) -> dict[str, Getter]:
    """Getters for a PN attribute's whole value, each of its component groups, and its folded
    words (fuzzy matching)."""
    # The five getters run one after another on the same dataset: parse the name once. One
    # tuple, replaced whole, so receiver threads sharing these getters never mix two datasets.
    last: tuple[Dataset | None, v.NameGroups | None] = (None, None)

    def groups(ds: Dataset) -> v.NameGroups:
        nonlocal last
        seen, parsed = last
        if seen is not ds or parsed is None:
            parsed = v.person_name(ds.get(keyword))
            last = (ds, parsed)
        return parsed

    return {
        full: lambda ds: groups(ds).full,
        alphabetic: lambda ds: groups(ds).alphabetic,
        ideographic: lambda ds: groups(ds).ideographic,
        phonetic: lambda ds: groups(ds).phonetic,
        folded: lambda ds: v.fold_name(groups(ds).full),
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
        "patient_name_folded",
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
        "referring_physician_folded",
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
        try:
            value = get(ds)
        except Exception as exc:  # a malformed optional attribute must not refuse the object
            log.debug("ignoring unreadable value for %s.%s: %s", table.__tablename__, name, exc)
            value = None
        column_type = columns[name].type
        length = getattr(column_type, "length", None)
        # Over-long values are clipped, not refused: a 70-character description is the
        # modality's bug, and the file keeps the whole value anyway.
        if isinstance(value, str) and length and len(value) > length:
            value = value[:length]
        row[name] = value
    return row


class IndexValues:
    """The column values of each level, read from a header on first use.

    Most objects join a series the index knows already, so only their instance row is needed;
    the other levels are read only for the first object of a series. The header's values are in
    memory (only elements over the defer size stay on disk, and no indexed one is that large),
    so reading late is safe after the file has moved.
    """

    def __init__(self, ds: Dataset) -> None:
        self._ds = ds

    @functools.cached_property
    def patient(self) -> dict[str, Any]:
        return _row(PATIENT, self._ds, Patient)

    @functools.cached_property
    def study(self) -> dict[str, Any]:
        return _row(STUDY, self._ds, Study)

    @functools.cached_property
    def series(self) -> dict[str, Any]:
        return _row(SERIES, self._ds, Series)

    @functools.cached_property
    def instance(self) -> dict[str, Any]:
        return _row(INSTANCE, self._ds, Instance)


def extract(ds: Dataset) -> IndexValues:
    return IndexValues(ds)


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


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


class _Prepared:
    """A statement compiled once per dialect and run on the driver's cursor.

    Ingest runs seven statements per object; SQLAlchemy's execution path costs ~20 µs of CPU
    per statement, the driver's own ~2 µs. The SQL still comes from the models (compiled by
    SQLAlchemy for the connection's dialect), the column types' bind processors still convert
    the parameters, and driver errors are wrapped as SQLAlchemy's would be (IntegrityError,
    OperationalError, ...), so callers see no difference. Only for statements whose results
    need no type processing (strings and integers).
    """

    def __init__(self, statement: Executable) -> None:
        self._statement = statement
        self._by_dialect: dict[tuple[str, str, str], _Compiled] = {}

    def run(self, conn: Connection, params: dict[str, Any]) -> Any:
        """Execute on `conn`'s DBAPI connection (inside its transaction); returns the cursor."""
        dialect = conn.dialect
        key = (dialect.name, dialect.driver, dialect.paramstyle)
        compiled = self._by_dialect.get(key)
        if compiled is None:
            compiled = self._by_dialect[key] = _Compiled(self._statement, dialect)
        args = compiled.arguments(params)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, args)
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                compiled.sql, args, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        return cursor


class _Compiled:
    def __init__(self, statement: Executable, dialect: Any) -> None:
        compiled = cast(Any, statement).compile(dialect=dialect)
        self.sql: str = compiled.string
        self.positions: list[str] | None = (
            list(compiled.positiontup) if compiled.positional else None
        )
        # Values fixed in the statement itself (the 1 of `count + 1`).
        self.fixed = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        self.processors = {
            name: process
            for name, bind in compiled.binds.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }

    def arguments(self, params: dict[str, Any]) -> Any:
        values = {**self.fixed, **params}
        for name, process in self.processors.items():
            if name in values:
                values[name] = process(values[name])
        if self.positions is None:
            return values
        return tuple(values[name] for name in self.positions)


_INSTANCE_COLUMNS = [c.name for c in _table(Instance).columns if c.name != "pk"]
_INSTANCE_PATH = _Prepared(
    select(Instance.file_path).where(Instance.sop_instance_uid == bindparam("uid"))
)
_PATIENT_ID = _Prepared(select(Patient.patient_id).where(Patient.pk == bindparam("pk")))
_SERIES_BY_UID = _Prepared(
    select(Series.pk, Series.study_pk, Series.modality).where(
        Series.series_instance_uid == bindparam("uid")
    )
)
_STUDY_FOR_UPDATE = _Prepared(
    select(Study.pk, Study.patient_pk, Study.modalities_in_study, Study.sop_classes_in_study)
    .where(Study.pk == bindparam("pk"))
    .with_for_update()
)
# Every column but the key is given, so no Python-side column default is needed.
_INSERT_INSTANCE = _Prepared(
    insert(_table(Instance)).values({name: bindparam(name) for name in _INSTANCE_COLUMNS})
)
_BUMP_SERIES = _Prepared(
    update(_table(Series))
    .where(Series.pk == bindparam("row"))
    .values(number_of_instances=Series.number_of_instances + 1, updated_at=bindparam("now"))
)
_BUMP_STUDY = _Prepared(
    update(_table(Study))
    .where(Study.pk == bindparam("row"))
    .values(
        number_of_instances=Study.number_of_instances + 1,
        number_of_series=Study.number_of_series + bindparam("new_series"),
        size_bytes=Study.size_bytes + bindparam("size"),
        modalities_in_study=bindparam("modalities"),
        sop_classes_in_study=bindparam("sop_classes"),
        updated_at=bindparam("now"),
    )
)
_BUMP_PATIENT = _Prepared(
    update(_table(Patient))
    .where(Patient.pk == bindparam("row"))
    .values(
        number_of_studies=Patient.number_of_studies + bindparam("new_study"),
        number_of_series=Patient.number_of_series + bindparam("new_series"),
        number_of_instances=Patient.number_of_instances + 1,
        updated_at=bindparam("now"),
    )
)


Db = Session | Connection


def _connection(db: Db) -> Connection:
    return db if isinstance(db, Connection) else db.connection()


class _InsertOrGet:
    """`INSERT ... ON CONFLICT DO NOTHING RETURNING pk`, else the existing row's pk, for one
    level's table: compiled once per dialect like `_Prepared` (building the statement from a
    dict of values cost ~1 ms per row, most of a new study's cost). Every column but the key
    is bound; what the caller leaves out takes the column's Python-side default."""

    def __init__(self, model: type[Base], unique: Sequence[str]) -> None:
        table = _table(model)
        names = [c.name for c in table.columns if c.name != "pk"]
        binds: dict[str, Any] = {name: bindparam(name) for name in names}
        self._inserts = {
            dialect: _Prepared(
                builder(table)
                .values(binds)
                .on_conflict_do_nothing(index_elements=list(unique))
                .returning(table.c.pk)
            )
            for dialect, builder in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
        }
        self._select = _Prepared(
            select(table.c.pk).where(*(table.c[name] == bindparam(name) for name in unique))
        )
        self._unique = list(unique)
        self._scalars: dict[str, Any] = {}
        self._callables: dict[str, Callable[[], Any]] = {}
        for column in table.columns:
            default = column.default
            if column.name == "pk" or default is None:
                continue
            arg = cast(Any, default).arg
            if default.is_callable:
                self._callables[column.name] = functools.partial(arg, None)
            else:
                self._scalars[column.name] = arg
        self._names = names

    def run(self, conn: Connection, values: dict[str, Any]) -> tuple[int, bool]:
        """The row's primary key, inserting it unless it exists; True when this call made it."""
        params = dict.fromkeys(self._names)
        params.update(self._scalars)
        for name, make in self._callables.items():
            params[name] = make()
        params.update(values)
        # RETURNING gives a row only when one was inserted; rowcount is not reliable.
        created = self._inserts[conn.dialect.name].run(conn, params).fetchone()
        if created is not None:
            return int(created[0]), True
        where = {name: params[name] for name in self._unique}
        return int(self._select.run(conn, where).fetchone()[0]), False


_INSERT_PATIENT = _InsertOrGet(Patient, ["patient_id", "issuer_of_patient_id"])
_INSERT_STUDY = _InsertOrGet(Study, ["study_instance_uid"])
_INSERT_SERIES = _InsertOrGet(Series, ["series_instance_uid"])


def stored_path(db: Db, sop_instance_uid: str) -> str | None:
    """Where an instance is stored, if it is: the duplicate check on every store."""
    row = _INSTANCE_PATH.run(_connection(db), {"uid": sop_instance_uid}).fetchone()
    return None if row is None else str(row[0])


def find_instance(session: Session, sop_instance_uid: str) -> Instance | None:
    return session.scalars(
        select(Instance).where(Instance.sop_instance_uid == sop_instance_uid)
    ).one_or_none()


def _new_series(
    conn: Connection, values: IndexValues, keys: InstanceKeys, calling_ae: str | None
) -> tuple[int, int, bool]:
    """Create the series (and patient and study as needed): (series pk, study pk, new study)."""
    patient_values = {"patient_id": keys.patient_id, **values.patient}
    patient_pk, _ = _INSERT_PATIENT.run(conn, patient_values)
    study_values = {
        "study_instance_uid": keys.study_instance_uid,
        "patient_pk": patient_pk,
        **values.study,
    }
    study_pk, new_study = _INSERT_STUDY.run(conn, study_values)
    series_values = {
        "series_instance_uid": keys.series_instance_uid,
        "study_pk": study_pk,
        "source_ae": calling_ae,
        **values.series,
    }
    series_pk, _ = _INSERT_SERIES.run(conn, series_values)
    return series_pk, study_pk, new_study


def record_instance(
    db: Db,
    values: IndexValues,
    keys: InstanceKeys,
    file: FileInfo,
    *,
    origin: str,
    calling_ae: str | None,
) -> None:
    """Insert an instance and whatever patient/study/series it needs; update every aggregate."""
    now = dt.datetime.now(dt.UTC)
    # Core statements on the session's connection: the ORM's bookkeeping (identity map,
    # synchronising updated objects) costs more than the statements and nothing here needs it.
    conn = _connection(db)
    known = _SERIES_BY_UID.run(conn, {"uid": keys.series_instance_uid}).fetchone()
    new_study = new_series = False
    if known is not None:
        series_pk, study_pk, modality = known
    else:
        series_pk, study_pk, new_study = _new_series(conn, values, keys, calling_ae)
        new_series = True
        modality = values.series.get("modality")
    # Lock the study row: its aggregates are read-modify-write (no-op lock on SQLite, where the
    # write transaction already holds the database lock).
    study = _STUDY_FOR_UPDATE.run(conn, {"pk": study_pk}).fetchone()
    if study is None:
        raise LookupError(f"study row {study_pk} vanished")
    _, patient_pk, modalities_in_study, sop_classes_in_study = study
    if new_series and not new_study and patient_pk is not None:
        _warn_if_moved(conn, patient_pk, keys)
    _INSERT_INSTANCE.run(
        conn,
        {
            **values.instance,
            "series_pk": series_pk,
            "sop_instance_uid": keys.sop_instance_uid,
            "sop_class_uid": keys.sop_class_uid,
            "transfer_syntax_uid": file.transfer_syntax_uid,
            "file_path": file.relpath,
            "file_size": file.size,
            "received_at": now,
            "calling_ae": calling_ae,
            "origin": origin,
        },
    )
    _BUMP_SERIES.run(conn, {"row": series_pk, "now": now})
    _BUMP_STUDY.run(
        conn,
        {
            "row": study_pk,
            "new_series": int(new_series),
            "size": file.size,
            "modalities": _add_value(modalities_in_study, modality),
            "sop_classes": _add_value(sop_classes_in_study, keys.sop_class_uid),
            "now": now,
        },
    )
    _BUMP_PATIENT.run(
        conn,
        {
            "row": patient_pk,
            "new_study": int(new_study),
            "new_series": int(new_series),
            "now": now,
        },
    )


def _warn_if_moved(conn: Connection, study_patient_pk: int, keys: InstanceKeys) -> None:
    patient_id = _PATIENT_ID.run(conn, {"pk": study_patient_pk}).fetchone()[0]
    if patient_id != keys.patient_id:
        log.warning(
            "instance %s names patient ID %s but its study %s is filed under another; "
            "kept under the study's patient",
            keys.sop_instance_uid,
            keys.patient_id,
            keys.study_instance_uid,
        )


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
        recompute_study_sets(session, study)
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


def recompute_study_sets(session: Session, study: Study) -> None:
    """ModalitiesInStudy and SOPClassesInStudy from the study's remaining rows."""
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
