"""Query/Retrieve identifiers from what people type: C-FIND keys and C-MOVE/C-GET selections.

The CLI, the REST API and the retrieve jobs build their identifiers here, so a key or a
selection is accepted or refused with the same words everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, tag_for_keyword

from openpacs.dicom.uids import check_uid

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
# What a query returns at each level besides the keys asked for: what a person scans a list by.
RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "NumberOfPatientRelatedStudies"),
    "STUDY": (
        "PatientName",
        "PatientID",
        "StudyDate",
        "ModalitiesInStudy",
        "StudyDescription",
        "NumberOfStudyRelatedInstances",
        "StudyInstanceUID",
    ),
    "SERIES": (
        "StudyInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
        "NumberOfSeriesRelatedInstances",
        "SeriesInstanceUID",
    ),
    "IMAGE": ("SeriesInstanceUID", "InstanceNumber", "SOPClassUID", "SOPInstanceUID"),
}


class InvalidKeys(ValueError):
    """A query key or a retrieve selection that cannot be sent; the message says why."""


def check_level(level: str) -> str:
    upper = level.strip().upper()
    if upper not in LEVELS:
        raise InvalidKeys(f"level {level!r}: use one of {', '.join(LEVELS)}")
    return upper


def find_identifier(level: str, keys: Mapping[str, str]) -> tuple[Dataset, list[str]]:
    """The C-FIND identifier for `keys` (keyword → value to match; "" to return only) plus the
    level's usual return keys, and the keywords in the order to show them.

    Values with characters outside ASCII make the identifier UTF-8 (ISO_IR 192)."""
    level = check_level(level)
    columns = list(RETURN_KEYS[level])
    asked: dict[str, str] = dict.fromkeys(columns, "")
    for keyword, value in keys.items():
        keyword = keyword.strip()
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise InvalidKeys(f"{keyword!r} is not a DICOM keyword (e.g. PatientName)")
        if dictionary_VR(tag) == "SQ":
            raise InvalidKeys(f"{keyword}: sequence matching is not supported here")
        if keyword in ("QueryRetrieveLevel", "SpecificCharacterSet"):
            raise InvalidKeys(f"{keyword} is set from the level and the values; leave it out")
        asked[keyword] = str(value)
        if keyword not in columns:
            columns.append(keyword)
    identifier = Dataset()
    if any(not value.isascii() for value in asked.values()):
        identifier.SpecificCharacterSet = "ISO_IR 192"
    identifier.QueryRetrieveLevel = level
    for keyword, value in asked.items():
        setattr(identifier, keyword, value)
    return identifier, columns


def parse_keys(options: Sequence[str]) -> dict[str, str]:
    """`Keyword=Value` (match) or `Keyword` (return) options, as typed on a command line."""
    keys: dict[str, str] = {}
    for option in options:
        keyword, _, value = option.partition("=")
        keys[keyword.strip()] = value
    return keys


@dataclass(frozen=True)
class Selection:
    """What a C-MOVE or C-GET asks for: a patient, studies, series of one study, or instances
    of one series."""

    patient_id: str | None = None
    studies: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, parameters: Mapping[str, Any]) -> Selection:
        """From a job's (or request's) parameters; InvalidKeys when they do not make one."""
        patient_id = parameters.get("patient_id") or None
        selection = cls(
            patient_id=str(patient_id).strip() if patient_id is not None else None,
            studies=_uids(parameters.get("studies"), "study UID"),
            series=_uids(parameters.get("series"), "series UID"),
            instances=_uids(parameters.get("instances"), "SOP instance UID"),
        )
        selection.check()
        return selection

    @property
    def level(self) -> str:
        if self.instances:
            return "IMAGE"
        if self.series:
            return "SERIES"
        return "STUDY" if self.studies else "PATIENT"

    def check(self) -> None:
        if self.patient_id is not None:
            if self.studies or self.series or self.instances:
                raise InvalidKeys("name a patient or studies, series, instances, not both")
            if len(self.patient_id) > 64 or "\\" in self.patient_id:
                raise InvalidKeys("patient_id: one patient ID of at most 64 characters")
            return
        if not self.studies:
            raise InvalidKeys("nothing to retrieve: name a patient ID or study UIDs")
        if (self.series or self.instances) and len(self.studies) != 1:
            raise InvalidKeys("series and instances are retrieved from one study: name one")
        if self.instances and len(self.series) != 1:
            raise InvalidKeys("instances are retrieved from one series: name one series")

    def identifiers(self) -> list[tuple[str, Dataset]]:
        """(information model, identifier) per request: one per study at STUDY level (not
        every node matches UID lists there), one for a patient, series list or instance list."""
        if self.patient_id is not None:
            return [("patient", _identifier("PATIENT", PatientID=self.patient_id))]
        study = self.studies[0]
        if self.instances:
            ds = _identifier(
                "IMAGE",
                StudyInstanceUID=study,
                SeriesInstanceUID=self.series[0],
                SOPInstanceUID=self.instances,
            )
            return [("study", ds)]
        if self.series:
            ds = _identifier("SERIES", StudyInstanceUID=study, SeriesInstanceUID=self.series)
            return [("study", ds)]
        return [("study", _identifier("STUDY", StudyInstanceUID=uid)) for uid in self.studies]

    def describe(self) -> str:
        if self.patient_id is not None:
            return f"patient {self.patient_id}"
        if self.instances:
            return f"{len(self.instances)} instance(s) of series {self.series[0]}"
        if self.series:
            return f"{len(self.series)} series of study {self.studies[0]}"
        return f"{len(self.studies)} stud{'y' if len(self.studies) == 1 else 'ies'}"


def _uids(values: object, keyword: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidKeys(f"{keyword}s: a list of UIDs")
    try:
        return list(dict.fromkeys(check_uid(value, keyword) for value in values))
    except ValueError as exc:
        raise InvalidKeys(str(exc)) from exc


def _identifier(level: str, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds
