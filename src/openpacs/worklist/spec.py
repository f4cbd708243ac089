"""A worklist item as people and RIS write it (JSON), checked field by field, and the DICOM
dataset modalities receive for it (the MWL attribute set, PS3.4 K.6).

Nothing is invented: an attribute left out is absent (or empty where the MWL model wants it
present), a birth date is never derived from an age.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from openpacs.dicom import json as dicom_json
from openpacs.dicom.uids import InvalidUID, check_uid


class Status(StrEnum):
    """A worklist item's state; MPPS moves it along."""

    scheduled = "SCHEDULED"
    in_progress = "IN PROGRESS"
    completed = "COMPLETED"
    discontinued = "DISCONTINUED"


FINISHED = frozenset({Status.completed, Status.discontinued})

_DA = re.compile(r"\d{8}")
_TM = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_AS = re.compile(r"\d{3}[DWMY]")
_CS = re.compile(r"[A-Z0-9 _]{1,16}")


def _date(value: str | None) -> str | None:
    """DA: YYYYMMDD (YYYY-MM-DD accepted), a real calendar date."""
    if value is None or value == "":
        return None
    text = value.strip().replace("-", "") if len(value.strip()) == 10 else value.strip()
    if not _DA.fullmatch(text):
        raise ValueError(f"{value!r} is not a date: write YYYYMMDD or YYYY-MM-DD")
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise ValueError(f"{value!r} is not a calendar date") from None
    return text


def _time(value: str | None) -> str | None:
    """TM: HH, HHMM, HHMMSS or HHMMSS.ffffff (HH:MM[:SS] accepted)."""
    if value is None or value == "":
        return None
    text = value.strip().replace(":", "")
    if not _TM.fullmatch(text):
        raise ValueError(f"{value!r} is not a time: write HHMM, HHMMSS or HH:MM[:SS]")
    hours, minutes, seconds = int(text[:2]), int(text[2:4] or 0), int(text[4:6] or 0)
    if hours > 23 or minutes > 59 or seconds > 60:
        raise ValueError(f"{value!r} is not a time of day")
    return text


def _text(limit: int) -> Any:
    """A single-line text of at most `limit` characters, without backslashes."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        stripped = value.strip()
        if len(stripped) > limit:
            raise ValueError(f"at most {limit} characters, got {len(stripped)}")
        if "\\" in stripped or any(c in stripped for c in "\r\n\0"):
            raise ValueError("no backslash, line break or NUL in this field")
        return stripped or None

    return check


def _person_name(value: str | None) -> str | None:
    """PN: up to three component groups (alphabetic=ideographic=phonetic), each of up to five
    components separated by '^' and at most 64 characters."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    groups = text.split("=")
    if len(groups) > 3:
        raise ValueError("a person name has at most three groups: alphabetic=ideographic=phonetic")
    for group in groups:
        if len(group) > 64:
            raise ValueError(f"name group {group[:20]!r}... is longer than 64 characters")
        if group.count("^") > 4:
            raise ValueError("a name group has at most five components separated by '^'")
        if "\\" in group or any(c in group for c in "\r\n\0"):
            raise ValueError("no backslash or line break in a person name")
    return text


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    """DICOM JSON attributes to add as they are; checked by reading them."""
    try:
        dicom_json.from_json(value)
    except (dicom_json.JsonModelError, ValueError, TypeError) as exc:
        raise ValueError(f"not a DICOM JSON object: {exc}") from None
    return value


class Code(BaseModel):
    """A coded entry (Code Sequence item)."""

    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=16, description="CodeValue")
    scheme: str = Field(min_length=1, max_length=16, description="CodingSchemeDesignator")
    meaning: str = Field(min_length=1, max_length=64, description="CodeMeaning")


class Step(BaseModel):
    """The scheduled procedure step: where, when and how the modality performs the exam."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, description="ScheduledProcedureStepID (SH)")
    modality: str = Field(description="Modality (CS), e.g. CT, MR, US")
    station_ae_titles: list[str] = Field(
        default_factory=list, max_length=20, description="ScheduledStationAETitle(s)"
    )
    station_name: str | None = Field(None, description="ScheduledStationName (SH)")
    start_date: str = Field(description="ScheduledProcedureStepStartDate, YYYYMMDD")
    start_time: str | None = Field(None, description="ScheduledProcedureStepStartTime, HHMM[SS]")
    description: str | None = Field(None, description="ScheduledProcedureStepDescription (LO)")
    performing_physician: str | None = Field(
        None, description="ScheduledPerformingPhysicianName (PN)"
    )
    location: str | None = Field(None, description="ScheduledProcedureStepLocation (SH)")
    protocol_codes: list[Code] = Field(
        default_factory=list, max_length=20, description="ScheduledProtocolCodeSequence"
    )
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="Further attributes of the step item, as DICOM JSON"
    )

    _id = field_validator("id", "station_name", "location")(_text(16))
    _description = field_validator("description")(_text(64))
    _physician = field_validator("performing_physician")(_person_name)
    _start_time = field_validator("start_time")(_time)
    _attributes = field_validator("attributes")(_attributes)

    @field_validator("modality")
    @classmethod
    def _modality(cls, value: str) -> str:
        text = value.strip().upper()
        if not _CS.fullmatch(text):
            raise ValueError(f"{value!r}: a modality is 1-16 letters or digits, e.g. CT")
        return text

    @field_validator("station_ae_titles")
    @classmethod
    def _stations(cls, values: list[str]) -> list[str]:
        titles = []
        for value in values:
            title = value.strip()
            if not 0 < len(title) <= 16 or "\\" in title or not title.isascii():
                raise ValueError(f"{value!r}: an AE title is 1-16 ASCII characters")
            titles.append(title)
        return titles

    @field_validator("start_date")
    @classmethod
    def _start_date(cls, value: str) -> str:
        date = _date(value)
        if date is None:
            raise ValueError("the start date is required (YYYYMMDD)")
        return date


class ItemSpec(BaseModel):
    """A worklist item: patient, visit, request, requested procedure and its one scheduled
    step. `attributes` adds anything else as DICOM JSON (the named fields win)."""

    model_config = ConfigDict(extra="forbid")

    patient_id: str = Field(description="PatientID (LO)")
    issuer_of_patient_id: str | None = Field(None, description="IssuerOfPatientID (LO)")
    patient_name: str | None = Field(
        None, description="PatientName (PN): 'Zhang^San=张^三' gives romanised and ideographic"
    )
    patient_birth_date: str | None = Field(None, description="PatientBirthDate, YYYYMMDD")
    patient_sex: Literal["M", "F", "O"] | None = Field(None, description="PatientSex")
    patient_age: str | None = Field(None, description="PatientAge (AS), e.g. 045Y")
    patient_weight: str | None = Field(None, description="PatientWeight in kg (DS)")
    other_patient_ids: list[str] = Field(
        default_factory=list, max_length=20, description="Other patient IDs"
    )
    admission_id: str | None = Field(None, description="AdmissionID (LO)")
    current_patient_location: str | None = Field(None, description="CurrentPatientLocation")
    accession_number: str | None = Field(None, description="AccessionNumber (SH)")
    referring_physician: str | None = Field(None, description="ReferringPhysicianName (PN)")
    requesting_physician: str | None = Field(None, description="RequestingPhysician (PN)")
    reason_for_procedure: str | None = Field(
        None, description="ReasonForTheRequestedProcedure (LO)"
    )
    requested_procedure_id: str | None = Field(None, description="RequestedProcedureID (SH)")
    requested_procedure_description: str | None = Field(
        None, description="RequestedProcedureDescription (LO)"
    )
    requested_procedure_codes: list[Code] = Field(
        default_factory=list, max_length=20, description="RequestedProcedureCodeSequence"
    )
    priority: Literal["STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW"] | None = Field(
        None, description="RequestedProcedurePriority"
    )
    study_instance_uid: str | None = Field(
        None, description="StudyInstanceUID; left out: a new 2.25 UUID-derived UID"
    )
    status: Status = Field(Status.scheduled, description="The item's state")
    step: Step
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="Further attributes, as DICOM JSON"
    )

    _lo = field_validator(
        "patient_id",
        "issuer_of_patient_id",
        "admission_id",
        "current_patient_location",
        "reason_for_procedure",
        "requested_procedure_description",
    )(_text(64))
    _sh = field_validator("accession_number", "requested_procedure_id")(_text(16))
    _names = field_validator("patient_name", "referring_physician", "requesting_physician")(
        _person_name
    )
    _attributes = field_validator("attributes")(_attributes)

    @field_validator("patient_id")
    @classmethod
    def _required_id(cls, value: str | None) -> str:
        if not value:
            raise ValueError("the patient ID is required")
        return value

    @field_validator("patient_birth_date")
    @classmethod
    def _birth_date(cls, value: str | None) -> str | None:
        return _date(value)

    @field_validator("patient_age")
    @classmethod
    def _age(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _AS.fullmatch(value.strip()):
            raise ValueError(f"{value!r}: an age is three digits and D, W, M or Y, e.g. 045Y")
        return value.strip()

    @field_validator("patient_weight")
    @classmethod
    def _weight(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a number of kilograms") from None
        if not 0 < weight < 1000 or len(value.strip()) > 16:
            raise ValueError(f"{value!r} is not a plausible weight in kilograms")
        return value.strip()

    @field_validator("other_patient_ids")
    @classmethod
    def _other_ids(cls, values: list[str]) -> list[str]:
        check = _text(64)
        return [one for one in (check(v) for v in values) if one]

    @field_validator("study_instance_uid")
    @classmethod
    def _study_uid(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return check_uid(value, "study_instance_uid")
        except InvalidUID as exc:
            raise ValueError(str(exc)) from None


def new_study_uid() -> str:
    """A Study Instance UID from a random UUID (PS3.5 B.2: the 2.25 root)."""
    return f"2.25.{uuid.uuid4().int}"


# Type 2 return keys of the MWL model (PS3.4 K.6.1.2.2): present, empty when unknown.
ITEM_TYPE2 = (
    "AccessionNumber",
    "ReferringPhysicianName",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "RequestedProcedureDescription",
    "RequestedProcedureID",
)
STEP_TYPE2 = (
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartTime",
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription",
    "ScheduledStationName",
    "ScheduledProcedureStepLocation",
    "ScheduledProcedureStepID",
)


def build_dataset(spec: ItemSpec, study_uid: str) -> Dataset:
    """The item as modalities receive it: `attributes`, then the fields given (they win), then
    the MWL type 2 keys still missing, empty. Text is Unicode; the answering side encodes it
    for each modality."""
    ds = dicom_json.from_json(spec.attributes) if spec.attributes else Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    _set(
        ds,
        {
            "AccessionNumber": spec.accession_number,
            "ReferringPhysicianName": spec.referring_physician,
            "PatientName": spec.patient_name,
            "PatientID": spec.patient_id,
            "IssuerOfPatientID": spec.issuer_of_patient_id,
            "PatientBirthDate": spec.patient_birth_date,
            "PatientSex": spec.patient_sex,
            "PatientAge": spec.patient_age,
            "PatientWeight": spec.patient_weight,
            "OtherPatientIDs": spec.other_patient_ids or None,
            "AdmissionID": spec.admission_id,
            "CurrentPatientLocation": spec.current_patient_location,
            "StudyInstanceUID": study_uid,
            "RequestingPhysician": spec.requesting_physician,
            "ReasonForTheRequestedProcedure": spec.reason_for_procedure,
            "RequestedProcedureDescription": spec.requested_procedure_description,
            "RequestedProcedureID": spec.requested_procedure_id,
            "RequestedProcedurePriority": spec.priority,
        },
        ITEM_TYPE2,
    )
    if spec.requested_procedure_codes or "RequestedProcedureCodeSequence" not in ds:
        ds.RequestedProcedureCodeSequence = _codes(spec.requested_procedure_codes)
    step = spec.step
    item = dicom_json.from_json(step.attributes) if step.attributes else Dataset()
    _set(
        item,
        {
            "ScheduledStationAETitle": step.station_ae_titles or None,
            "ScheduledProcedureStepStartDate": step.start_date,
            "ScheduledProcedureStepStartTime": step.start_time,
            "Modality": step.modality,
            "ScheduledPerformingPhysicianName": step.performing_physician,
            "ScheduledProcedureStepDescription": step.description,
            "ScheduledStationName": step.station_name,
            "ScheduledProcedureStepLocation": step.location,
            "ScheduledProcedureStepID": step.id,
            "ScheduledProcedureStepStatus": spec.status.value,
        },
        STEP_TYPE2,
    )
    if step.protocol_codes or "ScheduledProtocolCodeSequence" not in item:
        item.ScheduledProtocolCodeSequence = _codes(step.protocol_codes)
    ds.ScheduledProcedureStepSequence = DicomSequence([item])
    return ds


def _set(ds: Dataset, values: dict[str, Any], type2: tuple[str, ...]) -> None:
    """Set the fields given; None leaves an attribute from `attributes` (or its absence), and
    a type 2 key still absent is added empty."""
    for keyword, value in values.items():
        if value is not None:
            setattr(ds, keyword, value)
    for keyword in type2:
        if keyword not in ds:
            setattr(ds, keyword, "")


def _codes(codes: list[Code]) -> DicomSequence:
    items = []
    for code in codes:
        item = Dataset()
        item.CodeValue = code.value
        item.CodingSchemeDesignator = code.scheme
        item.CodeMeaning = code.meaning
        items.append(item)
    return DicomSequence(items)
