"""Changing patient and study attributes in a stored file: which keywords may change, the
checks their values must pass (by VR), and the rewrite of one file.

The rewrite reads the whole object, sets the new values and writes it in its own transfer
syntax; every other element, Pixel Data included, is written back as it was read. A new value
the file's character set cannot hold switches the file to ISO_IR 192 (UTF-8): every text
value is decoded with the old set first, then written in UTF-8, so nothing else changes
meaning.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset, dcmread, dcmwrite
from pydicom.datadict import dictionary_VR

from openpacs.dicom.charset import UTF8_TERM, can_encode

# What the Studies page may change: keyword -> level (patient or study).
EDITABLE: dict[str, str] = {
    "PatientName": "patient",
    "PatientID": "patient",
    "PatientBirthDate": "patient",
    "PatientSex": "patient",
    "AccessionNumber": "study",
    "StudyDescription": "study",
    "ReferringPhysicianName": "study",
    "StudyDate": "study",
    "StudyTime": "study",
    "StudyID": "study",
}
_LIMITS = {"LO": 64, "SH": 16}
_DA = re.compile(r"\d{8}")
_TM = re.compile(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?")
_SEX = frozenset({"M", "F", "O"})


class InvalidEdit(ValueError):
    """A change that cannot be made: `keyword` names the attribute, `reason` says why."""

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword}: {reason}")
        self.keyword = keyword
        self.reason = reason


def check_changes(changes: Mapping[str, object]) -> dict[str, str]:
    """The changes as DICOM values ('' empties an attribute), each checked against its VR;
    InvalidEdit names the first attribute that is not editable or whose value is not valid."""
    if not changes:
        raise InvalidEdit("body", "name at least one attribute to change")
    checked = {}
    for keyword, value in changes.items():
        if keyword not in EDITABLE:
            raise InvalidEdit(
                keyword, f"cannot be changed here; editable: {', '.join(sorted(EDITABLE))}"
            )
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise InvalidEdit(keyword, f"must be text, not {type(value).__name__}")
        checked[keyword] = _check(keyword, value.strip())
    return checked


def _check(keyword: str, value: str) -> str:
    vr = dictionary_VR(keyword)
    if any(c in value for c in "\\\r\n\0\x1b") or not value.isprintable():
        raise InvalidEdit(keyword, "no backslash, control character or line break")
    if keyword == "PatientID" and not value:
        raise InvalidEdit(keyword, "may not be empty: the archive files objects by it")
    if not value:
        return value
    if vr in _LIMITS and len(value) > _LIMITS[vr]:
        raise InvalidEdit(keyword, f"at most {_LIMITS[vr]} characters ({vr}), got {len(value)}")
    if vr == "PN":
        _check_name(keyword, value)
    elif vr == "DA":
        value = _check_date(keyword, value)
    elif vr == "TM":
        value = _check_time(keyword, value)
    elif keyword == "PatientSex":
        value = value.upper()
        if value not in _SEX:
            raise InvalidEdit(keyword, "M, F, O or empty")
    return value


def _check_name(keyword: str, value: str) -> None:
    groups = value.split("=")
    if len(groups) > 3:
        raise InvalidEdit(keyword, "at most three groups: alphabetic=ideographic=phonetic")
    for group in groups:
        if len(group) > 64:
            raise InvalidEdit(keyword, f"a name group has at most 64 characters, got {len(group)}")
        if group.count("^") > 4:
            raise InvalidEdit(keyword, "a name group has at most five components split by '^'")


def _check_date(keyword: str, value: str) -> str:
    text = value.replace("-", "") if len(value) == 10 else value
    if not _DA.fullmatch(text):
        raise InvalidEdit(keyword, f"{value!r} is not a date: write YYYYMMDD or YYYY-MM-DD")
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise InvalidEdit(keyword, f"{value!r} is not a calendar date") from None
    return text


def _check_time(keyword: str, value: str) -> str:
    text = value.replace(":", "")
    match = _TM.fullmatch(text)
    if match is None:
        raise InvalidEdit(keyword, f"{value!r} is not a time: write HHMMSS or HH:MM:SS")
    hours, minutes, seconds = (int(part or 0) for part in match.groups()[:3])
    if hours > 23 or minutes > 59 or seconds > 60:
        raise InvalidEdit(keyword, f"{value!r} is not a time of day")
    return text


@dataclass(frozen=True)
class Rewritten:
    """What a rewrite did to the file's character set."""

    charset_changed: bool


def rewrite(source: Path, target: Path, changes: Mapping[str, str]) -> Rewritten:
    """Write `source` with `changes` applied to `target` (checked values, from check_changes)."""
    ds = dcmread(source)
    terms = _terms(ds)
    switch = any(not can_encode(value, terms) for value in changes.values())
    if switch:
        _decode_text(ds)  # with the old set, before it changes
        ds.SpecificCharacterSet = UTF8_TERM
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    dcmwrite(target, ds, enforce_file_format=False)
    return Rewritten(charset_changed=switch)


def _terms(ds: Dataset) -> tuple[str, ...]:
    value = ds.get("SpecificCharacterSet")
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _decode_text(ds: Dataset) -> None:
    """Decode every element (iterating converts raw elements with the current character set),
    so each is written anew in the set that follows."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or ():
                _decode_text(item)
