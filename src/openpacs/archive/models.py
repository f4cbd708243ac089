"""The index: patient, study, series and instance tables.

Each level holds the attributes that C-FIND (PS3.4 C.6.1/C.6.2) and QIDO-RS (PS3.18 10.6) match
on or return by default, so queries never open files. Conventions:

- person names: the full value (`..._name`, as Unicode, component groups joined by '=') and each
  component group on its own (`_alphabetic`, `_ideographic`, `_phonetic`) for matching;
- DA values as 'YYYYMMDD' and TM values as 'HHMMSS.ffffff' (zero padded), so text order is time
  order and ranges are string comparisons;
- multi-valued attributes joined by a backslash, as DICOM encodes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names make migrations reproducible across SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UID = String(64)
PN = String(324)  # 64 characters per component group, three groups, separators
LO = String(64)
SH = String(16)
DA = String(8)
TM = String(16)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Patient(Base):
    __tablename__ = "patient"
    __table_args__ = (Index(None, "patient_id", "issuer_of_patient_id", unique=True),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(LO, index=True)
    issuer_of_patient_id: Mapped[str] = mapped_column(LO, default="")
    patient_name: Mapped[str | None] = mapped_column(PN)
    patient_name_alphabetic: Mapped[str | None] = mapped_column(PN, index=True)
    patient_name_ideographic: Mapped[str | None] = mapped_column(PN, index=True)
    patient_name_phonetic: Mapped[str | None] = mapped_column(PN, index=True)
    # Folded words of the whole name (values.fold_name) for fuzzy matching.
    patient_name_folded: Mapped[str | None] = mapped_column(String(400))
    patient_birth_date: Mapped[str | None] = mapped_column(DA, index=True)
    patient_birth_time: Mapped[str | None] = mapped_column(TM)
    patient_sex: Mapped[str | None] = mapped_column(SH, index=True)
    other_patient_ids: Mapped[str | None] = mapped_column(Text)
    ethnic_group: Mapped[str | None] = mapped_column(SH)
    patient_comments: Mapped[str | None] = mapped_column(Text)
    specific_character_set: Mapped[str | None] = mapped_column(String(128))
    number_of_studies: Mapped[int] = mapped_column(Integer, default=0)
    number_of_series: Mapped[int] = mapped_column(Integer, default=0)
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    studies: Mapped[list[Study]] = relationship(back_populates="patient", lazy="raise")


class Study(Base):
    __tablename__ = "study"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patient.pk"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    study_date: Mapped[str | None] = mapped_column(DA, index=True)
    study_time: Mapped[str | None] = mapped_column(TM, index=True)
    accession_number: Mapped[str | None] = mapped_column(SH, index=True)
    issuer_of_accession_number: Mapped[str | None] = mapped_column(LO)
    study_id: Mapped[str | None] = mapped_column(SH, index=True)
    study_description: Mapped[str | None] = mapped_column(LO, index=True)
    referring_physician_name: Mapped[str | None] = mapped_column(PN)
    referring_physician_alphabetic: Mapped[str | None] = mapped_column(PN, index=True)
    referring_physician_ideographic: Mapped[str | None] = mapped_column(PN, index=True)
    referring_physician_phonetic: Mapped[str | None] = mapped_column(PN)
    referring_physician_folded: Mapped[str | None] = mapped_column(String(400))
    name_of_physicians_reading_study: Mapped[str | None] = mapped_column(Text)
    admitting_diagnoses_description: Mapped[str | None] = mapped_column(Text)
    patient_age: Mapped[str | None] = mapped_column(String(4))
    patient_size: Mapped[str | None] = mapped_column(String(16))
    patient_weight: Mapped[str | None] = mapped_column(String(16))
    occupation: Mapped[str | None] = mapped_column(SH)
    additional_patient_history: Mapped[str | None] = mapped_column(Text)
    institution_name: Mapped[str | None] = mapped_column(LO, index=True)
    timezone_offset_from_utc: Mapped[str | None] = mapped_column(SH)
    specific_character_set: Mapped[str | None] = mapped_column(String(128))
    # Aggregates, kept current by ingest in the same transaction as the instance row.
    modalities_in_study: Mapped[str] = mapped_column(String(256), default="", index=True)
    sop_classes_in_study: Mapped[str] = mapped_column(Text, default="")
    number_of_series: Mapped[int] = mapped_column(Integer, default=0)
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=_now, index=True
    )
    # Free text from the console (PUT /api/studies/{uid}/remark), searched by its keyword box.
    remark: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient] = relationship(back_populates="studies", lazy="raise")
    series: Mapped[list[Series]] = relationship(back_populates="study", lazy="raise")


class Series(Base):
    __tablename__ = "series"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_pk: Mapped[int] = mapped_column(ForeignKey("study.pk"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    modality: Mapped[str | None] = mapped_column(SH, index=True)
    series_number: Mapped[int | None] = mapped_column(Integer, index=True)
    series_description: Mapped[str | None] = mapped_column(LO, index=True)
    series_date: Mapped[str | None] = mapped_column(DA, index=True)
    series_time: Mapped[str | None] = mapped_column(TM)
    body_part_examined: Mapped[str | None] = mapped_column(SH, index=True)
    laterality: Mapped[str | None] = mapped_column(String(2))
    protocol_name: Mapped[str | None] = mapped_column(LO)
    manufacturer: Mapped[str | None] = mapped_column(LO)
    manufacturer_model_name: Mapped[str | None] = mapped_column(LO)
    station_name: Mapped[str | None] = mapped_column(SH, index=True)
    institution_name: Mapped[str | None] = mapped_column(LO)
    institutional_department_name: Mapped[str | None] = mapped_column(LO)
    operators_name: Mapped[str | None] = mapped_column(Text)
    performing_physician_name: Mapped[str | None] = mapped_column(Text)
    performed_procedure_step_start_date: Mapped[str | None] = mapped_column(DA, index=True)
    performed_procedure_step_start_time: Mapped[str | None] = mapped_column(TM)
    performed_procedure_step_id: Mapped[str | None] = mapped_column(SH)
    # From RequestAttributesSequence: the keys MWL/MPPS reconciliation and QIDO match on.
    scheduled_procedure_step_id: Mapped[str | None] = mapped_column(SH, index=True)
    requested_procedure_id: Mapped[str | None] = mapped_column(SH, index=True)
    frame_of_reference_uid: Mapped[str | None] = mapped_column(UID)
    source_ae: Mapped[str | None] = mapped_column(String(16))
    number_of_instances: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)

    study: Mapped[Study] = relationship(back_populates="series", lazy="raise")
    instances: Mapped[list[Instance]] = relationship(back_populates="series", lazy="raise")


class Instance(Base):
    __tablename__ = "instance"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_pk: Mapped[int] = mapped_column(ForeignKey("series.pk"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    sop_class_uid: Mapped[str] = mapped_column(UID, index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer, index=True)
    content_date: Mapped[str | None] = mapped_column(DA, index=True)
    content_time: Mapped[str | None] = mapped_column(TM)
    acquisition_date_time: Mapped[str | None] = mapped_column(String(26))
    image_type: Mapped[str | None] = mapped_column(String(128))
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    bits_allocated: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    photometric_interpretation: Mapped[str | None] = mapped_column(SH)
    # Structured reports: the keys QIDO-RS offers at instance level.
    completion_flag: Mapped[str | None] = mapped_column(SH)
    verification_flag: Mapped[str | None] = mapped_column(SH)
    concept_name_code: Mapped[str | None] = mapped_column(String(128))
    # The stored object itself.
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    file_path: Mapped[str] = mapped_column(String(512))
    file_size: Mapped[int] = mapped_column(BigInteger)
    specific_character_set: Mapped[str | None] = mapped_column(String(128))
    received_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=_now, index=True
    )
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))

    series: Mapped[Series] = relationship(back_populates="instances", lazy="raise")


# --- Remote nodes and jobs (domain services beside the archive: openpacs.nodes, openpacs.jobs) ---


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A UTC timestamp that reads back timezone-aware on SQLite too (which stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Node(Base):
    """A remote DICOM node. Uses and permissions are columns so listeners test them in SQL."""

    __tablename__ = "node"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    ae_title: Mapped[str] = mapped_column(String(16), index=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    tls: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    # What openpacs uses the node for (config.NodeUse).
    store_target: Mapped[bool] = mapped_column(Boolean, default=False)
    qr_source: Mapped[bool] = mapped_column(Boolean, default=False)
    move_destination: Mapped[bool] = mapped_column(Boolean, default=False)
    printer: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the node may ask of openpacs (config.Permission).
    may_echo: Mapped[bool] = mapped_column(Boolean, default=False)
    may_store: Mapped[bool] = mapped_column(Boolean, default=False)
    may_find: Mapped[bool] = mapped_column(Boolean, default=False)
    may_move: Mapped[bool] = mapped_column(Boolean, default=False)
    may_get: Mapped[bool] = mapped_column(Boolean, default=False)
    may_print: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)


class Job(Base):
    """Long work that survives a restart. `state` holds a jobs.JobState value."""

    __tablename__ = "job"
    # Workers look for due work: state = 'queued' and next_attempt_at <= now.
    __table_args__ = (Index(None, "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What the handler saved to resume from after a retry or a restart.
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The runner working on it ("host:pid:process:runner") and when it last said so.
    owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    failures: Mapped[list[JobFailure]] = relationship(
        back_populates="job", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class JobFailure(Base):
    """One item a job could not handle (an instance, a file) and why."""

    __tablename__ = "job_failure"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    item: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)

    job: Mapped[Job] = relationship(back_populates="failures", lazy="raise")


class WorklistItem(Base):
    """A scheduled exam for the Modality Worklist: the item as the API wrote it (`spec`), the
    DICOM dataset modalities get (`dataset`, DICOM JSON), and the keys MWL queries match on."""

    __tablename__ = "worklist_item"
    # Modalities ask for "my modality (or station), today": the date leads, as every such
    # query names one (or a range); the status is a NOT IN that no index can lead with.
    __table_args__ = (Index(None, "start_date", "modality", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    patient_id: Mapped[str] = mapped_column(LO, index=True)
    patient_name: Mapped[str | None] = mapped_column(PN)
    patient_name_alphabetic: Mapped[str | None] = mapped_column(PN, index=True)
    patient_name_ideographic: Mapped[str | None] = mapped_column(PN, index=True)
    patient_name_phonetic: Mapped[str | None] = mapped_column(PN, index=True)
    patient_name_folded: Mapped[str | None] = mapped_column(String(400))
    patient_birth_date: Mapped[str | None] = mapped_column(DA)
    patient_sex: Mapped[str | None] = mapped_column(SH)
    accession_number: Mapped[str | None] = mapped_column(SH, index=True)
    requested_procedure_id: Mapped[str | None] = mapped_column(SH, index=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    referring_physician_name: Mapped[str | None] = mapped_column(PN)
    referring_physician_alphabetic: Mapped[str | None] = mapped_column(PN)
    referring_physician_ideographic: Mapped[str | None] = mapped_column(PN)
    referring_physician_phonetic: Mapped[str | None] = mapped_column(PN)
    referring_physician_folded: Mapped[str | None] = mapped_column(String(400))
    # The scheduled procedure step (an MWL item has exactly one).
    step_id: Mapped[str | None] = mapped_column(SH, index=True)
    modality: Mapped[str | None] = mapped_column(SH)
    station_ae_titles: Mapped[str | None] = mapped_column(String(340), index=True)
    station_name: Mapped[str | None] = mapped_column(SH, index=True)
    start_date: Mapped[str | None] = mapped_column(DA)
    start_time: Mapped[str | None] = mapped_column(TM)
    performing_physician_name: Mapped[str | None] = mapped_column(PN)
    performing_physician_alphabetic: Mapped[str | None] = mapped_column(PN)
    performing_physician_ideographic: Mapped[str | None] = mapped_column(PN)
    performing_physician_phonetic: Mapped[str | None] = mapped_column(PN)
    performing_physician_folded: Mapped[str | None] = mapped_column(String(400))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)

    steps: Mapped[list[PerformedStep]] = relationship(back_populates="item", lazy="raise")


class PerformedStep(Base):
    """A Modality Performed Procedure Step (MPPS) as the modality reported it, linked to the
    worklist item it performs when the modality named one."""

    __tablename__ = "performed_step"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    item_id: Mapped[int | None] = mapped_column(
        ForeignKey("worklist_item.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    calling_ae: Mapped[str | None] = mapped_column(String(16))
    # The attributes received (N-CREATE, then each N-SET merged in), DICOM JSON.
    dataset: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Performed series: [{"series_instance_uid", "instances": [sop uids]}], from the N-SETs.
    series: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)

    item: Mapped[WorklistItem | None] = relationship(back_populates="steps", lazy="raise")


class PrintJob(Base):
    """One film session a modality printed to us (PS3.4 H.4.1): who, when, how far it got,
    the session's attributes (DICOM JSON), and where its films are kept."""

    __tablename__ = "print_job"
    __table_args__ = (Index(None, "state", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    calling_ae: Mapped[str] = mapped_column(String(16), index=True)
    called_ae: Mapped[str] = mapped_column(String(16))
    film_session_uid: Mapped[str] = mapped_column(UID)
    colour: Mapped[bool] = mapped_column(Boolean, default=False)
    # received → printing → printed (→ forwarded), or failed with `reason`.
    state: Mapped[str] = mapped_column(String(16))  # indexed with created_at
    reason: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The job's folder under the storage root's print folder: films, PNGs, image boxes.
    folder: Mapped[str] = mapped_column(String(200))
    film_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)

    films: Mapped[list[PrintFilm]] = relationship(
        back_populates="job", lazy="raise", cascade="all, delete-orphan", passive_deletes=True
    )


class PrintFilm(Base):
    """One printed film: its film box's attributes, the image boxes it held (with their
    archived datasets), the Secondary Capture stored in the archive, and its PNG preview."""

    __tablename__ = "print_film"
    __table_args__ = (Index(None, "job_id", "number", unique=True),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("print_job.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1-based, in print order within the job
    film_box_uid: Mapped[str] = mapped_column(UID)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    # [{"position", "uid", "file"}]: file relative to the job folder, None for an empty box.
    image_boxes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # [{"position", "text"}]: the Basic Annotation Boxes printed with the film.
    annotations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    study_instance_uid: Mapped[str] = mapped_column(UID)
    series_instance_uid: Mapped[str] = mapped_column(UID)
    sop_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    png: Mapped[str] = mapped_column(String(200))  # relative to the job folder
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)

    job: Mapped[PrintJob] = relationship(back_populates="films", lazy="raise")


# --- Users, sessions, API tokens, sign-in throttling, audit (openpacs.accounts) ---------------


class User(Base):
    """A person or script that signs in. `role` holds an accounts.Role value; only an argon2id
    hash of the password is kept."""

    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    password_changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class UserSession(Base):
    """A signed-in browser. The cookie carries a random id; only its SHA-256 is stored, so a
    copy of the database lets no one in."""

    __tablename__ = "user_session"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)
    address: Mapped[str | None] = mapped_column(String(64))


class ApiToken(Base):
    """A personal API token (bearer); only its SHA-256 is stored, the token is shown once."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    # Launch tokens (weasis:// links) end by themselves and only read; personal ones neither.
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginThrottle(Base):
    """Failed sign-ins of one user name or one client address (`scope` user or address):
    how many since `window_start`, and until when sign-in is locked."""

    __tablename__ = "login_throttle"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class AuditEvent(Base):
    """Who did what to which study (or other object), when, from where. Append-only."""

    __tablename__ = "audit_event"
    __table_args__ = (Index(None, "username", "at"), Index(None, "action", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=_now, index=True)
    username: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    study_instance_uid: Mapped[str | None] = mapped_column(UID, index=True)
    series_instance_uid: Mapped[str | None] = mapped_column(UID)
    sop_instance_uid: Mapped[str | None] = mapped_column(UID)
    # Anything else acted on: "user:bob", "token:3", "print_job:12", "node:ORTHANC".
    object: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
